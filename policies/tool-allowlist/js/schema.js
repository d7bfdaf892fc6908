// A JSON Schema subset for tool-call arguments: the Rust policy's `schema.rs`, with the
// same keywords, order of checks and messages.
//
// Supported: `type` (a name or an array of names), `properties`, `required`,
// `additionalProperties` (boolean or schema), `enum`, `const`, `minLength`/`maxLength`
// (in characters), `minimum`/`maximum`, `exclusiveMinimum`/`exclusiveMaximum` (numbers,
// or draft-4 booleans), `items` (one schema, or an array for tuples),
// `minItems`/`maxItems`, `pattern` (Rust `regex` dialect, unanchored, evaluated by the
// host), `allOf`, `anyOf`, `oneOf`, and the boolean schemas. Every other keyword is
// ignored, which accepts what it would have constrained.

import * as p from '../../../sdk/js/portcullis.js';
import { isObject, member, sortedKeys } from './json.js';
import { codePointLength, debugQuoted, firstCodePoints, formatF64 } from './text.js';

/** Violations reported per call, at most. */
export const MAX_ERRORS = 8;

/** The `pattern` keywords of one schema, compiled on first use as one host pattern
 * list (so a tool's patterns always make the same, cached list). */
export class Patterns {
  constructor(schema) {
    this.list = [];
    collectPatterns(schema, this.list);
    this.compiled = undefined;
  }

  /** Whether `pattern` matches somewhere in `text`; undefined when the host cannot
   * compile the schema's patterns (unsupported syntax or limits). */
  isMatch(pattern, text) {
    const index = this.list.indexOf(pattern);
    if (index < 0) return undefined;
    this.compiled ??= p.Matcher.tryCompile(this.list);
    const { matcher } = this.compiled;
    return matcher ? matcher.findAll(text).some(([hit]) => hit === index) : undefined;
  }
}

function collectPatterns(schema, out) {
  if (!isObject(schema)) return;
  const pattern = member(schema, 'pattern');
  if (typeof pattern === 'string' && !out.includes(pattern)) out.push(pattern);
  for (const sub of subschemas(schema)) collectPatterns(sub, out);
}

/** The subschemas the validator descends into, in the Rust policy's order. */
function subschemas(s) {
  const subs = [];
  const props = member(s, 'properties');
  if (isObject(props)) sortedKeys(props).forEach((k) => subs.push(props[k]));
  const additional = member(s, 'additionalProperties');
  if (isObject(additional)) subs.push(additional);
  const items = member(s, 'items');
  if (Array.isArray(items)) subs.push(...items);
  else if (items !== undefined) subs.push(items);
  for (const k of ['allOf', 'anyOf', 'oneOf']) {
    const all = member(s, k);
    if (Array.isArray(all)) subs.push(...all);
  }
  return subs;
}

/** Validate `value` against `schema`; at most MAX_ERRORS violations, each naming the
 * JSON path and the keyword, never the offending value. */
export function validate(schema, value, patterns) {
  const v = new Validator(patterns);
  v.check(schema, value, '$');
  return v.errors;
}

class Validator {
  constructor(patterns) {
    this.patterns = patterns;
    this.errors = [];
  }

  fail(path, problem) {
    if (this.errors.length < MAX_ERRORS) this.errors.push(`${path}: ${problem}`);
  }

  full() {
    return this.errors.length >= MAX_ERRORS;
  }

  check(schema, value, path) {
    if (schema === false) return this.fail(path, 'not allowed by the schema');
    if (!isObject(schema)) return undefined;
    const s = schema;
    const t = member(s, 'type');
    if (t !== undefined && !typeAllows(t, value)) {
      return this.fail(path, `expected ${typeList(t)}, got ${typeName(value)}`);
    }
    const options = member(s, 'enum');
    if (Array.isArray(options) && !options.some((o) => jsonEqual(o, value))) {
      this.fail(path, 'value is not one of the allowed values (enum)');
    }
    const c = member(s, 'const');
    if (c !== undefined && !jsonEqual(c, value)) {
      this.fail(path, 'value differs from the required constant (const)');
    }
    if (typeof value === 'string') this.checkString(s, value, path);
    else if (typeof value === 'number') this.checkNumber(s, value, path);
    else if (Array.isArray(value)) this.checkArray(s, value, path);
    else if (isObject(value)) this.checkObject(s, value, path);
    this.checkCombinators(s, value, path);
    return undefined;
  }

  checkString(s, text, path) {
    const minLength = number(s, 'minLength');
    const maxLength = number(s, 'maxLength');
    if (minLength !== undefined || maxLength !== undefined) {
      const len = codePointLength(text);
      if (minLength !== undefined && len < minLength) this.fail(path, `shorter than minLength ${formatF64(minLength)}`);
      if (maxLength !== undefined && len > maxLength) this.fail(path, `longer than maxLength ${formatF64(maxLength)}`);
    }
    const pattern = member(s, 'pattern');
    if (typeof pattern === 'string') {
      const matched = this.patterns.isMatch(pattern, text);
      if (matched === false) this.fail(path, 'does not match the schema pattern');
      if (matched === undefined) {
        this.fail(path, 'schema pattern cannot be evaluated (unsupported syntax or limits)');
      }
    }
  }

  checkNumber(s, n, path) {
    // Draft 4 spells exclusive bounds as booleans next to minimum/maximum.
    const draft4Exclusive = (key) => member(s, key) === true;
    const min = number(s, 'minimum');
    if (min !== undefined && (n < min || (draft4Exclusive('exclusiveMinimum') && n <= min))) {
      this.fail(path, `below minimum ${formatF64(min)}`);
    }
    const max = number(s, 'maximum');
    if (max !== undefined && (n > max || (draft4Exclusive('exclusiveMaximum') && n >= max))) {
      this.fail(path, `above maximum ${formatF64(max)}`);
    }
    const exclusiveMin = number(s, 'exclusiveMinimum');
    if (exclusiveMin !== undefined && n <= exclusiveMin) {
      this.fail(path, `not above exclusiveMinimum ${formatF64(exclusiveMin)}`);
    }
    const exclusiveMax = number(s, 'exclusiveMaximum');
    if (exclusiveMax !== undefined && n >= exclusiveMax) {
      this.fail(path, `not below exclusiveMaximum ${formatF64(exclusiveMax)}`);
    }
  }

  checkArray(s, items, path) {
    const minItems = number(s, 'minItems');
    if (minItems !== undefined && items.length < minItems) this.fail(path, `fewer than minItems ${formatF64(minItems)}`);
    const maxItems = number(s, 'maxItems');
    if (maxItems !== undefined && items.length > maxItems) this.fail(path, `more than maxItems ${formatF64(maxItems)}`);
    const schema = member(s, 'items');
    if (Array.isArray(schema)) {
      const n = Math.min(schema.length, items.length);
      for (let i = 0; i < n; i++) this.check(schema[i], items[i], `${path}[${i}]`);
    } else if (schema !== undefined) {
      for (let i = 0; i < items.length; i++) {
        if (this.full()) return;
        this.check(schema, items[i], `${path}[${i}]`);
      }
    }
  }

  checkObject(s, map, path) {
    const required = member(s, 'required');
    if (Array.isArray(required)) {
      for (const name of required) {
        if (typeof name === 'string' && !Object.hasOwn(map, name)) {
          this.fail(path, `missing required property ${quoted(name)}`);
        }
      }
    }
    const props = isObject(member(s, 'properties')) ? s.properties : undefined;
    const additional = member(s, 'additionalProperties');
    for (const key of sortedKeys(map)) {
      if (this.full()) return;
      const schema = props === undefined ? undefined : member(props, key);
      if (schema !== undefined) this.check(schema, map[key], childPath(path, key));
      else if (additional === false) this.fail(path, `unexpected property ${quoted(key)}`);
      else if (additional !== undefined) this.check(additional, map[key], childPath(path, key));
    }
  }

  checkCombinators(s, value, path) {
    const allOf = member(s, 'allOf');
    if (Array.isArray(allOf)) allOf.forEach((schema) => this.check(schema, value, path));
    const anyOf = member(s, 'anyOf');
    if (Array.isArray(anyOf) && !anyOf.some((o) => this.passes(o, value, path))) {
      this.fail(path, 'matches none of the anyOf schemas');
    }
    const oneOf = member(s, 'oneOf');
    if (Array.isArray(oneOf)) {
      const passing = oneOf.filter((o) => this.passes(o, value, path)).length;
      if (passing !== 1) this.fail(path, `matches ${passing} of the oneOf schemas (exactly 1 required)`);
    }
  }

  /** Whether `value` satisfies `schema`, without recording the violations. */
  passes(schema, value, path) {
    const trial = new Validator(this.patterns);
    trial.check(schema, value, path);
    return trial.errors.length === 0;
  }
}

function number(s, key) {
  const n = member(s, key);
  return typeof n === 'number' ? n : undefined;
}

/** The JSON type name; integral numbers (also `3.0`) are `integer`. */
function typeName(value) {
  if (value === null) return 'null';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  if (Array.isArray(value)) return 'array';
  return typeof value === 'object' ? 'object' : typeof value;
}

const TYPE_NAMES = ['object', 'array', 'string', 'boolean', 'null'];

/** Whether `value` is of the type named by `t`; unknown type names allow anything. */
function typeAllows(t, value) {
  const one = (name) => {
    if (name === 'integer') return typeof value === 'number' && Number.isInteger(value);
    if (name === 'number') return typeof value === 'number';
    if (TYPE_NAMES.includes(name)) return typeName(value) === name;
    return true;
  };
  if (typeof t === 'string') return one(t);
  if (Array.isArray(t)) return t.some((name) => typeof name === 'string' && one(name));
  return true;
}

function typeList(t) {
  if (Array.isArray(t)) return t.filter((name) => typeof name === 'string').join(' or ');
  return typeof t === 'string' ? t : 'a valid type';
}

/** JSON equality with numbers compared by value (`1` equals `1.0`). */
function jsonEqual(a, b) {
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  }
  if (isObject(a)) {
    if (!isObject(b)) return false;
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length
      && keys.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
  }
  return a === b;
}

/** A property name for messages: quoted as Rust's `{:?}` does, cut to 64 characters. */
function quoted(name) {
  return debugQuoted(firstCodePoints(name, 64));
}

/** `$.name` for identifier-like names, `$["odd name"]` otherwise. */
export function childPath(path, key) {
  return /^[A-Za-z0-9_-]{1,64}$/.test(key) ? `${path}.${key}` : `${path}[${quoted(key)}]`;
}
