// tool-allowlist in C: which tools a model may see and call, and with what arguments.
// The same policy as policies/tool-allowlist (Rust), with the same configuration,
// decisions and finding messages; see that crate's README for the rules.
//
//   portcullis build --lang c --world tool-sandbox -I sdk/c --out tool-allowlist-c.wasm \
//       policies/tool-allowlist/c/*.c sdk/c/portcullis.c
//
// This file holds the exports and the tool/call decisions (lib.rs).

#include "tool_allowlist.h"

#include <stdlib.h>
#include <string.h>

typedef portcullis_policy_types_tool_definition_t tool_t;
typedef portcullis_policy_types_tool_call_t call_t;

// ---- problem lists ----------------------------------------------------------------------

bool ta_problems_full(const ta_problems *problems) { return problems->len == TA_MAX_FINDINGS; }

void ta_problems_add(ta_problems *problems, const char *message) {
  if (ta_problems_full(problems)) return;
  for (size_t i = 0; i < problems->len; i++)
    if (strcmp(problems->items[i], message) == 0) return;
  size_t n = strlen(message) + 1;
  char *copy = malloc(n);
  if (!copy) pc_fail("out of memory");
  memcpy(copy, message, n);
  problems->items[problems->len++] = copy;
}

void ta_problems_free(ta_problems *problems) {
  for (size_t i = 0; i < problems->len; i++) free(problems->items[i]);
  problems->len = 0;
}

// ---- tool checks ---------------------------------------------------------------------------

static void add(pc_findings_t *findings, const char *severity, const char *message,
                size_t index, size_t start, size_t end) {
  pc_findings_push(findings, pc_category("tool-misuse"), pc_severity(severity), message,
                   (uint32_t)index, (uint32_t)start, (uint32_t)end);
}

static bool rule_matches(const ta_rule *rule, const tool_t *tool) {
  return pc_glob_match(rule->server.ptr, rule->server.len, (const char *)tool->server.ptr, tool->server.len) &&
         pc_glob_match(rule->tool.ptr, rule->tool.len, (const char *)tool->name.ptr, tool->name.len);
}

// Deny list first, then allowlist, then the default; NULL when listed as allowed.
static const char *listing_problem(const ta_config *config, const tool_t *tool) {
  for (size_t i = 0; i < config->deny_len; i++)
    if (rule_matches(&config->deny[i], tool)) return "tool is on the deny list";
  if (config->default_allow) return NULL;
  for (size_t i = 0; i < config->allow_len; i++)
    if (rule_matches(&config->allow[i], tool)) return NULL;
  return "tool is not on the allowlist";
}

// A pin mismatch (critical), or a missing pin when pins are required.
static void pin_problem(const ta_config *config, size_t index, const tool_t *tool,
                        pc_findings_t *findings) {
  char digest[65] = "";
  bool named = false;
  for (size_t i = 0; i < config->pins_len; i++) {
    if (!rule_matches(&config->pins[i].who, tool)) continue;
    if (!named) pc_sha256_hex(tool->description.ptr, tool->description.len, digest);
    named = true;
    if (memcmp(config->pins[i].sha256, digest, 64) == 0) return;
  }
  if (named)
    add(findings, "critical", "tool description changed since pinned (possible rug pull)", index,
        0, tool->description.len);
  else if (config->require_pins)
    add(findings, "high", "tool description is not pinned (require_pins)", index, 0, 0);
}

// A tool's input schema; NULL when it is not JSON or not a schema (object or boolean).
static pc_json_doc *parse_schema(const tool_t *tool) {
  pc_json_doc *doc = pc_json_parse((const char *)tool->input_schema.ptr, tool->input_schema.len, NULL);
  pc_json_kind kind = pc_json_kind_of(pc_json_root(doc));
  if (doc && kind != PC_JSON_OBJECT && kind != PC_JSON_BOOL) {
    pc_json_free(doc);
    return NULL;
  }
  return doc;
}

// Why a tool may not be offered (or called): deny list, allowlist, pins, schema.
static void tool_findings(const ta_config *config, size_t index, const tool_t *tool,
                          pc_findings_t *findings) {
  const char *why = listing_problem(config, tool);
  if (why) add(findings, "high", why, index, 0, 0);
  pin_problem(config, index, tool, findings);
  if (config->check_schema) {
    pc_json_doc *schema = parse_schema(tool);
    if (!schema) add(findings, "high", "tool input schema is not valid JSON Schema", index, 0, 0);
    pc_json_free(schema);
  }
}

// ---- call checks -------------------------------------------------------------------------

static bool same(const tool_sandbox_string_t *a, const tool_sandbox_string_t *b) {
  return a->len == b->len && memcmp(a->ptr, b->ptr, a->len) == 0;
}

// The offered tool a call refers to, or NULL with the reason in *why.
static const tool_t *offered_tool(const tool_t *tools, size_t count, const call_t *call,
                                  const char **why) {
  for (size_t i = 0; i < count; i++)
    if (same(&tools[i].name, &call->name) && same(&tools[i].server, &call->server)) return &tools[i];
  *why = "tool was not offered in this request";
  if (call->server.len) return NULL;
  const tool_t *named = NULL;
  for (size_t i = 0; i < count; i++) {
    if (!same(&tools[i].name, &call->name)) continue;
    if (named) {
      *why = "call names a tool offered by several servers";
      return NULL;
    }
    named = &tools[i];
  }
  return named;
}

// Call arguments as JSON; an empty or blank string (a call without parameters) is `{}`.
static pc_json_doc *parse_arguments(const call_t *call) {
  const char *text = (const char *)call->arguments.ptr;
  size_t len = call->arguments.len, i = 0;
  bool blank = true;
  while (blank && i < len) blank = pc_is_whitespace(pc_utf8_next(text, len, &i));
  return blank ? pc_json_parse("{}", 2, NULL) : pc_json_parse(text, len, NULL);
}

// Why a call may not run.
static void call_findings(const ta_config *config, size_t index, const tool_t *tools,
                          size_t tool_count, const call_t *call, pc_findings_t *findings) {
  const char *why;
  const tool_t *tool = offered_tool(tools, tool_count, call, &why);
  if (!tool) return add(findings, "high", why, index, 0, 0);
  tool_findings(config, index, tool, findings);
  if (findings->len) return;
  pc_json_doc *arguments = parse_arguments(call);
  if (!arguments)
    return add(findings, "high", "call arguments are not valid JSON", index, 0, call->arguments.len);
  ta_problems problems = {0};
  pc_json_doc *schema = config->check_schema ? parse_schema(tool) : NULL;
  if (schema) ta_schema_validate(pc_json_root(schema), pc_json_root(arguments), &problems);
  pc_json_free(schema);
  if (config->argument_checks) ta_args_check(pc_json_root(arguments), config, &problems);
  pc_json_free(arguments);
  for (size_t i = 0; i < problems.len; i++)
    add(findings, "high", problems.items[i], index, 0, call->arguments.len);
  ta_problems_free(&problems);
}

// ---- exports -------------------------------------------------------------------------------

static portcullis_policy_types_authorization_t authorization(pc_findings_t *findings) {
  portcullis_policy_types_authorization_t a;
  memset(&a, 0, sizeof a);
  if (findings->len) {
    a.tag = PORTCULLIS_POLICY_TYPES_AUTHORIZATION_DENY;
    a.val.deny = *findings;  // the host's post-return call frees it
  } else {
    free(findings->ptr);
    a.tag = PORTCULLIS_POLICY_TYPES_AUTHORIZATION_ALLOW;
  }
  return a;
}

static void start_list(exports_portcullis_policy_tool_authorizer_list_authorization_t *ret, size_t n) {
  ret->len = n;
  ret->ptr = n ? calloc(n, sizeof *ret->ptr) : NULL;
  if (n && !ret->ptr) pc_fail("out of memory");
}

void exports_portcullis_policy_tool_authorizer_check_tools(
    exports_portcullis_policy_tool_authorizer_request_context_t *context,
    exports_portcullis_policy_tool_authorizer_list_tool_definition_t *tools,
    exports_portcullis_policy_tool_authorizer_list_authorization_t *ret) {
  const ta_config *config = ta_config_load();
  start_list(ret, tools->len);
  for (size_t i = 0; i < tools->len; i++) {
    pc_findings_t findings = {0};
    tool_findings(config, i, &tools->ptr[i], &findings);
    ret->ptr[i] = authorization(&findings);
  }
  exports_portcullis_policy_tool_authorizer_request_context_free(context);  // ours to free
  exports_portcullis_policy_tool_authorizer_list_tool_definition_free(tools);
}

void exports_portcullis_policy_tool_authorizer_check_calls(
    exports_portcullis_policy_tool_authorizer_request_context_t *context,
    exports_portcullis_policy_tool_authorizer_list_tool_definition_t *tools,
    exports_portcullis_policy_tool_authorizer_list_tool_call_t *calls,
    exports_portcullis_policy_tool_authorizer_list_authorization_t *ret) {
  const ta_config *config = ta_config_load();
  start_list(ret, calls->len);
  for (size_t i = 0; i < calls->len; i++) {
    pc_findings_t findings = {0};
    call_findings(config, i, tools->ptr, tools->len, &calls->ptr[i], &findings);
    ret->ptr[i] = authorization(&findings);
  }
  exports_portcullis_policy_tool_authorizer_request_context_free(context);
  exports_portcullis_policy_tool_authorizer_list_tool_definition_free(tools);
  exports_portcullis_policy_tool_authorizer_list_tool_call_free(calls);
}
