// The policy configuration (config.rs): parsed with the strictness of serde's derive
// (unknown or repeated fields, wrong types and bad enum values are errors) and
// normalized (lower-case pin hashes, hosts and paths).

#include "tool_allowlist.h"

#include <stdlib.h>
#include <string.h>

// Paths an argument must not point at (globs over the normalized, lower-cased path).
static const char *const SENSITIVE_PATHS[] = {
    "/etc",         "/etc/*",         "/root",           "/root/*",
    "/proc/*",      "/sys/*",         "/dev/*",          "/boot/*",
    "/var/run/secrets/*", "/run/secrets/*", "*/.ssh", "*/.ssh/*",
    "*/.aws/*",     "*/.gnupg/*",     "*/.kube/*",       "*/.docker/config.json",
    "*/.config/gcloud/*", "*/.netrc", "*/.git-credentials", "*/.pgpass",
    "*/.bash_history", "*/id_rsa*",   "*/id_ecdsa*",     "*/id_ed25519*",
    "c:/windows/*", "*/system32/*",
};

// Abort the evaluation: "invalid policy configuration: <what> <field>".
static _Noreturn void config_error(const char *what, const char *field) {
  pc_buf message = {0};
  pc_buf_str(&message, "invalid policy configuration: ");
  pc_buf_str(&message, what);
  pc_buf_str(&message, field);
  pc_fail(message.ptr);
}

static void *checked_calloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p) pc_fail("out of memory");
  return p;
}

// An object with only the `allowed` fields, each at most once.
static void check_fields(const pc_json *object, const char *const *allowed, size_t n,
                         const char *what) {
  if (!pc_json_is_object(object)) config_error("expected an object for ", what);
  if (pc_json_has_duplicate_keys(object)) config_error("duplicate field in ", what);
  for (size_t i = 0; i < pc_json_len(object); i++) {
    size_t len;
    const char *key = pc_json_key_n(object, i, &len);
    size_t k = 0;
    while (k < n && !(strlen(allowed[k]) == len && memcmp(allowed[k], key, len) == 0)) k++;
    if (k == n) config_error("unknown field in ", what);
  }
}

static ta_str string_field(const pc_json *object, const char *key, const char *fallback,
                           const char *what) {
  const pc_json *v = pc_json_get(object, key);
  if (!v) {
    if (!fallback) config_error("missing field in ", what);
    return (ta_str){fallback, strlen(fallback)};
  }
  ta_str s;
  s.ptr = pc_json_string(v, &s.len);
  if (!s.ptr) config_error("expected a string for ", key);
  return s;
}

static bool bool_field(const pc_json *config, const char *key, bool fallback) {
  const pc_json *v = pc_json_get(config, key);
  bool value = fallback;
  if (v && !pc_json_bool(v, &value)) config_error("expected a boolean for ", key);
  return value;
}

// `[{"server": glob, "tool": glob}]`, both defaulting to `*`.
static ta_rule *rules_field(const pc_json *config, const char *key, size_t *len) {
  static const char *const fields[] = {"server", "tool"};
  const pc_json *v = pc_json_get(config, key);
  if (v && !pc_json_is_array(v)) config_error("expected an array for ", key);
  *len = pc_json_len(v);
  ta_rule *rules = checked_calloc(*len, sizeof *rules);
  for (size_t i = 0; i < *len; i++) {
    const pc_json *rule = pc_json_at(v, i);
    check_fields(rule, fields, 2, key);
    rules[i].server = string_field(rule, "server", "*", key);
    rules[i].tool = string_field(rule, "tool", "*", key);
  }
  return rules;
}

// A string list, lower-cased (ASCII) into fresh copies.
static ta_str *lowered_strings(const pc_json *list, const char *key, size_t *len) {
  if (!pc_json_is_array(list)) config_error("expected an array of strings for ", key);
  *len = pc_json_len(list);
  ta_str *out = checked_calloc(*len, sizeof *out);
  for (size_t i = 0; i < *len; i++) {
    size_t n;
    const char *s = pc_json_string(pc_json_at(list, i), &n);
    if (!s) config_error("expected an array of strings for ", key);
    char *copy = checked_calloc(n + 1, 1);
    for (size_t k = 0; k < n; k++) copy[k] = s[k] >= 'A' && s[k] <= 'Z' ? (char)(s[k] + 32) : s[k];
    out[i] = (ta_str){copy, n};
  }
  return out;
}

static void load_pins(const pc_json *config, ta_config *c) {
  static const char *const fields[] = {"server", "tool", "sha256"};
  const pc_json *v = pc_json_get(config, "pins");
  if (v && !pc_json_is_array(v)) config_error("expected an array for ", "pins");
  c->pins_len = pc_json_len(v);
  c->pins = checked_calloc(c->pins_len, sizeof *c->pins);
  for (size_t i = 0; i < c->pins_len; i++) {
    const pc_json *pin = pc_json_at(v, i);
    check_fields(pin, fields, 3, "pins");
    c->pins[i].who.server = string_field(pin, "server", "*", "pins");
    c->pins[i].who.tool = string_field(pin, "tool", NULL, "pins");
    ta_str hash = string_field(pin, "sha256", NULL, "pins");
    bool hex = hash.len == 64;
    for (size_t k = 0; hex && k < 64; k++) {
      char h = hash.ptr[k] >= 'A' && hash.ptr[k] <= 'F' ? (char)(hash.ptr[k] + 32) : hash.ptr[k];
      hex = (h >= '0' && h <= '9') || (h >= 'a' && h <= 'f');
      c->pins[i].sha256[k] = h;
    }
    if (!hex) {
      pc_buf message = {0};
      pc_buf_str(&message, "pins[");
      pc_buf_u64(&message, i);
      pc_buf_str(&message, "].sha256 must be 64 hex digits (the SHA-256 of the tool description)");
      pc_fail(message.ptr);
    }
  }
}

const ta_config *ta_config_load(void) {
  static const char *const fields[] = {
      "default",      "allow",           "deny",         "pins",          "require_pins",
      "check_schema", "argument_checks", "strict_shell", "allowed_hosts", "sensitive_paths"};
  static ta_config *loaded;
  if (loaded) return loaded;
  const pc_json *config = pc_config();
  check_fields(config, fields, sizeof fields / sizeof *fields, "the configuration");
  ta_config *c = checked_calloc(1, sizeof *c);
  ta_str action = string_field(config, "default", "deny", "the configuration");
  if (action.len == 5 && memcmp(action.ptr, "allow", 5) == 0) c->default_allow = true;
  else if (!(action.len == 4 && memcmp(action.ptr, "deny", 4) == 0))
    config_error("unknown variant (expected `deny` or `allow`) for ", "default");
  c->allow = rules_field(config, "allow", &c->allow_len);
  c->deny = rules_field(config, "deny", &c->deny_len);
  load_pins(config, c);
  c->require_pins = bool_field(config, "require_pins", false);
  c->check_schema = bool_field(config, "check_schema", true);
  c->argument_checks = bool_field(config, "argument_checks", true);
  c->strict_shell = bool_field(config, "strict_shell", false);
  const pc_json *hosts = pc_json_get(config, "allowed_hosts");
  c->has_allowed_hosts = hosts && pc_json_kind_of(hosts) != PC_JSON_NULL;  // null: absent
  if (c->has_allowed_hosts)
    c->allowed_hosts = lowered_strings(hosts, "allowed_hosts", &c->allowed_hosts_len);
  const pc_json *paths = pc_json_get(config, "sensitive_paths");
  if (paths) {
    c->sensitive_paths = lowered_strings(paths, "sensitive_paths", &c->sensitive_paths_len);
  } else {
    c->sensitive_paths_len = sizeof SENSITIVE_PATHS / sizeof *SENSITIVE_PATHS;
    c->sensitive_paths = checked_calloc(c->sensitive_paths_len, sizeof *c->sensitive_paths);
    for (size_t i = 0; i < c->sensitive_paths_len; i++)
      c->sensitive_paths[i] = (ta_str){SENSITIVE_PATHS[i], strlen(SENSITIVE_PATHS[i])};
  }
  loaded = c;
  return c;
}
