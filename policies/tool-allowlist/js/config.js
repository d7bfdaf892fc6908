// The policy configuration: the same JSON fields, defaults and checks as the Rust
// policy's `config.rs` (serde with `deny_unknown_fields`), normalized the same way
// (lower-case pins, hosts and sensitive paths) and with the globs compiled.

import * as p from '../../../sdk/js/portcullis.js';
import { GlobSet, glob } from './glob.js';
import { isObject, member, parseJson } from './json.js';

/** Paths an argument must not point at (globs over the normalized, lower-cased path). */
export const SENSITIVE_PATHS = [
  '/etc', '/etc/*', '/root', '/root/*', '/proc/*', '/sys/*', '/dev/*', '/boot/*',
  '/var/run/secrets/*', '/run/secrets/*', '*/.ssh', '*/.ssh/*', '*/.aws/*', '*/.gnupg/*',
  '*/.kube/*', '*/.docker/config.json', '*/.config/gcloud/*', '*/.netrc',
  '*/.git-credentials', '*/.pgpass', '*/.bash_history', '*/id_rsa*', '*/id_ecdsa*',
  '*/id_ed25519*', 'c:/windows/*', '*/system32/*',
];

// Compiled into the component's snapshot, so the default configuration costs nothing.
const DEFAULT_SENSITIVE = new GlobSet(SENSITIVE_PATHS);
DEFAULT_SENSITIVE.matches('/warm/up');
DEFAULT_SENSITIVE.matchesLeadingStar('/warm/up');

const FIELDS = ['default', 'allow', 'deny', 'pins', 'require_pins', 'check_schema',
  'argument_checks', 'strict_shell', 'allowed_hosts', 'sensitive_paths'];
const RULE_FIELDS = ['server', 'tool'];
const PIN_FIELDS = ['server', 'tool', 'sha256'];

/** The operator's configuration, checked and normalized; an invalid one aborts the
 * evaluation (the host records an error and applies `on_error`). Fields:
 * `defaultAllow`, `allow`/`deny` (rules `{server, tool}` of compiled globs), `pins`
 * (`{server, tool, sha256}`), `requirePins`, `checkSchema`, `argumentChecks`,
 * `strictShell`, `allowedHosts` (a GlobSet, or undefined: URLs unchecked) and
 * `sensitivePaths` (a GlobSet). */
export function loadConfig() {
  const text = p.configText();
  const raw = parseJson(text);
  if (raw === undefined) invalid('not valid JSON');
  if (!isObject(raw)) invalid('expected a JSON object');
  const duplicate = duplicateKey(text);
  if (duplicate !== undefined) invalid(`duplicate field \`${duplicate}\``);
  knownFields(raw, FIELDS, '');

  const defaultAction = given(raw, 'default', 'deny');
  if (defaultAction !== 'deny' && defaultAction !== 'allow') {
    invalid('`default` must be "deny" or "allow"');
  }
  const allowedHosts = member(raw, 'allowed_hosts');
  return {
    defaultAllow: defaultAction === 'allow',
    allow: list(raw, 'allow', rule),
    deny: list(raw, 'deny', rule),
    pins: list(raw, 'pins', pin),
    requirePins: flag(raw, 'require_pins', false),
    checkSchema: flag(raw, 'check_schema', true),
    argumentChecks: flag(raw, 'argument_checks', true),
    strictShell: flag(raw, 'strict_shell', false),
    allowedHosts: allowedHosts === undefined || allowedHosts === null ? undefined
      : new GlobSet(strings(raw, 'allowed_hosts').map(p.asciiLower)),
    sensitivePaths: member(raw, 'sensitive_paths') === undefined ? DEFAULT_SENSITIVE
      : new GlobSet(strings(raw, 'sensitive_paths').map(p.asciiLower)),
  };
}

function invalid(problem) {
  p.fail(`invalid policy configuration: ${problem}`);
}

function knownFields(object, fields, where) {
  for (const key of Object.keys(object)) {
    if (!fields.includes(key)) {
      invalid(`unknown field \`${where}${key}\`, expected one of ${fields.map((f) => `\`${f}\``).join(', ')}`);
    }
  }
}

/** The first key that appears twice in one object of `text` (valid JSON), if any:
 * serde rejects duplicate fields, JSON.parse keeps the last. */
function duplicateKey(text) {
  const tokens = text.match(/"[^"\\]*(?:\\[^][^"\\]*)*"|[{}[\]:]/g) ?? [];
  const open = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t === '{') open.push(new Set());
    else if (t === '[') open.push(undefined);
    else if (t === '}' || t === ']') open.pop();
    else if (tokens[i + 1] === ':') {
      const key = JSON.parse(t);
      const keys = open[open.length - 1];
      if (keys.has(key)) return key;
      keys.add(key);
    }
  }
  return undefined;
}

/** The field's value, or `fallback` when it is absent (null is a value: serde refuses
 * it where a string, boolean or list is expected). */
function given(object, field, fallback) {
  const value = member(object, field);
  return value === undefined ? fallback : value;
}

function flag(raw, field, fallback) {
  const value = given(raw, field, fallback);
  if (typeof value !== 'boolean') invalid(`\`${field}\` must be true or false`);
  return value;
}

function strings(raw, field) {
  const value = member(raw, field);
  if (!Array.isArray(value) || !value.every((s) => typeof s === 'string')) {
    invalid(`\`${field}\` must be an array of strings`);
  }
  return value;
}

function list(raw, field, item) {
  const value = given(raw, field, []);
  if (!Array.isArray(value)) invalid(`\`${field}\` must be an array`);
  return value.map((v, i) => item(v, `${field}[${i}]`));
}

function text(object, field, where, fallback) {
  const value = given(object, field, fallback);
  if (typeof value !== 'string') invalid(`\`${where}.${field}\` must be a string`);
  return value;
}

/** An allow/deny rule: server and tool globs, both `*` by default. */
function rule(value, where) {
  if (!isObject(value)) invalid(`\`${where}\` must be an object {server, tool}`);
  knownFields(value, RULE_FIELDS, `${where}.`);
  return { server: glob(text(value, 'server', where, '*')), tool: glob(text(value, 'tool', where, '*')) };
}

/** A description pin: server glob (`*` by default), tool glob and 64 hex digits. */
function pin(value, where) {
  if (!isObject(value)) invalid(`\`${where}\` must be an object {server, tool, sha256}`);
  knownFields(value, PIN_FIELDS, `${where}.`);
  const server = glob(text(value, 'server', where, '*'));
  const tool = glob(text(value, 'tool', where, undefined));
  const sha256 = p.asciiLower(text(value, 'sha256', where, undefined));
  if (!/^[0-9a-f]{64}$/.test(sha256)) {
    invalid(`${where}.sha256 must be 64 hex digits (the SHA-256 of the tool description)`);
  }
  return { server, tool, sha256 };
}
