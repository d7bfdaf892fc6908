// Helpers for Portcullis policies written in C.
//
// Include the bindings `portcullis build --lang c` generates for your world first
// (e.g. "guardrail.h"), then this header, and build with sdk/c/portcullis.c:
//
//   portcullis build --lang c --world guardrail -I sdk/c --out p.wasm p.c sdk/c/portcullis.c
//
// Ownership (the C bindings' rules): the arguments of an exported function belong to
// it (free them with the generated *_free functions); everything in a returned value
// must be heap-allocated (malloc, or these helpers), because the host's post-return
// call frees it. Spans are UTF-8 byte offsets, C's native unit.
#ifndef PORTCULLIS_H
#define PORTCULLIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__BINDINGS_GUARDRAIL_H)
typedef guardrail_string_t pc_string_t;
typedef guardrail_list_string_t pc_list_string_t;
#elif defined(__BINDINGS_TOOL_SANDBOX_H)
typedef tool_sandbox_string_t pc_string_t;
typedef tool_sandbox_list_string_t pc_list_string_t;
#elif defined(__BINDINGS_OUTPUT_FILTER_H)
typedef output_filter_string_t pc_string_t;
typedef output_filter_list_string_t pc_list_string_t;
#elif defined(__BINDINGS_CONTENT_POLICY_H)
typedef content_policy_string_t pc_string_t;
typedef content_policy_list_string_t pc_list_string_t;
#else
#error "include the generated bindings (e.g. guardrail.h) before portcullis.h"
#endif

typedef portcullis_policy_types_finding_t pc_finding_t;
typedef portcullis_policy_types_list_finding_t pc_findings_t;

// ---- failing -------------------------------------------------------------------

// Log `reason` and trap: the evaluation ends as an error (the host applies on_error).
_Noreturn void pc_fail(const char *reason);

// A log line kept with the evaluation.
void pc_log(portcullis_policy_host_level_t level, const char *message);

// ---- strings -------------------------------------------------------------------

// A heap copy of `len` bytes (for returned values).
pc_string_t pc_string_n(const char *s, size_t len);
// A heap copy of a NUL-terminated string.
pc_string_t pc_string(const char *s);

// ---- JSON -----------------------------------------------------------------------
//
// A strict JSON reader with serde_json's rules (RFC 8259; no trailing garbage; paired
// \u surrogates; at most 127 nested arrays/objects; numbers too large for an f64
// rejected) and its number model: an integer literal that fits u64 (or, negative,
// i64) stays an integer, anything else becomes an f64 computed exactly as serde_json
// does without its `float_roundtrip` feature. Objects behave like serde_json's
// default map: members sorted by key (bytewise), a repeated key keeps its last value
// (and the object remembers that a key was repeated, for strict configurations).

typedef struct pc_json pc_json;

// The kind of a JSON value.
typedef enum { PC_JSON_NULL, PC_JSON_BOOL, PC_JSON_NUMBER, PC_JSON_STRING, PC_JSON_ARRAY,
               PC_JSON_OBJECT } pc_json_kind;

// A parsed document. Everything it holds lives in one arena freed by pc_json_free.
typedef struct pc_json_doc pc_json_doc;

// Parse `len` bytes of JSON text; NULL (and a static message in *error) when it is not
// valid JSON. Never traps on bad input; fails only when memory runs out.
pc_json_doc *pc_json_parse(const char *text, size_t len, const char **error);
// The document's top-level value.
const pc_json *pc_json_root(const pc_json_doc *doc);
// Free a document and every value in it.
void pc_json_free(pc_json_doc *doc);

// The operator's configuration of this policy, parsed (an empty object when none);
// bad JSON or a non-object fails the evaluation. Owned by the SDK.
const pc_json *pc_config(void);

// The kind of `v` (NULL counts as null).
pc_json_kind pc_json_kind_of(const pc_json *v);
// The member `key` of an object (NUL-terminated / `len` bytes), or NULL.
const pc_json *pc_json_get(const pc_json *object, const char *key);
const pc_json *pc_json_get_n(const pc_json *object, const char *key, size_t len);
// Whether `v` is a string / an array / an object.
bool pc_json_is_string(const pc_json *v);
bool pc_json_is_array(const pc_json *v);
bool pc_json_is_object(const pc_json *v);
// A boolean: true when `v` is one, with its value in *out.
bool pc_json_bool(const pc_json *v, bool *out);
// A number as an f64 (serde_json's as_f64: integers are rounded to the nearest f64):
// true when `v` is a number.
bool pc_json_number(const pc_json *v, double *out);
// Whether a number is integral: an integer literal, or an f64 without fraction (so
// `3.0` and `1e2` are, like serde_json's is_i64 || is_u64 || fract() == 0).
bool pc_json_is_integral(const pc_json *v);
// A string's bytes (NUL-terminated; may contain NUL) and length.
const char *pc_json_string(const pc_json *v, size_t *len);
// An array's or object's length, and its i-th element (an object's i-th value).
size_t pc_json_len(const pc_json *v);
const pc_json *pc_json_at(const pc_json *v, size_t i);
// The i-th key of an object (in key order), or NULL; pc_json_key_n also gives its
// length (keys may contain NUL).
const char *pc_json_key(const pc_json *v, size_t i);
const char *pc_json_key_n(const pc_json *v, size_t i, size_t *len);
// Whether an object's text repeated a key (serde structs reject that).
bool pc_json_has_duplicate_keys(const pc_json *v);
// A member that must be a string (or absent: `fallback`); fails otherwise.
const char *pc_config_string(const pc_json *config, const char *key, const char *fallback);

// ---- text building (no stdio) -----------------------------------------------------

// A growable, NUL-terminated byte buffer. Start with `pc_buf b = {0};`; free b.ptr.
typedef struct {
  char *ptr;
  size_t len, cap;
} pc_buf;

// Append `len` bytes / a NUL-terminated string.
void pc_buf_add(pc_buf *b, const char *s, size_t len);
void pc_buf_str(pc_buf *b, const char *s);
// Append an unsigned integer in decimal.
void pc_buf_u64(pc_buf *b, uint64_t n);
// Append an f64 as Rust's `Display` does: the shortest digits that read back as the
// same value, never in exponent form (`1`, `0.5`, `-0`, `100000000000000000000`).
void pc_buf_f64(pc_buf *b, double x);
// Append a quoted string the way Rust's `{:?}` does (`"a\"b\n"`, `\u{1b}`), cut to its
// first `max_chars` characters. Non-ASCII characters are kept except a small built-in
// list of invisible ones (controls, format characters, separators, combining marks),
// which Rust escapes as \u{..} too; Rust's full Unicode tables are not reproduced.
void pc_buf_debug_str(pc_buf *b, const char *s, size_t len, size_t max_chars);
// Cut the buffer back to `len` bytes.
void pc_buf_truncate(pc_buf *b, size_t len);

// ---- small utilities ----------------------------------------------------------------

// Whether `text` matches the whole glob `pattern` (`len` bytes each, UTF-8): `*` is any
// run of characters (including none), `?` exactly one character, anything else itself.
bool pc_glob_match(const char *pattern, size_t pattern_len, const char *text, size_t text_len);
// The lowercase hex SHA-256 of `len` bytes, into `hex` (65 bytes with the NUL).
void pc_sha256_hex(const void *data, size_t len, char hex[65]);
// The code point starting at s[*i] (valid UTF-8 assumed), advancing *i past it.
uint32_t pc_utf8_next(const char *s, size_t len, size_t *i);
// Unicode's White_Space property (Rust's char::is_whitespace).
bool pc_is_whitespace(uint32_t cp);

// ---- findings and verdicts ------------------------------------------------------

// A contract category by name; any other name is a custom category.
portcullis_policy_types_category_t pc_category(const char *name);
// "low", "medium", "high" or "critical"; fails otherwise.
portcullis_policy_types_severity_t pc_severity(const char *name);
// Append a finding with a span (byte offsets `start`..`end` of text `index`).
void pc_findings_push(pc_findings_t *findings, portcullis_policy_types_category_t category,
                      portcullis_policy_types_severity_t severity, const char *message,
                      uint32_t index, uint32_t start, uint32_t end);
// Deny with the findings, or allow (the verdict takes ownership of them).
void pc_deny_if_any(pc_findings_t *findings, portcullis_policy_types_verdict_t *ret);
// Replace the span of every finding with `replacement` (spans must not overlap): modify
// with the findings, or allow when there are none (the verdict takes ownership).
void pc_redact(pc_findings_t *findings, const char *replacement,
               portcullis_policy_types_verdict_t *ret);

// ---- host regular expressions -----------------------------------------------------

// Compile (or fetch from the host's cache) a JSON array of pattern strings; fails
// with the host's message on a bad pattern.
portcullis_policy_matchers_own_matcher_t pc_matcher(const pc_json *patterns);
// Compile `n` pattern strings without failing: false (and the host's message, to free,
// in *error) when the host rejects them.
bool pc_matcher_try(const pc_string_t *patterns, size_t n,
                    portcullis_policy_matchers_own_matcher_t *matcher, pc_string_t *error);
// Every match in `text`; free with portcullis_policy_matchers_list_match_free.
portcullis_policy_matchers_list_match_t pc_matcher_find_all(
    portcullis_policy_matchers_own_matcher_t matcher, const uint8_t *text, size_t len);

// ---- roles --------------------------------------------------------------------------

// Whether `role` is scanned: named in the JSON array `roles`, or, when it is NULL, one
// of the untrusted roles (user, tool). Unknown role names fail.
bool pc_role_scanned(const pc_json *roles, portcullis_policy_types_role_t role);

#endif
