// A JSON Schema subset for tool-call arguments (schema.rs).
//
// Supported keywords: `type` (a name or an array of names), `properties`, `required`,
// `additionalProperties` (boolean or schema), `enum`, `const`, `minLength`,
// `maxLength` (in characters), `minimum`, `maximum`, `exclusiveMinimum`,
// `exclusiveMaximum` (numbers, or draft-4 booleans), `items` (one schema, or an array
// of schemas for tuples), `minItems`, `maxItems`, `pattern` (Rust `regex` dialect,
// unanchored, evaluated by the host), `allOf`, `anyOf`, `oneOf`, and the boolean
// schemas. Every other keyword is ignored, which accepts what it would have constrained.

#include "tool_allowlist.h"

#include <stdlib.h>
#include <string.h>

// Violations reported per call, at most.
#define MAX_ERRORS 8

// The `pattern` keywords of one schema, compiled on first use as one host pattern list
// (so a tool's patterns always make the same, cached list).
typedef struct {
  pc_string_t *list;  // borrowed from the schema document
  size_t len, cap;
  enum { NOT_COMPILED, COMPILED, FAILED } state;
  portcullis_policy_matchers_own_matcher_t matcher;
} patterns;

static bool str_is(const char *s, size_t len, const char *word) {
  return strlen(word) == len && memcmp(s, word, len) == 0;
}

static void collect_patterns(const pc_json *schema, patterns *out);

// The subschemas the validator descends into, in its order.
static void collect_subschemas(const pc_json *s, patterns *out) {
  const pc_json *props = pc_json_get(s, "properties");
  if (pc_json_is_object(props))
    for (size_t i = 0; i < pc_json_len(props); i++) collect_patterns(pc_json_at(props, i), out);
  const pc_json *additional = pc_json_get(s, "additionalProperties");
  if (pc_json_is_object(additional)) collect_patterns(additional, out);
  const pc_json *items = pc_json_get(s, "items");
  if (pc_json_is_array(items))
    for (size_t i = 0; i < pc_json_len(items); i++) collect_patterns(pc_json_at(items, i), out);
  else if (items)
    collect_patterns(items, out);
  static const char *const combined[] = {"allOf", "anyOf", "oneOf"};
  for (size_t k = 0; k < 3; k++) {
    const pc_json *list = pc_json_get(s, combined[k]);
    if (pc_json_is_array(list))
      for (size_t i = 0; i < pc_json_len(list); i++) collect_patterns(pc_json_at(list, i), out);
  }
}

static void collect_patterns(const pc_json *schema, patterns *out) {
  if (!pc_json_is_object(schema)) return;
  size_t len;
  const char *p = pc_json_string(pc_json_get(schema, "pattern"), &len);
  bool known = !p;
  for (size_t i = 0; !known && i < out->len; i++)
    known = out->list[i].len == len && memcmp(out->list[i].ptr, p, len) == 0;
  if (!known) {
    if (out->len == out->cap) {
      out->cap = out->cap ? out->cap * 2 : 4;
      out->list = realloc(out->list, out->cap * sizeof *out->list);
      if (!out->list) pc_fail("out of memory");
    }
    out->list[out->len++] = (pc_string_t){(uint8_t *)p, len};
  }
  collect_subschemas(schema, out);
}

// Whether `pattern` matches somewhere in `text` (1), does not (0), or the host cannot
// compile the schema's patterns (-1: unsupported syntax or limits).
static int pattern_matches(patterns *p, const char *pattern, size_t pattern_len,
                           const char *text, size_t text_len) {
  size_t index = 0;
  while (index < p->len && !(p->list[index].len == pattern_len &&
                             memcmp(p->list[index].ptr, pattern, pattern_len) == 0))
    index++;
  if (p->state == NOT_COMPILED) {
    pc_string_t error;
    p->state = pc_matcher_try(p->list, p->len, &p->matcher, &error) ? COMPILED : FAILED;
    if (p->state == FAILED) free(error.ptr);
  }
  if (p->state == FAILED || index == p->len) return -1;
  portcullis_policy_matchers_list_match_t hits =
      pc_matcher_find_all(p->matcher, (const uint8_t *)text, text_len);
  bool found = false;
  for (size_t i = 0; i < hits.len && !found; i++) found = hits.ptr[i].pattern == index;
  portcullis_policy_matchers_list_match_free(&hits);
  return found;
}

// One validation pass: errors go to `out` (NULL for a trial that only counts them).
typedef struct {
  patterns *patterns;
  pc_buf *path;      // the JSON path of the value being checked
  ta_problems *out;
  size_t errors;
} validator;

static bool full(const validator *v) { return v->errors >= MAX_ERRORS; }

// Record "<path>: <problem><detail>" (detail: a pre-formatted suffix or NULL).
static void fail(validator *v, const char *problem, const pc_buf *detail) {
  if (full(v)) return;
  v->errors++;
  if (!v->out) return;
  pc_buf message = {0};
  pc_buf_str(&message, "arguments do not match the input schema: ");
  pc_buf_add(&message, v->path->ptr, v->path->len);
  pc_buf_str(&message, ": ");
  pc_buf_str(&message, problem);
  if (detail) pc_buf_add(&message, detail->ptr, detail->len);
  ta_problems_add(v->out, message.ptr);
  free(message.ptr);
}

// Record "<path>: <problem> <number>" with the number as Rust displays an f64.
static void fail_number(validator *v, const char *problem, double n) {
  pc_buf detail = {0};
  pc_buf_f64(&detail, n);
  fail(v, problem, &detail);
  free(detail.ptr);
}

static bool number_of(const pc_json *s, const char *key, double *out) {
  return pc_json_number(pc_json_get(s, key), out);
}

static const char *type_name(const pc_json *value) {
  switch (pc_json_kind_of(value)) {
    case PC_JSON_NULL: return "null";
    case PC_JSON_BOOL: return "boolean";
    case PC_JSON_NUMBER: return pc_json_is_integral(value) ? "integer" : "number";
    case PC_JSON_STRING: return "string";
    case PC_JSON_ARRAY: return "array";
    default: return "object";
  }
}

// Whether `value` is of the type `name`; unknown type names allow anything.
static bool type_is(const char *name, size_t len, const pc_json *value) {
  bool number = pc_json_kind_of(value) == PC_JSON_NUMBER;
  if (str_is(name, len, "integer")) return number && pc_json_is_integral(value);
  if (str_is(name, len, "number")) return number;
  static const char *const plain[] = {"object", "array", "string", "boolean", "null"};
  for (size_t i = 0; i < 5; i++)
    if (str_is(name, len, plain[i])) return strcmp(type_name(value), plain[i]) == 0;
  return true;
}

static bool type_allows(const pc_json *t, const pc_json *value) {
  size_t len;
  const char *name = pc_json_string(t, &len);
  if (name) return type_is(name, len, value);
  if (!pc_json_is_array(t)) return true;
  for (size_t i = 0; i < pc_json_len(t); i++)
    if ((name = pc_json_string(pc_json_at(t, i), &len)) && type_is(name, len, value)) return true;
  return false;
}

static void type_list(const pc_json *t, pc_buf *out) {
  size_t len;
  const char *name = pc_json_string(t, &len);
  if (name) return pc_buf_add(out, name, len);
  bool first = true;
  for (size_t i = 0; i < pc_json_len(t); i++) {
    if (!(name = pc_json_string(pc_json_at(t, i), &len))) continue;
    if (!first) pc_buf_str(out, " or ");
    pc_buf_add(out, name, len);
    first = false;
  }
}

// JSON equality with numbers compared by value (`1` equals `1.0`).
static bool json_equal(const pc_json *a, const pc_json *b) {
  pc_json_kind kind = pc_json_kind_of(a);
  if (kind != pc_json_kind_of(b)) return false;
  switch (kind) {
    case PC_JSON_NULL: return true;
    case PC_JSON_BOOL: {
      bool x = false, y = false;
      pc_json_bool(a, &x), pc_json_bool(b, &y);
      return x == y;
    }
    case PC_JSON_NUMBER: {
      double x = 0, y = 0;
      pc_json_number(a, &x), pc_json_number(b, &y);
      return x == y;
    }
    case PC_JSON_STRING: {
      size_t n, m;
      const char *x = pc_json_string(a, &n), *y = pc_json_string(b, &m);
      return n == m && memcmp(x, y, n) == 0;
    }
    case PC_JSON_ARRAY:
      if (pc_json_len(a) != pc_json_len(b)) return false;
      for (size_t i = 0; i < pc_json_len(a); i++)
        if (!json_equal(pc_json_at(a, i), pc_json_at(b, i))) return false;
      return true;
    default:
      if (pc_json_len(a) != pc_json_len(b)) return false;
      for (size_t i = 0; i < pc_json_len(a); i++) {
        size_t n;
        const char *key = pc_json_key_n(a, i, &n);
        const pc_json *other = pc_json_get_n(b, key, n);
        if (!other || !json_equal(pc_json_at(a, i), other)) return false;
      }
      return true;
  }
}

static void check(validator *v, const pc_json *schema, const pc_json *value);

static void check_string(validator *v, const pc_json *s, const pc_json *value) {
  size_t len;
  const char *text = pc_json_string(value, &len);
  size_t chars = 0;
  for (size_t i = 0; i < len; i++) chars += ((unsigned char)text[i] & 0xc0) != 0x80;
  double n = (double)chars, min, max;
  if (number_of(s, "minLength", &min) && n < min) fail_number(v, "shorter than minLength ", min);
  if (number_of(s, "maxLength", &max) && n > max) fail_number(v, "longer than maxLength ", max);
  size_t pattern_len;
  const char *pattern = pc_json_string(pc_json_get(s, "pattern"), &pattern_len);
  if (!pattern) return;
  int matched = pattern_matches(v->patterns, pattern, pattern_len, text, len);
  if (matched == 0) fail(v, "does not match the schema pattern", NULL);
  if (matched < 0) fail(v, "schema pattern cannot be evaluated (unsupported syntax or limits)", NULL);
}

static void check_number(validator *v, const pc_json *s, double n) {
  // Draft 4 spells exclusive bounds as booleans next to minimum/maximum.
  bool exclusive_min = false, exclusive_max = false;
  pc_json_bool(pc_json_get(s, "exclusiveMinimum"), &exclusive_min);
  pc_json_bool(pc_json_get(s, "exclusiveMaximum"), &exclusive_max);
  double bound;
  if (number_of(s, "minimum", &bound) && (n < bound || (exclusive_min && n <= bound)))
    fail_number(v, "below minimum ", bound);
  if (number_of(s, "maximum", &bound) && (n > bound || (exclusive_max && n >= bound)))
    fail_number(v, "above maximum ", bound);
  if (number_of(s, "exclusiveMinimum", &bound) && n <= bound)
    fail_number(v, "not above exclusiveMinimum ", bound);
  if (number_of(s, "exclusiveMaximum", &bound) && n >= bound)
    fail_number(v, "not below exclusiveMaximum ", bound);
}

// Check `value` against `schema` at path + "[i]".
static void check_item(validator *v, const pc_json *schema, const pc_json *value, size_t i) {
  size_t mark = v->path->len;
  pc_buf_str(v->path, "[");
  pc_buf_u64(v->path, i);
  pc_buf_str(v->path, "]");
  check(v, schema, value);
  pc_buf_truncate(v->path, mark);
}

static void check_array(validator *v, const pc_json *s, const pc_json *value) {
  size_t count = pc_json_len(value);
  double len = (double)count, min, max;
  if (number_of(s, "minItems", &min) && len < min) fail_number(v, "fewer than minItems ", min);
  if (number_of(s, "maxItems", &max) && len > max) fail_number(v, "more than maxItems ", max);
  const pc_json *items = pc_json_get(s, "items");
  if (pc_json_is_array(items)) {  // a tuple
    for (size_t i = 0; i < pc_json_len(items) && i < count; i++)
      check_item(v, pc_json_at(items, i), pc_json_at(value, i), i);
  } else if (items) {
    for (size_t i = 0; i < count && !full(v); i++) check_item(v, items, pc_json_at(value, i), i);
  }
}

static void check_object(validator *v, const pc_json *s, const pc_json *map) {
  const pc_json *required = pc_json_get(s, "required");
  for (size_t i = 0; i < pc_json_len(required) && pc_json_is_array(required); i++) {
    size_t len;
    const char *name = pc_json_string(pc_json_at(required, i), &len);
    if (!name || pc_json_get_n(map, name, len)) continue;
    pc_buf detail = {0};
    ta_quoted(&detail, name, len);
    fail(v, "missing required property ", &detail);
    free(detail.ptr);
  }
  const pc_json *props = pc_json_get(s, "properties");
  if (!pc_json_is_object(props)) props = NULL;
  const pc_json *additional = pc_json_get(s, "additionalProperties");
  bool additional_false = false;
  bool additional_is_bool = pc_json_bool(additional, &additional_false);
  additional_false = additional_is_bool && !additional_false;
  for (size_t i = 0; i < pc_json_len(map) && !full(v); i++) {
    size_t len;
    const char *key = pc_json_key_n(map, i, &len);
    const pc_json *schema = pc_json_get_n(props, key, len);
    if (!schema && additional_false) {
      pc_buf detail = {0};
      ta_quoted(&detail, key, len);
      fail(v, "unexpected property ", &detail);
      free(detail.ptr);
      continue;
    }
    if (!schema) schema = additional;
    if (!schema) continue;
    size_t mark = v->path->len;
    ta_child_path(v->path, key, len);
    check(v, schema, pc_json_at(map, i));
    pc_buf_truncate(v->path, mark);
  }
}

// Whether `value` satisfies `schema`, without recording the violations.
static bool passes(validator *v, const pc_json *schema, const pc_json *value) {
  validator trial = {v->patterns, v->path, NULL, 0};
  check(&trial, schema, value);
  return trial.errors == 0;
}

static void check_combinators(validator *v, const pc_json *s, const pc_json *value) {
  const pc_json *all = pc_json_get(s, "allOf");
  for (size_t i = 0; pc_json_is_array(all) && i < pc_json_len(all); i++)
    check(v, pc_json_at(all, i), value);
  const pc_json *any = pc_json_get(s, "anyOf");
  if (pc_json_is_array(any)) {
    bool passed = false;
    for (size_t i = 0; i < pc_json_len(any) && !passed; i++) passed = passes(v, pc_json_at(any, i), value);
    if (!passed) fail(v, "matches none of the anyOf schemas", NULL);
  }
  const pc_json *one = pc_json_get(s, "oneOf");
  if (pc_json_is_array(one)) {
    size_t passing = 0;
    for (size_t i = 0; i < pc_json_len(one); i++) passing += passes(v, pc_json_at(one, i), value);
    if (passing != 1) {
      pc_buf detail = {0};
      pc_buf_u64(&detail, passing);
      pc_buf_str(&detail, " of the oneOf schemas (exactly 1 required)");
      fail(v, "matches ", &detail);
      free(detail.ptr);
    }
  }
}

static void check(validator *v, const pc_json *schema, const pc_json *value) {
  bool allowed;
  if (pc_json_bool(schema, &allowed) && !allowed) return fail(v, "not allowed by the schema", NULL);
  if (!pc_json_is_object(schema)) return;
  const pc_json *t = pc_json_get(schema, "type");
  if (t && !type_allows(t, value)) {
    pc_buf detail = {0};
    type_list(t, &detail);
    pc_buf_str(&detail, ", got ");
    pc_buf_str(&detail, type_name(value));
    fail(v, "expected ", &detail);
    free(detail.ptr);
    return;
  }
  const pc_json *options = pc_json_get(schema, "enum");
  if (pc_json_is_array(options)) {
    bool found = false;
    for (size_t i = 0; i < pc_json_len(options) && !found; i++) found = json_equal(pc_json_at(options, i), value);
    if (!found) fail(v, "value is not one of the allowed values (enum)", NULL);
  }
  const pc_json *constant = pc_json_get(schema, "const");
  if (constant && !json_equal(constant, value))
    fail(v, "value differs from the required constant (const)", NULL);
  double n;
  switch (pc_json_kind_of(value)) {
    case PC_JSON_STRING: check_string(v, schema, value); break;
    case PC_JSON_NUMBER: pc_json_number(value, &n), check_number(v, schema, n); break;
    case PC_JSON_ARRAY: check_array(v, schema, value); break;
    case PC_JSON_OBJECT: check_object(v, schema, value); break;
    default: break;
  }
  check_combinators(v, schema, value);
}

void ta_schema_validate(const pc_json *schema, const pc_json *arguments, ta_problems *out) {
  patterns p = {0};
  collect_patterns(schema, &p);
  pc_buf path = {0};
  pc_buf_str(&path, "$");
  validator v = {&p, &path, out, 0};
  check(&v, schema, arguments);
  if (p.state == COMPILED) portcullis_policy_matchers_matcher_drop_own(p.matcher);
  free(p.list);
  free(path.ptr);
}

void ta_quoted(pc_buf *out, const char *name, size_t len) { pc_buf_debug_str(out, name, len, 64); }

void ta_child_path(pc_buf *path, const char *key, size_t len) {
  bool simple = len > 0 && len <= 64;
  for (size_t i = 0; simple && i < len; i++) {
    char c = key[i];
    simple = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '-';
  }
  if (simple) {
    pc_buf_str(path, ".");
    pc_buf_add(path, key, len);
  } else {
    pc_buf_str(path, "[");
    ta_quoted(path, key, len);
    pc_buf_str(path, "]");
  }
}
