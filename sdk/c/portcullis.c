// Helpers for Portcullis policies written in C: see portcullis.h.
//
// Every evaluation runs in a fresh instance whose memory is discarded afterwards, so
// the configuration tree is allocated once and never freed.

#include PC_BINDINGS
#include "portcullis.h"

#include <stdlib.h>
#include <string.h>

// ---- failing --------------------------------------------------------------------

void pc_log(portcullis_policy_host_level_t level, const char *message) {
  pc_string_t s = {(uint8_t *)message, strlen(message)};  // imports borrow
  portcullis_policy_host_log(level, &s);
}

_Noreturn void pc_fail(const char *reason) {
  pc_log(PORTCULLIS_POLICY_HOST_LEVEL_ERROR, reason);
  __builtin_trap();
}

static void *pc_alloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) pc_fail("out of memory");
  return p;
}

// ---- strings --------------------------------------------------------------------

pc_string_t pc_string_n(const char *s, size_t len) {
  pc_string_t out = {pc_alloc(len), len};
  memcpy(out.ptr, s, len);
  return out;
}

pc_string_t pc_string(const char *s) { return pc_string_n(s, strlen(s)); }

// ---- JSON -------------------------------------------------------------------------

enum pc_kind { PC_NULL, PC_BOOL, PC_NUMBER, PC_STRING, PC_ARRAY, PC_OBJECT };

struct pc_json {
  enum pc_kind kind;
  char *text;          // string value (NUL-terminated copy)
  size_t len;          // string length
  size_t n;            // array or object size
  struct pc_json **items;
  char **keys;         // object keys (NUL-terminated)
};

typedef struct {
  const char *s;
  size_t len, at;
} pc_reader;

static _Noreturn void pc_json_error(const char *what) {
  static const char prefix[] = "configuration is not valid JSON: ";
  char message[128];
  size_t n = strlen(what);
  if (n > sizeof message - sizeof prefix) n = sizeof message - sizeof prefix;
  memcpy(message, prefix, sizeof prefix - 1);
  memcpy(message + sizeof prefix - 1, what, n);
  message[sizeof prefix - 1 + n] = 0;
  pc_fail(message);
}

static void pc_skip(pc_reader *r) {
  while (r->at < r->len && (r->s[r->at] == ' ' || r->s[r->at] == '\t' ||
                            r->s[r->at] == '\n' || r->s[r->at] == '\r'))
    r->at++;
}

static bool pc_eat(pc_reader *r, const char *word) {
  size_t n = strlen(word);
  if (r->len - r->at >= n && memcmp(r->s + r->at, word, n) == 0) {
    r->at += n;
    return true;
  }
  return false;
}

static unsigned pc_hex4(pc_reader *r) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    if (r->at >= r->len) pc_json_error("truncated \\u escape");
    char c = r->s[r->at++];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else pc_json_error("bad \\u escape");
  }
  return v;
}

static size_t pc_utf8(unsigned cp, char *out) {
  if (cp < 0x80) { out[0] = (char)cp; return 1; }
  if (cp < 0x800) { out[0] = (char)(0xc0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
  if (cp < 0x10000) {
    out[0] = (char)(0xe0 | cp >> 12); out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[2] = (char)(0x80 | (cp & 0x3f)); return 3;
  }
  out[0] = (char)(0xf0 | cp >> 18); out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); out[3] = (char)(0x80 | (cp & 0x3f));
  return 4;
}

// A JSON string at r->at (after the opening quote): a NUL-terminated heap copy.
static char *pc_read_string(pc_reader *r, size_t *len) {
  char *out = pc_alloc(r->len - r->at + 1);  // never longer than the source
  size_t n = 0;
  for (;;) {
    if (r->at >= r->len) pc_json_error("unterminated string");
    char c = r->s[r->at++];
    if (c == '"') break;
    if ((unsigned char)c < 0x20) pc_json_error("control character in a string");
    if (c != '\\') { out[n++] = c; continue; }
    if (r->at >= r->len) pc_json_error("unterminated string");
    char e = r->s[r->at++];
    switch (e) {
      case '"': case '\\': case '/': out[n++] = e; break;
      case 'b': out[n++] = '\b'; break;
      case 'f': out[n++] = '\f'; break;
      case 'n': out[n++] = '\n'; break;
      case 'r': out[n++] = '\r'; break;
      case 't': out[n++] = '\t'; break;
      case 'u': {
        unsigned cp = pc_hex4(r);
        if (cp >= 0xd800 && cp <= 0xdbff) {
          if (!pc_eat(r, "\\u")) pc_json_error("lone surrogate");
          unsigned lo = pc_hex4(r);
          if (lo < 0xdc00 || lo > 0xdfff) pc_json_error("lone surrogate");
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
          pc_json_error("lone surrogate");
        }
        n += pc_utf8(cp, out + n);
        break;
      }
      default: pc_json_error("bad escape");
    }
  }
  out[n] = 0;
  *len = n;
  return out;
}

static pc_json *pc_node(enum pc_kind kind) {
  pc_json *v = pc_alloc(sizeof *v);
  memset(v, 0, sizeof *v);
  v->kind = kind;
  return v;
}

static void pc_push(pc_json *parent, pc_json *item, char *key) {
  parent->items = realloc(parent->items, (parent->n + 1) * sizeof *parent->items);
  if (!parent->items) pc_fail("out of memory");
  if (parent->kind == PC_OBJECT) {
    parent->keys = realloc(parent->keys, (parent->n + 1) * sizeof *parent->keys);
    if (!parent->keys) pc_fail("out of memory");
    parent->keys[parent->n] = key;
  }
  parent->items[parent->n++] = item;
}

static pc_json *pc_value(pc_reader *r, int depth) {
  if (depth > 64) pc_json_error("nested too deeply");
  pc_skip(r);
  if (r->at >= r->len) pc_json_error("unexpected end");
  char c = r->s[r->at];
  if (c == '"') {
    r->at++;
    pc_json *v = pc_node(PC_STRING);
    v->text = pc_read_string(r, &v->len);
    return v;
  }
  if (c == '[' || c == '{') {
    bool object = c == '{';
    pc_json *v = pc_node(object ? PC_OBJECT : PC_ARRAY);
    r->at++;
    pc_skip(r);
    if (pc_eat(r, object ? "}" : "]")) return v;
    for (;;) {
      char *key = NULL;
      if (object) {
        pc_skip(r);
        size_t key_len;
        if (!pc_eat(r, "\"")) pc_json_error("expected a member name");
        key = pc_read_string(r, &key_len);
        pc_skip(r);
        if (!pc_eat(r, ":")) pc_json_error("expected ':'");
      }
      pc_push(v, pc_value(r, depth + 1), key);
      pc_skip(r);
      if (pc_eat(r, ",")) continue;
      if (pc_eat(r, object ? "}" : "]")) return v;
      pc_json_error(object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
  }
  if (pc_eat(r, "true") || pc_eat(r, "false")) return pc_node(PC_BOOL);
  if (pc_eat(r, "null")) return pc_node(PC_NULL);
  if (c == '-' || (c >= '0' && c <= '9')) {
    while (r->at < r->len && strchr("+-0123456789.eE", r->s[r->at])) r->at++;
    return pc_node(PC_NUMBER);
  }
  pc_json_error("unexpected character");
}

const pc_json *pc_config(void) {
  static pc_json *config;
  if (config) return config;
  pc_string_t text;
  portcullis_policy_host_config(&text);
  pc_reader r = {(const char *)text.ptr, text.len, 0};
  pc_skip(&r);
  if (r.at == r.len) {
    config = pc_node(PC_OBJECT);
  } else {
    config = pc_value(&r, 0);
    pc_skip(&r);
    if (r.at != r.len) pc_json_error("trailing characters");
    if (config->kind != PC_OBJECT) pc_fail("configuration must be a JSON object");
  }
  free(text.ptr);
  return config;
}

const pc_json *pc_json_get(const pc_json *object, const char *key) {
  if (!object || object->kind != PC_OBJECT) return NULL;
  for (size_t i = 0; i < object->n; i++)
    if (strcmp(object->keys[i], key) == 0) return object->items[i];
  return NULL;
}

bool pc_json_is_string(const pc_json *v) { return v && v->kind == PC_STRING; }
bool pc_json_is_array(const pc_json *v) { return v && v->kind == PC_ARRAY; }
bool pc_json_is_object(const pc_json *v) { return v && v->kind == PC_OBJECT; }

const char *pc_json_string(const pc_json *v, size_t *len) {
  if (!pc_json_is_string(v)) return NULL;
  if (len) *len = v->len;
  return v->text;
}

size_t pc_json_len(const pc_json *v) {
  return v && (v->kind == PC_ARRAY || v->kind == PC_OBJECT) ? v->n : 0;
}

const pc_json *pc_json_at(const pc_json *v, size_t i) { return i < pc_json_len(v) ? v->items[i] : NULL; }

const char *pc_json_key(const pc_json *v, size_t i) {
  return pc_json_is_object(v) && i < v->n ? v->keys[i] : NULL;
}

const char *pc_config_string(const pc_json *config, const char *key, const char *fallback) {
  const pc_json *v = pc_json_get(config, key);
  if (!v) return fallback;
  if (!pc_json_is_string(v)) {
    pc_log(PORTCULLIS_POLICY_HOST_LEVEL_ERROR, key);
    pc_fail("a configuration field that must be a string is not");
  }
  return v->text;
}

// ---- findings and verdicts ---------------------------------------------------------

static const char *const pc_categories[] = {
    "prompt-injection", "jailbreak", "pii", "secret", "toxicity",
    "tool-misuse", "model-extraction", "system-prompt-leak",
};

portcullis_policy_types_category_t pc_category(const char *name) {
  portcullis_policy_types_category_t c;
  memset(&c, 0, sizeof c);
  for (uint8_t i = 0; i < sizeof pc_categories / sizeof *pc_categories; i++) {
    if (strcmp(name, pc_categories[i]) == 0) {
      c.tag = i;
      return c;
    }
  }
  c.tag = PORTCULLIS_POLICY_TYPES_CATEGORY_CUSTOM;
  c.val.custom = pc_string(name);
  return c;
}

portcullis_policy_types_severity_t pc_severity(const char *name) {
  static const char *const names[] = {"low", "medium", "high", "critical"};
  for (uint8_t i = 0; i < 4; i++)
    if (strcmp(name, names[i]) == 0) return i;
  pc_fail("unknown severity: use low, medium, high or critical");
}

void pc_findings_push(pc_findings_t *findings, portcullis_policy_types_category_t category,
                      portcullis_policy_types_severity_t severity, const char *message,
                      uint32_t index, uint32_t start, uint32_t end) {
  findings->ptr = realloc(findings->ptr, (findings->len + 1) * sizeof *findings->ptr);
  if (!findings->ptr) pc_fail("out of memory");
  pc_finding_t *f = &findings->ptr[findings->len++];
  memset(f, 0, sizeof *f);
  f->category = category;
  if (category.tag == PORTCULLIS_POLICY_TYPES_CATEGORY_CUSTOM)  // each finding owns its name
    f->category.val.custom = pc_string_n((const char *)category.val.custom.ptr, category.val.custom.len);
  f->severity = severity;
  f->message = pc_string(message);
  f->span.is_some = true;
  f->span.val.index = index;
  f->span.val.start = start;
  f->span.val.end = end;
}

void pc_deny_if_any(pc_findings_t *findings, portcullis_policy_types_verdict_t *ret) {
  memset(ret, 0, sizeof *ret);
  if (findings->len) {
    ret->tag = PORTCULLIS_POLICY_TYPES_VERDICT_DENY;
    ret->val.deny = *findings;
  } else {
    free(findings->ptr);
    ret->tag = PORTCULLIS_POLICY_TYPES_VERDICT_ALLOW;
  }
  findings->ptr = NULL;
  findings->len = 0;
}

// ---- host regular expressions ---------------------------------------------------------

portcullis_policy_matchers_own_matcher_t pc_matcher(const pc_json *patterns) {
  size_t n = pc_json_len(patterns);
  pc_list_string_t list = {pc_alloc(n * sizeof(pc_string_t)), n};
  for (size_t i = 0; i < n; i++) {
    const pc_json *p = pc_json_at(patterns, i);
    if (!pc_json_is_string(p)) pc_fail("patterns must be strings");
    list.ptr[i].ptr = (uint8_t *)p->text;  // borrowed by the import
    list.ptr[i].len = p->len;
  }
  portcullis_policy_matchers_own_matcher_t matcher;
  pc_string_t err;
  bool ok = portcullis_policy_matchers_static_matcher_compile(&list, &matcher, &err);
  free(list.ptr);
  if (!ok) {
    char *message = pc_alloc(err.len + 11);
    memcpy(message, "patterns: ", 10);
    memcpy(message + 10, err.ptr, err.len);
    message[err.len + 10] = 0;
    pc_fail(message);
  }
  return matcher;
}

portcullis_policy_matchers_list_match_t pc_matcher_find_all(
    portcullis_policy_matchers_own_matcher_t matcher, const uint8_t *text, size_t len) {
  pc_string_t s = {(uint8_t *)text, len};
  portcullis_policy_matchers_list_match_t matches;
  portcullis_policy_matchers_method_matcher_find_all(
      portcullis_policy_matchers_borrow_matcher(matcher), &s, &matches);
  return matches;
}

// ---- roles ---------------------------------------------------------------------------------

bool pc_role_scanned(const pc_json *roles, portcullis_policy_types_role_t role) {
  static const char *const names[] = {"system", "developer", "user", "assistant", "tool"};
  if (!roles)
    return role == PORTCULLIS_POLICY_TYPES_ROLE_USER || role == PORTCULLIS_POLICY_TYPES_ROLE_TOOL;
  if (!pc_json_is_array(roles)) pc_fail("roles must be an array of role names");
  bool scanned = false;
  for (size_t i = 0; i < pc_json_len(roles); i++) {
    const char *name = pc_json_string(pc_json_at(roles, i), NULL);
    size_t k = 0;
    while (k < 5 && !(name && strcmp(name, names[k]) == 0)) k++;
    if (k == 5) pc_fail("unknown role: use system, developer, user, assistant or tool");
    scanned |= k == role;
  }
  return scanned;
}
