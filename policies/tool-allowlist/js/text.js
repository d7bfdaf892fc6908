// Rust-compatible string helpers: the Rust policy's results depend on Rust's notion of
// whitespace, characters (code points), string order and formatting, which differ
// from JavaScript's (UTF-16 units, its own whitespace set, exponent notation).
// Everything here runs in linear time on native string operations: the interpreter is
// slow, so per-character JavaScript loops are avoided.

/** Rust's `char::is_whitespace` (Unicode White_Space), as a regex character class body. */
export const RUST_WHITESPACE = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

const NON_RUST_WHITESPACE = new RegExp(`[^${RUST_WHITESPACE}]`);

/** Rust's `str::trim`. JavaScript's trim also removes U+FEFF and keeps U+0085, so those
 * two are mapped (index-preserving) before the native trim finds the bounds. */
export function rustTrim(text) {
  if (!/[\u0085\ufeff]/.test(text)) return text.trim();
  return trimBounds(text, text.replace(/\ufeff/g, 'x').replace(/\u0085/g, ' '));
}

/** `text.trim().is_empty()` in Rust. */
export function isRustBlank(text) {
  return !NON_RUST_WHITESPACE.test(text);
}

/** `text` without the leading and trailing characters that `set` (a global regex of
 * single UTF-16 units, none of them whitespace) matches, like Rust's `trim_matches`:
 * the set is mapped to spaces and whitespace to a non-space, so the native trim finds
 * the bounds in linear time. Only the end is trimmed with `endOnly`. */
export function trimMatching(text, set, endOnly = false) {
  const probe = text.replace(/\s/g, 'x').replace(set, ' ');
  return trimBounds(text, endOnly ? `x${probe}` : probe, endOnly ? 1 : 0);
}

/** `text` cut to the part of `probe` (the same length plus `shift` leading units)
 * that the native trim keeps. */
function trimBounds(text, probe, shift = 0) {
  const start = probe.length - probe.trimStart().length - shift;
  const end = probe.trimEnd().length - shift;
  return start < end ? text.slice(Math.max(start, 0), end) : '';
}

/** A regex character class of `chars`, plus Rust's whitespace when `withWhitespace`
 * (for Rust's `split(|c| ... || c.is_whitespace())`). */
export function charClass(chars, withWhitespace) {
  const escaped = chars.replace(/[\\\]^-]/g, '\\$&');
  return `[${escaped}${withWhitespace ? RUST_WHITESPACE : ''}]`;
}

/** Length in Unicode code points (Rust's `chars().count()`). */
export function codePointLength(text) {
  if (!/[\ud800-\udbff]/.test(text)) return text.length;
  return text.length - (text.length - text.replace(/[\ud800-\udbff]/g, '').length);
}

/** The first `n` code points of `text`. */
export function firstCodePoints(text, n) {
  if (text.length <= n) return text;
  return Array.from(text.slice(0, 2 * n)).slice(0, n).join('');
}

/** Rust's string order (UTF-8 bytes, i.e. code points); JavaScript's default sort
 * compares UTF-16 units, which puts U+10000.. before U+E000..U+FFFF. */
export function compareCodePoints(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

function codePointRank(unit) {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  return unit >= 0xe000 ? unit - 0x800 : unit;
}

/** Sort strings as Rust's `BTreeMap<String, _>` orders its keys. */
export function sortRust(strings) {
  return strings.some((s) => /[\ud800-\uffff]/.test(s)) ? strings.sort(compareCodePoints) : strings.sort();
}

/** An `f64` as Rust's `Display` writes it: shortest round-trip digits, never an
 * exponent (`1e21` is `1000000000000000000000`), `-0` kept. */
export function formatF64(n) {
  if (Object.is(n, -0)) return '-0';
  const s = String(n);
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(s);
  if (!m) return s;
  const digits = m[2] + (m[3] ?? '');
  const exponent = Number(m[4]);
  if (exponent >= 0) return m[1] + digits.padEnd(exponent + 1, '0');
  return `${m[1]}0.${'0'.repeat(-exponent - 1)}${digits}`;
}

/** A string as Rust's `{:?}` writes it: in double quotes, with `\0 \t \r \n \\ \"`
 * escaped and other non-printable or combining characters as `\u{hex}`. Rust decides
 * that with Unicode tables this runtime does not have (no `\p{..}` in its regexes), so
 * the set below covers controls, separators, format characters, private use and the
 * combining-mark blocks and noncharacters, but not other unassigned code points. */
export function debugQuoted(text) {
  return `"${text.replace(DEBUG_ESCAPED, debugEscape)}"`;
}

const DEBUG_SHORT = { '\0': '\\0', '\t': '\\t', '\r': '\\r', '\n': '\\n', '\\': '\\\\', '"': '\\"' };

function debugEscape(c) {
  return DEBUG_SHORT[c] ?? `\\u{${c.codePointAt(0).toString(16)}}`;
}

const DEBUG_ESCAPED = new RegExp('[' + [
  '\\0\\t\\r\\n\\\\"',
  '\\x01-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\xa0\\xad', // controls, NBSP, soft hyphen
  '\\u0300-\\u036f\\u0483-\\u0489\\u0591-\\u05bd\\u05bf\\u05c1\\u05c2\\u05c4\\u05c5\\u05c7', // combining
  '\\u0600-\\u0605\\u061c\\u06dd\\u070f\\u0890\\u0891\\u08e2\\u1680\\u180e', // format, Ogham space
  '\\u1ab0-\\u1aff\\u1dc0-\\u1dff\\u2000-\\u200f\\u2028-\\u202f\\u205f-\\u2064\\u2066-\\u206f',
  '\\u20d0-\\u20ff\\u3000\\u3099\\u309a\\ue000-\\uf8ff\\ufdd0-\\ufdef\\ufe00-\\ufe0f\\ufe20-\\ufe2f\\ufeff\\ufff0-\\ufffb\\ufffe\\uffff', // and noncharacters
  '\\u{110bd}\\u{110cd}\\u{1bca0}-\\u{1bca3}\\u{1d165}-\\u{1d169}\\u{1d16d}-\\u{1d182}',
  '\\u{e0000}-\\u{e0fff}\\u{f0000}-\\u{10ffff}',
].join('') + ']', 'gu');
