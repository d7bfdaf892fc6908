// Argument checks (the Rust policy's `args.rs`): every string in a call's arguments,
// nested objects and arrays included, is checked for path traversal, sensitive paths,
// shell metacharacters and URLs to hosts outside the allowlist. Messages name the
// JSON path only, never the value.

import * as p from '../../../sdk/js/portcullis.js';
import { isObject, sortedKeys } from './json.js';
import { childPath } from './schema.js';
import { RUST_WHITESPACE, charClass, rustTrim, trimMatching } from './text.js';

/** Words in a property name that make its value a command, path or file name
 * (`command`, `shell_cmd`, `filePath`, `target_dir`, `argv`, ...). */
const COMMAND_WORDS = new Set([
  'cmd', 'cmdline', 'command', 'commands', 'shell', 'script', 'exec', 'execute', 'path',
  'paths', 'filepath', 'file', 'files', 'filename', 'filenames', 'dir', 'dirs', 'directory',
  'folder', 'cwd', 'program', 'binary', 'argv', 'args',
]);

/** Shell metacharacters (command separators, pipes, substitution, redirection). */
const SHELL_META = [
  [';', 'command separator ;'],
  ['&&', 'command chaining &&'],
  ['|', 'pipe |'],
  ['`', 'backtick substitution'],
  ['$(', 'command substitution $('],
  ['>', 'output redirection >'],
  ['\n', 'newline'],
  ['\r', 'carriage return'],
];

/** The distinct problems found with one call, in the order found, up to `limit`: once
 * it is full the checks stop (nothing more could be reported, and a call with
 * thousands of offending strings is refused without exhausting the fuel). */
export class Problems {
  constructor(limit) {
    this.list = [];
    this.limit = limit;
  }

  /** Record `problem` unless it is already recorded or the collection is full. */
  push(problem) {
    if (!this.isFull() && !this.list.includes(problem)) this.list.push(problem);
  }

  isFull() {
    return this.list.length >= this.limit;
  }
}

/** Run the argument checks on one call's arguments into `problems`. */
export function check(argumentsValue, config, problems) {
  walk(argumentsValue, false, '$', config, problems);
}

/** Check the strings in `value`, whose property name is (`commandLike`) or is not a
 * command/path word; array items inherit their property's name. */
function walk(value, commandLike, path, config, out) {
  if (typeof value === 'string') {
    checkString(value, commandLike, path, config, out);
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length && !out.isFull(); i++) {
      walk(value[i], commandLike, `${path}[${i}]`, config, out);
    }
  } else if (isObject(value)) {
    for (const k of sortedKeys(value)) {
      if (out.isFull()) break;
      walk(value[k], isCommandKey(k), childPath(path, k), config, out);
    }
  }
}

function checkString(s, commandLike, path, config, out) {
  const decoded = decodings(s);
  if (hasTraversal(s, decoded, commandLike)) out.push(`path traversal in argument ${path}`);
  if (reachesSensitivePath(s, decoded, commandLike, config.sensitivePaths)) {
    out.push(`sensitive path in argument ${path}`);
  }
  if (commandLike || config.strictShell) {
    const what = shellMetacharacter(s);
    if (what !== undefined) out.push(`shell metacharacter (${what}) in argument ${path}`);
  }
  if (config.allowedHosts !== undefined && hasForeignHost(s, config.allowedHosts)) {
    out.push(`URL to a host outside allowed_hosts in argument ${path}`);
  }
}

/** Whether a property name contains a command/path word: split into lower-case words
 * at non-alphanumerics and camelCase humps (`filePath`, `shell_cmd`). */
export function isCommandKey(key) {
  return key.split(/[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])/)
    .some((word) => COMMAND_WORDS.has(p.asciiLower(word)));
}

/** One round of `%XX` decoding over UTF-8 bytes, invalid UTF-8 becoming U+FFFD (Rust's
 * `from_utf8_lossy`). Invalid escapes stay as they are; like Rust's `from_str_radix`,
 * `%+f` counts as an escape. Runs of escapes are decoded together. */
function percentDecode(s) {
  try {
    return decodeURIComponent(s); // every escape valid, and valid UTF-8: done natively
  } catch {
    // Decode run by run below.
  }
  return s.replace(/(?:%(?:[0-9a-fA-F]{2}|\+[0-9a-fA-F]))+/g, decodeEscapes);
}

const LOSSY_UTF8 = new TextDecoder();

function decodeEscapes(run) {
  if (!run.includes('+')) {
    try {
      return decodeURIComponent(run);
    } catch {
      // Not valid UTF-8: decode byte by byte below.
    }
  }
  const bytes = run.slice(1).split('%').map((h) => parseInt(h, 16));
  return LOSSY_UTF8.decode(Uint8Array.from(bytes));
}

/** The string as given, once and twice percent-decoded (`%2e%2e`, `%252e%252e`). */
function decodings(s) {
  const all = [s];
  while (all.length < 3 && all[all.length - 1].includes('%')) {
    const next = percentDecode(all[all.length - 1]);
    if (all.includes(next)) break;
    all.push(next);
  }
  return all;
}

const OVERLONG_DOT = /%c0%ae|%c0%af|%e0%80%ae/i;
const DOT_DOT_SEGMENT = new RegExp(`(?:^|${charClass('/\\=?&;,', false)})\\.\\.(?:$|${charClass('/\\=?&;,', false)})`);
const DOT_DOT_WORD = new RegExp(`(?:^|${charClass('/\\=?&;,', true)})\\.\\.(?:$|${charClass('/\\=?&;,', true)})`);

/** A `..` path segment next to a separator (`../x`, `a\..\b`, `x/..`, `?f=../x`), in
 * the string or its percent-decodings (`decoded`), or an overlong-UTF-8 dot. In
 * command-like values words are segments too (`cat ../x`). `file..txt` and `...` never
 * are. */
export function hasTraversal(s, decoded, commandLike) {
  if (s.includes('%') && OVERLONG_DOT.test(s)) return true;
  const segment = commandLike ? DOT_DOT_WORD : DOT_DOT_SEGMENT;
  return decoded.some((d) => d.includes('..')
    && (rustTrim(d) === '..' || (/[/\\]/.test(d) && segment.test(d))));
}

/** Starts or ends with whitespace or a quote (JavaScript's whitespace and U+0085:
 * a superset of Rust's), so trimming may change it. */
const PADDED = /^[\s\u0085"']|[\s\u0085"']$/;

/** Normalize a path for the sensitive-path globs: lower case, `/` separators, no
 * `file://` prefix, `~` and `$HOME` as `/~`, no empty or `.` segments. */
function normalizePath(path) {
  const trimmed = PADDED.test(path) ? trimMatching(rustTrim(path), /["']/g) : path;
  let s = p.asciiLower(trimmed).replace(/\\/g, '/');
  if (s.startsWith('file://')) {
    s = s.slice(7);
    if (s.startsWith('localhost')) s = s.slice(9);
  }
  if (s.startsWith('~') || s.startsWith('$')) {
    for (const home of ['~', '$home', '${home}']) {
      if (s === home || s.startsWith(`${home}/`)) s = `/~${s.slice(home.length)}`;
    }
  }
  // Rust looks at byte 1: a ':' there follows a one-byte (ASCII) character.
  const absolute = s.startsWith('/') || (s.charCodeAt(0) < 0x80 && s[1] === ':');
  // Segments without the empty and `.` ones: drop "/." before a "/", squeeze slashes.
  const squeezed = `/${s}/`.replace(/\/\.(?=\/)/g, '').replace(/\/\/+/g, '/');
  const joined = squeezed.slice(1, -1);
  return absolute && !joined.includes(':') ? `/${joined}` : joined;
}

/** Whether `path` (normalized) matches a sensitive glob; relative paths are also tried
 * with a leading `/` against globs that start with `*`. */
function isSensitive(path, globs) {
  return globs.matches(path) || (!path.startsWith('/') && globs.matchesLeadingStar(`/${path}`));
}

const WORD_SEPARATORS = new RegExp(charClass('=;|&<>()"\'`,', true));

/** The whole value (or one of its percent-decodings, `decoded`) is a sensitive path;
 * for command/path-like properties, also any word of it (`cat /etc/shadow`, `--key=~/.ssh/id_rsa`). */
export function reachesSensitivePath(s, decoded, commandLike, globs) {
  if (decoded.some((d) => isSensitive(normalizePath(d), globs))) return true;
  return commandLike && /[/\\~]/.test(s) && s.split(WORD_SEPARATORS)
    .some((w) => (w.includes('/') || w.includes('\\') || w.startsWith('~'))
      && isSensitive(normalizePath(w), globs));
}

/** The first shell metacharacter in `s`, described. */
export function shellMetacharacter(s) {
  return SHELL_META.find(([m]) => s.includes(m))?.[1];
}

/** A `scheme://`, the scheme being the longest run of ASCII letters, digits and `+-.`
 * before it (the lookbehind keeps the search linear). */
const URL_START = /(?<![A-Za-z0-9+.-])([A-Za-z0-9+.-]*):\/\//g;
const AUTHORITY = new RegExp(`[^${RUST_WHITESPACE}/\\\\?#"'<>\`]*`, 'y');

/** Whether a `scheme://` URL in `s` names a host no `allowed` glob matches (`file://`
 * URLs have no host and are left to the path checks). */
function hasForeignHost(s, allowed) {
  if (!s.includes('://')) return false;
  URL_START.lastIndex = 0;
  for (let m = URL_START.exec(s); m; m = URL_START.exec(s)) {
    const scheme = m[1];
    if (!/^[A-Za-z]/.test(scheme) || p.asciiLower(scheme) === 'file') continue;
    AUTHORITY.lastIndex = URL_START.lastIndex;
    const host = hostOf(AUTHORITY.exec(s)[0]);
    if (!allowed.matches(host)) return true;
  }
  return false;
}

/** The host of a URL authority: after the last `@`, without the port, brackets or a
 * trailing dot, lower case. */
export function hostOf(authority) {
  let host = authority.slice(authority.lastIndexOf('@') + 1);
  host = host.startsWith('[') ? host.slice(1).split(']')[0] : host.split(':')[0];
  return p.asciiLower(trimMatching(host, /\./g, true));
}
