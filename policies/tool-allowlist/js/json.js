// JSON as the Rust policy reads it (`serde_json::from_str::<Value>`), on top of the
// native JSON.parse. serde_json rejects what JSON.parse accepts in three cases, which
// are checked here: nesting deeper than 127 arrays/objects (its recursion limit),
// `\u` escapes of unpaired surrogates, and numbers too large for an f64. Objects keep
// JSON.parse's semantics otherwise (the last duplicate key wins, as in serde_json);
// iterate them with `sortedKeys`, the order of serde_json's `BTreeMap`.

import { sortRust } from './text.js';

/** serde_json's recursion limit: it refuses the 128th nested array or object. */
const MAX_DEPTH = 127;

/** The parsed value, or undefined when serde_json would refuse `text`. */
export function parseJson(text) {
  if (tooDeep(text) || LONE_SURROGATE_HINT.test(text) && hasLoneSurrogateEscape(text)) return undefined;
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (OVERFLOW_HINT.test(text) && !allFinite(value)) return undefined;
  return value;
}

/** Whether arrays/objects nest deeper than serde_json allows. Counting brackets is
 * enough when there are few; otherwise the brackets outside strings are followed (on
 * valid JSON; anything else fails JSON.parse anyway), stopping at the first level too
 * deep, before JSON.parse could exhaust the memory. */
function tooDeep(text) {
  // Split stops after MAX_DEPTH + 2 pieces, so this costs a scan, not one string per bracket.
  if (text.split(/[[{]/, MAX_DEPTH + 2).length <= MAX_DEPTH + 1) return false;
  const brackets = text.replace(/\\[^]/g, '').replace(/"[^"]*"/g, '').replace(/[^[\]{}]/g, '');
  let depth = 0;
  for (let i = 0; i < brackets.length; i++) {
    const c = brackets[i];
    if (c !== '[' && c !== '{') depth--;
    else if (++depth > MAX_DEPTH) return true;
  }
  return false;
}

const LONE_SURROGATE_HINT = /\\u[dD][89a-fA-F]/;

/** Escapes left to right, except a `\u` escape of a surrogate that is not the leading
 * half of a pair: what remains of those is a lone surrogate (serde_json refuses them,
 * JSON.parse makes a lone UTF-16 unit). */
const ALL_BUT_LONE_SURROGATES = /\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|u(?![dD][89a-fA-F])|[^u])/g;

function hasLoneSurrogateEscape(text) {
  return LONE_SURROGATE_HINT.test(text.replace(ALL_BUT_LONE_SURROGATES, ''));
}

/** A number that might overflow an f64: an exponent of three or more digits, or a
 * 309-digit run. Only then are the numbers checked one by one. */
const OVERFLOW_HINT = /[eE]\+?\d{3}|\d{309}/;

function allFinite(value) {
  if (typeof value === 'number') return Number.isFinite(value);
  if (value === null || typeof value !== 'object') return true;
  return Object.values(value).every(allFinite);
}

/** A JSON object (not an array or null). */
export function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** `object[key]` if it is the object's own member (never an inherited property such
 * as `constructor`), else undefined. */
export function member(object, key) {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

/** The object's keys in serde_json's order (its map is a BTreeMap: sorted by bytes). */
export function sortedKeys(object) {
  return sortRust(Object.keys(object));
}
