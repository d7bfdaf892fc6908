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

/** The operator's configuration of this policy as the host passed it: JSON text ("{}"
 * when none). For policies that parse it themselves (to reject duplicate keys, say). */
export function configText() {
  return hostConfig();
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

/** The UTF-8 byte offset of UTF-16 index `index` of `text`. Measured natively (an
 * interpreted loop costs ~2,300 fuel per character; this, tens). */
export function utf8Offset(text, index) {
  return utf8Length(text.slice(0, index));
}

/** The length of `text` in UTF-8 bytes (the contract's unit), e.g. for a span over a
 * whole text. Linear and native, so fine on large texts. */
export function utf8Length(text) {
  return ASCII_ONLY.test(text) ? text.length : UTF8.encode(text).length;
}

const UTF8 = new TextEncoder();

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

/** Replace the span of every finding (spans must not overlap): a modify verdict
 * carrying the findings, or allow when there are none. `replacement` is a string, or a
 * function of the finding returning one (e.g. numbered placeholders). */
export function redact(findings, replacement) {
  if (!findings.length) return { tag: 'allow', val: [] };
  const replace = typeof replacement === 'function' ? replacement : () => replacement;
  const edits = findings.map((f) => ({ tag: 'redact', val: { span: f.span, replacement: replace(f) } }));
  return { tag: 'modify', val: { edits, findings } };
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
    const { matcher, error } = Matcher.tryCompile(patterns);
    if (error !== undefined) fail(`patterns: ${error}`);
    this.inner = matcher.inner;
  }

  /** Compile without failing the evaluation: `{matcher}`, or `{error}` (the host's
   * message naming the pattern) when a pattern is invalid or over the host's limits. */
  static tryCompile(patterns) {
    let inner;
    try {
      inner = HostMatcher.compile(patterns);
    } catch (e) {
      return { error: String(e.payload ?? e.message ?? e) };
    }
    const matcher = Object.create(Matcher.prototype);
    matcher.inner = inner;
    return { matcher };
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

/** Lowercase hex SHA-256 (FIPS 180-4) of `text`'s UTF-8 bytes. Synchronous, unlike
 * crypto.subtle (whose promises a policy export cannot await). */
export function sha256Hex(text) {
  const data = UTF8.encode(text);
  // Padding: 0x80, zeros, then the bit length as a 64-bit big-endian number.
  const blocks = Math.ceil((data.length + 9) / 64);
  const bytes = new Uint8Array(blocks * 64);
  bytes.set(data);
  bytes[data.length] = 0x80;
  const view = new DataView(bytes.buffer);
  view.setUint32(bytes.length - 8, Math.floor(data.length / 0x20000000));
  view.setUint32(bytes.length - 4, (data.length * 8) >>> 0);
  const h = SHA256_INIT.slice();
  const w = new Int32Array(64);
  for (let block = 0; block < bytes.length; block += 64) {
    for (let t = 0; t < 16; t++) w[t] = view.getInt32(block + t * 4);
    for (let t = 16; t < 64; t++) {
      const a = w[t - 15];
      const b = w[t - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
    }
    let [a, b, c, d, e, f, g, k] = h;
    for (let t = 0; t < 64; t++) {
      const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (k + s1 + ((e & f) ^ (~e & g)) + SHA256_K[t] + w[t]) | 0;
      const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      k = g; g = f; f = e; e = (d + t1) | 0;
      d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    [a, b, c, d, e, f, g, k].forEach((v, i) => { h[i] = (h[i] + v) | 0; });
  }
  return Array.from(h, (v) => (v >>> 0).toString(16).padStart(8, "0")).join("");
}

// First 32 bits of the fractional parts of the square roots of the first 8 primes.
const SHA256_INIT = Int32Array.of(
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19);
// ... and of the cube roots of the first 64 primes.
const SHA256_K = Int32Array.of(
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2);
