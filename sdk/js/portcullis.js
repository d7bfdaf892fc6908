// Helpers for Portcullis policies written in JavaScript (componentize-js).
//
// The contract's imports are ES modules named after their WIT interfaces
// ('portcullis:policy/host@0.1.0', 'portcullis:policy/matchers@0.1.0'); exports are
// objects named after the exported interface (`export const requestChecker = {...}`).
// Values follow jco's mapping: variants are {tag, val}, enums are strings, options
// are a value or undefined, records are objects with camelCase fields. These helpers
// cover what every policy needs; spans are converted from JavaScript's UTF-16 indices
// to the contract's UTF-8 bytes.

import { config as hostConfig, log as hostLog } from 'portcullis:policy/host@0.1.0';
import { Matcher as HostMatcher } from 'portcullis:policy/matchers@0.1.0';

const CATEGORIES = new Set([
  'prompt-injection', 'jailbreak', 'pii', 'secret', 'toxicity', 'tool-misuse',
  'model-extraction', 'system-prompt-leak',
]);
const SEVERITIES = new Set(['low', 'medium', 'high', 'critical']);
const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool']);

/** Log `reason` and throw: the evaluation ends as an error (the host applies on_error). */
export function fail(reason) {
  hostLog('error', String(reason));
  throw new Error(String(reason));
}

/** A log line kept with the evaluation (`level`: trace, debug, info, warn, error). */
export function log(message, level = 'info') {
  hostLog(level, message);
}

/** The operator's configuration of this policy (an object; {} when none). */
export function config() {
  const text = hostConfig();
  if (!text.trim()) return {};
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    fail(`configuration is not JSON: ${e.message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    fail('configuration must be a JSON object');
  }
  return value;
}

/** A contract category by name; any other name is a custom category. */
export function category(name) {
  return CATEGORIES.has(name) ? { tag: name } : { tag: 'custom', val: name };
}

/** `low`, `medium`, `high` or `critical`. */
export function severity(name) {
  if (!SEVERITIES.has(name)) fail(`unknown severity ${JSON.stringify(name)}: use low, medium, high or critical`);
  return name;
}

/** The UTF-8 byte offset of UTF-16 index `index` of `text`. */
export function utf8Offset(text, index) {
  let bytes = 0;
  for (let i = 0; i < index; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < index) { bytes += 4; i++; }
    else bytes += 3;
  }
  return bytes;
}

/** A finding; with `text`, `index` (message number) and UTF-16 `start`/`end` in
 * `text`, it carries a span in UTF-8 bytes. */
export function finding(categoryName, severityName, message, text, index, start, end) {
  const span = index === undefined ? undefined
    : { index, start: utf8Offset(text, start), end: utf8Offset(text, end) };
  return { category: category(categoryName), severity: severity(severityName), message, span, score: undefined };
}

/** A finding whose span is already in UTF-8 bytes (host matcher results). */
export function byteFinding(categoryName, severityName, message, index, start, end) {
  return { category: category(categoryName), severity: severity(severityName), message, span: { index, start, end }, score: undefined };
}

/** Deny with the findings, or allow. */
export function denyIfAny(findings) {
  return findings.length ? { tag: 'deny', val: findings } : { tag: 'allow', val: [] };
}

/** `text` with ASCII letters lowercased and nothing else changed (indices stay valid,
 * unlike toLowerCase() on some non-ASCII text). */
export function asciiLower(text) {
  // toLowerCase() is native (fast in the sandbox) and, on ASCII text, exactly this.
  return ASCII_ONLY.test(text) ? text.toLowerCase() : text.replace(/[A-Z]+/g, (s) => s.toLowerCase());
}

const ASCII_ONLY = /^[\x00-\x7f]*$/;

/** Regular expressions (Rust `regex` syntax) compiled by the host once per policy
 * version; matches are [pattern, start byte, end byte]. */
export class Matcher {
  constructor(patterns) {
    try {
      this.inner = HostMatcher.compile(patterns);
    } catch (e) {
      fail(`patterns: ${e.payload ?? e.message ?? e}`);
    }
  }

  findAll(text) {
    return this.inner.findAll(text).map((m) => [m.pattern, m.start, m.end]);
  }
}

/** [index, message] for the messages whose role is in `roles` (default: user, tool). */
export function scannedMessages(request, roles = ['user', 'tool']) {
  for (const r of roles) {
    if (!ROLES.has(r)) fail(`unknown role ${JSON.stringify(r)}: use system, developer, user, assistant or tool`);
  }
  return request.messages.map((m, i) => [i, m]).filter(([, m]) => roles.includes(m.role));
}
