// tool-allowlist in C: declarations shared by the port's files. The Rust crate
// (policies/tool-allowlist/src) is the specification; each file here mirrors one of its
// modules: config.c (config.rs), schema.c (schema.rs), args.c (args.rs) and
// tool_allowlist.c (lib.rs). Globs and SHA-256 come from the SDK (sdk/c).
//
// Memory: every evaluation runs in a fresh instance. The configuration is parsed once
// and kept for the instance's lifetime; each schema and argument document, message
// and pattern list is freed as soon as its call is decided, so many large calls in one
// evaluation do not accumulate.
#ifndef TOOL_ALLOWLIST_H
#define TOOL_ALLOWLIST_H

#include "tool_sandbox.h"
#include "portcullis.h"

// A byte string (not NUL-terminated in general; configuration strings may hold NUL).
typedef struct {
  const char *ptr;
  size_t len;
} ta_str;

// A tool selector: globs over the MCP server and the tool name.
typedef struct {
  ta_str server, tool;
} ta_rule;

// A pinned description: the lowercase hex SHA-256 of its UTF-8 bytes.
typedef struct {
  ta_rule who;
  char sha256[65];
} ta_pin;

// The configuration (see config.c for the defaults; `{}` denies every tool).
typedef struct {
  bool default_allow;
  ta_rule *allow, *deny;
  size_t allow_len, deny_len;
  ta_pin *pins;
  size_t pins_len;
  bool require_pins, check_schema, argument_checks, strict_shell;
  bool has_allowed_hosts;  // absent: URLs are not checked
  ta_str *allowed_hosts;   // lower-cased
  size_t allowed_hosts_len;
  ta_str *sensitive_paths; // lower-cased
  size_t sensitive_paths_len;
} ta_config;

// The configuration, validated and normalized; an invalid one aborts the evaluation.
const ta_config *ta_config_load(void);

// Findings reported per tool or call, at most.
#define TA_MAX_FINDINGS 10

// The distinct problem messages of one call, in the order found, at most
// TA_MAX_FINDINGS (later or repeated ones are dropped, as the Rust version's
// dedup-then-take does).
typedef struct {
  char *items[TA_MAX_FINDINGS];
  size_t len;
} ta_problems;

// Add a message (a NUL-terminated copy is kept unless it is a repeat or the list is full).
void ta_problems_add(ta_problems *problems, const char *message);
bool ta_problems_full(const ta_problems *problems);
void ta_problems_free(ta_problems *problems);

// Validate call arguments against a tool's input schema (object or boolean), adding
// "arguments do not match the input schema: <path>: <problem>" messages.
void ta_schema_validate(const pc_json *schema, const pc_json *arguments, ta_problems *out);

// The argument checks: traversal, sensitive paths, shell metacharacters, URL hosts.
void ta_args_check(const pc_json *arguments, const ta_config *config, ta_problems *out);

// Append the JSON path of member `key` to `path`: `.name` for identifier-like names,
// `["odd name"]` otherwise.
void ta_child_path(pc_buf *path, const char *key, size_t len);

// A property name for messages: Rust-quoted, cut to 64 characters.
void ta_quoted(pc_buf *out, const char *name, size_t len);

#endif
