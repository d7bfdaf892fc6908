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

// ---- configuration (JSON) -------------------------------------------------------

typedef struct pc_json pc_json;

// The operator's configuration of this policy, parsed (an empty object when none);
// bad JSON or a non-object fails the evaluation. Owned by the SDK.
const pc_json *pc_config(void);
// The member `key` of an object, or NULL.
const pc_json *pc_json_get(const pc_json *object, const char *key);
// Whether `v` is a string / an array / an object.
bool pc_json_is_string(const pc_json *v);
bool pc_json_is_array(const pc_json *v);
bool pc_json_is_object(const pc_json *v);
// A string's bytes (not NUL-terminated when it contains NUL) and length.
const char *pc_json_string(const pc_json *v, size_t *len);
// An array's length and elements.
size_t pc_json_len(const pc_json *v);
const pc_json *pc_json_at(const pc_json *v, size_t i);
// The keys of an object, for checking unknown fields: the i-th key, or NULL.
const char *pc_json_key(const pc_json *v, size_t i);
// A member that must be a string (or absent: `fallback`); fails otherwise.
const char *pc_config_string(const pc_json *config, const char *key, const char *fallback);

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

// ---- host regular expressions -----------------------------------------------------

// Compile (or fetch from the host's cache) a JSON array of pattern strings; fails
// with the host's message on a bad pattern.
portcullis_policy_matchers_own_matcher_t pc_matcher(const pc_json *patterns);
// Every match in `text`; free with portcullis_policy_matchers_list_match_free.
portcullis_policy_matchers_list_match_t pc_matcher_find_all(
    portcullis_policy_matchers_own_matcher_t matcher, const uint8_t *text, size_t len);

// ---- roles --------------------------------------------------------------------------

// Whether `role` is scanned: named in the JSON array `roles`, or, when it is NULL, one
// of the untrusted roles (user, tool). Unknown role names fail.
bool pc_role_scanned(const pc_json *roles, portcullis_policy_types_role_t role);

#endif
