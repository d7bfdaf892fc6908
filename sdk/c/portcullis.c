// Helpers for Portcullis policies written in C: see portcullis.h.
//
// Every evaluation runs in a fresh instance whose memory is discarded afterwards, so
// the configuration tree is allocated once and never freed; other JSON documents are
// freed with pc_json_free.

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
//
// Values live in an arena owned by their document: a parse allocates nodes, strings
// and member arrays by bumping a pointer, and pc_json_free releases every chunk at once.
// While a container is being read its members wait on a scratch stack shared by the
// whole parse, so arrays are copied once, at their final size.

typedef struct {
  const char *key;  // NULL for array elements
  size_t key_len;
  pc_json *value;
  size_t order;     // position in the text, so a repeated key keeps its last value
} pc_member;

enum pc_number_class { PC_U64, PC_I64, PC_F64 };

struct pc_json {
  uint8_t kind;            // pc_json_kind
  uint8_t number_class;    // enum pc_number_class, for numbers
  bool boolean;            // for booleans
  bool duplicate_keys;     // for objects: the text repeated a key
  size_t n;                // string length, or array/object size
  union {
    uint64_t u;
    int64_t i;
    double f;
    char *text;            // NUL-terminated
    pc_json **items;       // array elements
    pc_member *members;    // object members, sorted by key
  } as;
};

typedef struct pc_chunk {
  struct pc_chunk *next;
  size_t used, size;
  _Alignas(8) char data[];
} pc_chunk;

struct pc_json_doc {
  pc_chunk *chunks;
  pc_json *root;
};

enum { PC_CHUNK_SIZE = 64 * 1024, PC_JSON_MAX_DEPTH = 128 /* serde_json's limit */ };

static void *pc_arena_alloc(pc_json_doc *doc, size_t n) {
  n = (n + 7) & ~(size_t)7;
  pc_chunk *c = doc->chunks;
  if (!c || c->size - c->used < n) {
    size_t size = n > PC_CHUNK_SIZE ? n : PC_CHUNK_SIZE;
    c = pc_alloc(sizeof(pc_chunk) + size);
    c->used = 0;
    c->size = size;
    c->next = doc->chunks;
    doc->chunks = c;
  }
  void *p = c->data + c->used;
  c->used += n;
  return p;
}

void pc_json_free(pc_json_doc *doc) {
  if (!doc) return;
  for (pc_chunk *c = doc->chunks, *next; c; c = next) {
    next = c->next;
    free(c);
  }
  free(doc);
}

const pc_json *pc_json_root(const pc_json_doc *doc) { return doc ? doc->root : NULL; }

typedef struct {
  const char *s;
  size_t len, at;
  int depth_left;          // containers that may still be opened
  pc_json_doc *doc;
  pc_member *stack;        // members of the containers being read
  size_t stack_len, stack_cap;
  const char *error;       // set on the first error; parsing then unwinds
} pc_reader;

static bool pc_error(pc_reader *r, const char *what) {
  if (!r->error) r->error = what;
  return false;
}

static int pc_peek(const pc_reader *r) { return r->at < r->len ? (unsigned char)r->s[r->at] : -1; }

static void pc_skip(pc_reader *r) {
  while (r->at < r->len && (r->s[r->at] == ' ' || r->s[r->at] == '\t' ||
                            r->s[r->at] == '\n' || r->s[r->at] == '\r'))
    r->at++;
}

static pc_json *pc_node(pc_reader *r, pc_json_kind kind) {
  pc_json *v = pc_arena_alloc(r->doc, sizeof *v);
  memset(v, 0, sizeof *v);
  v->kind = (uint8_t)kind;
  return v;
}

static bool pc_hex4(pc_reader *r, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    if (r->at >= r->len) return pc_error(r, "EOF while parsing a string");
    char c = r->s[r->at++];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return pc_error(r, "invalid escape");
  }
  *out = v;
  return true;
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

// A JSON string at r->at (after the opening quote), unescaped into the arena. The text
// is valid UTF-8 (a WIT string), so only escapes and control characters are checked;
// surrogates must pair exactly as serde_json requires for a `String`.
static bool pc_read_string(pc_reader *r, char **text, size_t *len) {
  size_t end = r->at;  // the closing quote bounds the decoded length
  while (end < r->len && r->s[end] != '"') end += r->s[end] == '\\' ? 2 : 1;
  char *out = pc_arena_alloc(r->doc, (end < r->len ? end : r->len) - r->at + 1);
  size_t n = 0;
  for (;;) {
    if (r->at >= r->len) return pc_error(r, "EOF while parsing a string");
    char c = r->s[r->at++];
    if (c == '"') break;
    if ((unsigned char)c < 0x20) return pc_error(r, "control character in a string");
    if (c != '\\') { out[n++] = c; continue; }
    if (r->at >= r->len) return pc_error(r, "EOF while parsing a string");
    char e = r->s[r->at++];
    switch (e) {
      case '"': case '\\': case '/': out[n++] = e; break;
      case 'b': out[n++] = '\b'; break;
      case 'f': out[n++] = '\f'; break;
      case 'n': out[n++] = '\n'; break;
      case 'r': out[n++] = '\r'; break;
      case 't': out[n++] = '\t'; break;
      case 'u': {
        unsigned cp, lo;
        if (!pc_hex4(r, &cp)) return false;
        if (cp >= 0xdc00 && cp <= 0xdfff) return pc_error(r, "lone surrogate in a \\u escape");
        if (cp >= 0xd800 && cp <= 0xdbff) {
          if (r->len - r->at < 2 || r->s[r->at] != '\\' || r->s[r->at + 1] != 'u')
            return pc_error(r, "unexpected end of a \\u escape pair");
          r->at += 2;
          if (!pc_hex4(r, &lo)) return false;
          if (lo < 0xdc00 || lo > 0xdfff) return pc_error(r, "lone surrogate in a \\u escape");
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        n += pc_utf8(cp, out + n);
        break;
      }
      default: return pc_error(r, "invalid escape");
    }
  }
  out[n] = 0;
  *text = out;
  *len = n;
  return true;
}

// Powers of ten as f64 literals, 1e0 ..= 1e308 (serde_json's POW10 table).
#define PC_P10(p) 1e##p##0, 1e##p##1, 1e##p##2, 1e##p##3, 1e##p##4, 1e##p##5, 1e##p##6, \
                  1e##p##7, 1e##p##8, 1e##p##9
static const double pc_pow10[309] = {
    PC_P10(0),  PC_P10(1),  PC_P10(2),  PC_P10(3),  PC_P10(4),  PC_P10(5),  PC_P10(6),
    PC_P10(7),  PC_P10(8),  PC_P10(9),  PC_P10(10), PC_P10(11), PC_P10(12), PC_P10(13),
    PC_P10(14), PC_P10(15), PC_P10(16), PC_P10(17), PC_P10(18), PC_P10(19), PC_P10(20),
    PC_P10(21), PC_P10(22), PC_P10(23), PC_P10(24), PC_P10(25), PC_P10(26), PC_P10(27),
    PC_P10(28), PC_P10(29), 1e300, 1e301, 1e302, 1e303, 1e304, 1e305, 1e306, 1e307, 1e308};

// serde_json's f64_from_parts: significand × 10^exponent by one multiplication or
// division with a table power (two or more divisions below 1e-308).
static bool pc_f64_from_parts(pc_reader *r, bool positive, uint64_t significand,
                              int32_t exponent, double *out) {
  double f = (double)significand;
  for (;;) {
    uint32_t magnitude = exponent < 0 ? 0u - (uint32_t)exponent : (uint32_t)exponent;
    if (magnitude < 309) {
      if (exponent >= 0) {
        f *= pc_pow10[magnitude];
        if (__builtin_isinf(f)) return pc_error(r, "number out of range");
      } else {
        f /= pc_pow10[magnitude];
      }
      break;
    }
    if (f == 0) break;
    if (exponent >= 0) return pc_error(r, "number out of range");
    f /= 1e308;
    exponent += 308;
  }
  *out = positive ? f : -f;
  return true;
}

static bool pc_is_digit(int c) { return c >= '0' && c <= '9'; }

// Whether significand * 10 + digit would overflow a u64.
static bool pc_overflows(uint64_t significand, unsigned digit) {
  return significand >= UINT64_MAX / 10 &&
         (significand > UINT64_MAX / 10 || digit > UINT64_MAX % 10);
}

static bool pc_parse_exponent(pc_reader *r, bool positive, uint64_t significand,
                              int32_t starting_exp, double *out) {
  r->at++;  // e or E
  bool positive_exp = true;
  if (pc_peek(r) == '+') r->at++;
  else if (pc_peek(r) == '-') { positive_exp = false; r->at++; }
  if (r->at >= r->len) return pc_error(r, "EOF while parsing a value");
  if (!pc_is_digit(pc_peek(r))) return pc_error(r, "invalid number");
  int32_t exp = r->s[r->at++] - '0';
  while (pc_is_digit(pc_peek(r))) {
    int32_t digit = r->s[r->at++] - '0';
    if (exp >= INT32_MAX / 10 && (exp > INT32_MAX / 10 || digit > INT32_MAX % 10)) {
      // Exponent overflow: zero, or out of range (serde_json never gives infinity).
      if (significand != 0 && positive_exp) return pc_error(r, "number out of range");
      while (pc_is_digit(pc_peek(r))) r->at++;
      *out = positive ? 0.0 : -0.0;
      return true;
    }
    exp = exp * 10 + digit;
  }
  int64_t final_exp = positive_exp ? (int64_t)starting_exp + exp : (int64_t)starting_exp - exp;
  if (final_exp > INT32_MAX) final_exp = INT32_MAX;
  if (final_exp < INT32_MIN) final_exp = INT32_MIN;
  return pc_f64_from_parts(r, positive, significand, (int32_t)final_exp, out);
}

static bool pc_parse_decimal(pc_reader *r, bool positive, uint64_t significand,
                             int32_t exponent_before_point, double *out) {
  r->at++;  // the point
  int32_t exponent_after_point = 0;
  while (pc_is_digit(pc_peek(r))) {
    unsigned digit = (unsigned)(r->s[r->at] - '0');
    if (pc_overflows(significand, digit)) {  // ignore the digits that do not fit
      while (pc_is_digit(pc_peek(r))) r->at++;
      break;
    }
    r->at++;
    significand = significand * 10 + digit;
    exponent_after_point--;
  }
  if (exponent_after_point == 0 && !(r->at > 0 && pc_is_digit((unsigned char)r->s[r->at - 1])))
    return pc_error(r, r->at >= r->len ? "EOF while parsing a value" : "invalid number");
  int32_t exponent = exponent_before_point + exponent_after_point;
  if (pc_peek(r) == 'e' || pc_peek(r) == 'E')
    return pc_parse_exponent(r, positive, significand, exponent, out);
  return pc_f64_from_parts(r, positive, significand, exponent, out);
}

// A number at r->at (after any minus sign), classified as serde_json does.
static pc_json *pc_read_number(pc_reader *r, bool positive) {
  if (r->at >= r->len) return pc_error(r, "EOF while parsing a value"), NULL;
  int c = pc_peek(r);
  uint64_t significand = 0;
  int32_t exponent = 0;  // integer digits dropped for not fitting a u64
  bool is_float = false;
  double f = 0;
  if (c == '0') {
    r->at++;
    if (pc_is_digit(pc_peek(r))) return pc_error(r, "invalid number"), NULL;
  } else if (c >= '1' && c <= '9') {
    while (pc_is_digit(pc_peek(r))) {
      unsigned digit = (unsigned)(r->s[r->at] - '0');
      if (pc_overflows(significand, digit)) {  // too long for a u64: an f64
        is_float = true;
        while (pc_is_digit(pc_peek(r))) r->at++, exponent++;
        break;
      }
      r->at++;
      significand = significand * 10 + digit;
    }
  } else {
    return pc_error(r, "invalid number"), NULL;
  }
  bool ok = true;
  if (pc_peek(r) == '.') is_float = true, ok = pc_parse_decimal(r, positive, significand, exponent, &f);
  else if (pc_peek(r) == 'e' || pc_peek(r) == 'E')
    is_float = true, ok = pc_parse_exponent(r, positive, significand, exponent, &f);
  else if (is_float) ok = pc_f64_from_parts(r, positive, significand, exponent, &f);
  if (!ok) return NULL;
  pc_json *v = pc_node(r, PC_JSON_NUMBER);
  if (is_float) {
    v->number_class = PC_F64;
    v->as.f = f;
  } else if (positive) {
    v->number_class = PC_U64;
    v->as.u = significand;
  } else if (significand == 0 || significand > (uint64_t)INT64_MAX + 1) {
    v->number_class = PC_F64;  // -0, or below i64::MIN
    v->as.f = -(double)significand;
  } else {
    v->number_class = PC_I64;
    v->as.i = (int64_t)(0 - significand);
  }
  return v;
}

static void pc_stack_push(pc_reader *r, const char *key, size_t key_len, pc_json *value) {
  if (r->stack_len == r->stack_cap) {
    r->stack_cap = r->stack_cap ? r->stack_cap * 2 : 64;
    r->stack = realloc(r->stack, r->stack_cap * sizeof *r->stack);
    if (!r->stack) pc_fail("out of memory");
  }
  r->stack[r->stack_len++] = (pc_member){key, key_len, value, r->stack_len};
}

static int pc_key_order(const char *a, size_t a_len, const char *b, size_t b_len);

// Members by key, then by position in the text.
static int pc_member_order(const void *a, const void *b) {
  const pc_member *x = a, *y = b;
  int c = pc_key_order(x->key, x->key_len, y->key, y->key_len);
  if (c) return c;
  return x->order < y->order ? -1 : 1;
}

// Move the members read since `base` from the scratch stack into container `v`.
static void pc_close_container(pc_reader *r, pc_json *v, size_t base) {
  pc_member *m = r->stack + base;
  size_t n = r->stack_len - base;
  if (v->kind == PC_JSON_ARRAY) {
    v->as.items = pc_arena_alloc(r->doc, n * sizeof *v->as.items);
    for (size_t i = 0; i < n; i++) v->as.items[i] = m[i].value;
    v->n = n;
  } else {
    qsort(m, n, sizeof *m, pc_member_order);
    v->as.members = pc_arena_alloc(r->doc, n * sizeof *v->as.members);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
      bool repeated = i + 1 < n && m[i + 1].key_len == m[i].key_len &&
                      memcmp(m[i + 1].key, m[i].key, m[i].key_len) == 0;
      if (repeated) v->duplicate_keys = true;  // the later one wins
      else v->as.members[kept++] = m[i];
    }
    v->n = kept;
  }
  r->stack_len = base;
}

static pc_json *pc_value(pc_reader *r);

static pc_json *pc_container(pc_reader *r, bool object) {
  if (--r->depth_left == 0) return pc_error(r, "recursion limit exceeded"), NULL;
  r->at++;
  pc_json *v = pc_node(r, object ? PC_JSON_OBJECT : PC_JSON_ARRAY);
  size_t base = r->stack_len;
  char close = object ? '}' : ']';
  pc_skip(r);
  if (pc_peek(r) == close) {
    r->at++;
  } else {
    for (;;) {
      char *key = NULL;
      size_t key_len = 0;
      if (object) {
        pc_skip(r);
        if (pc_peek(r) != '"')
          return pc_error(r, r->at >= r->len ? "EOF while parsing an object" : "key must be a string"), NULL;
        r->at++;
        if (!pc_read_string(r, &key, &key_len)) return NULL;
        pc_skip(r);
        if (pc_peek(r) != ':') return pc_error(r, "expected ':'"), NULL;
        r->at++;
      }
      pc_json *item = pc_value(r);
      if (!item) return NULL;
      pc_stack_push(r, key, key_len, item);
      pc_skip(r);
      if (pc_peek(r) == ',') { r->at++; continue; }  // a trailing comma fails on the next value
      if (pc_peek(r) == close) { r->at++; break; }
      return pc_error(r, object ? "expected ',' or '}'" : "expected ',' or ']'"), NULL;
    }
  }
  pc_close_container(r, v, base);
  r->depth_left++;
  return v;
}

static bool pc_eat(pc_reader *r, const char *word) {
  size_t n = strlen(word);
  if (r->len - r->at >= n && memcmp(r->s + r->at, word, n) == 0) {
    r->at += n;
    return true;
  }
  return false;
}

static pc_json *pc_value(pc_reader *r) {
  pc_skip(r);
  int c = pc_peek(r);
  if (c < 0) return pc_error(r, "EOF while parsing a value"), NULL;
  if (c == '"') {
    r->at++;
    pc_json *v = pc_node(r, PC_JSON_STRING);
    return pc_read_string(r, &v->as.text, &v->n) ? v : NULL;
  }
  if (c == '[' || c == '{') return pc_container(r, c == '{');
  if (c == '-') {
    r->at++;
    return pc_read_number(r, false);
  }
  if (pc_is_digit(c)) return pc_read_number(r, true);
  bool is_true = pc_eat(r, "true");
  if (is_true || pc_eat(r, "false")) {
    pc_json *v = pc_node(r, PC_JSON_BOOL);
    v->boolean = is_true;
    return v;
  }
  if (pc_eat(r, "null")) return pc_node(r, PC_JSON_NULL);
  return pc_error(r, "expected value"), NULL;
}

pc_json_doc *pc_json_parse(const char *text, size_t len, const char **error) {
  pc_json_doc *doc = pc_alloc(sizeof *doc);
  doc->chunks = NULL;
  pc_reader r = {text, len, 0, PC_JSON_MAX_DEPTH, doc, NULL, 0, 0, NULL};
  doc->root = pc_value(&r);
  if (doc->root) {
    pc_skip(&r);
    if (r.at != r.len) pc_error(&r, "trailing characters");
  }
  free(r.stack);
  if (r.error) {
    pc_json_free(doc);
    if (error) *error = r.error;
    return NULL;
  }
  return doc;
}

const pc_json *pc_config(void) {
  static const pc_json *config;
  if (config) return config;
  pc_string_t text;
  portcullis_policy_host_config(&text);
  size_t at = 0;
  while (at < text.len && strchr(" \t\n\r", text.ptr[at])) at++;
  const char *error = NULL;
  pc_json_doc *doc = pc_json_parse(at == text.len ? "{}" : (const char *)text.ptr,
                                   at == text.len ? 2 : text.len, &error);
  free(text.ptr);
  if (!doc) {
    pc_buf message = {0};
    pc_buf_str(&message, "configuration is not valid JSON: ");
    pc_buf_str(&message, error);
    pc_fail(message.ptr);
  }
  config = pc_json_root(doc);  // kept for the instance's lifetime
  if (config->kind != PC_JSON_OBJECT) pc_fail("configuration must be a JSON object");
  return config;
}

pc_json_kind pc_json_kind_of(const pc_json *v) { return v ? (pc_json_kind)v->kind : PC_JSON_NULL; }

// Bytewise key order (a shorter key sorts before its extensions), as in a BTreeMap.
static int pc_key_order(const char *a, size_t a_len, const char *b, size_t b_len) {
  int c = memcmp(a, b, a_len < b_len ? a_len : b_len);
  if (c) return c;
  return a_len == b_len ? 0 : a_len < b_len ? -1 : 1;
}

const pc_json *pc_json_get_n(const pc_json *object, const char *key, size_t len) {
  if (!pc_json_is_object(object)) return NULL;
  size_t lo = 0, hi = object->n;  // binary search over the sorted keys
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const pc_member *m = &object->as.members[mid];
    int c = pc_key_order(m->key, m->key_len, key, len);
    if (c == 0) return m->value;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

const pc_json *pc_json_get(const pc_json *object, const char *key) {
  return pc_json_get_n(object, key, strlen(key));
}

bool pc_json_is_string(const pc_json *v) { return v && v->kind == PC_JSON_STRING; }
bool pc_json_is_array(const pc_json *v) { return v && v->kind == PC_JSON_ARRAY; }
bool pc_json_is_object(const pc_json *v) { return v && v->kind == PC_JSON_OBJECT; }

bool pc_json_bool(const pc_json *v, bool *out) {
  if (!v || v->kind != PC_JSON_BOOL) return false;
  *out = v->boolean;
  return true;
}

bool pc_json_number(const pc_json *v, double *out) {
  if (!v || v->kind != PC_JSON_NUMBER) return false;
  *out = v->number_class == PC_U64 ? (double)v->as.u
         : v->number_class == PC_I64 ? (double)v->as.i : v->as.f;
  return true;
}

bool pc_json_is_integral(const pc_json *v) {
  if (!v || v->kind != PC_JSON_NUMBER) return false;
  if (v->number_class != PC_F64) return true;
  return __builtin_isfinite(v->as.f) && __builtin_trunc(v->as.f) == v->as.f;
}

const char *pc_json_string(const pc_json *v, size_t *len) {
  if (!pc_json_is_string(v)) return NULL;
  if (len) *len = v->n;
  return v->as.text;
}

size_t pc_json_len(const pc_json *v) {
  return v && (v->kind == PC_JSON_ARRAY || v->kind == PC_JSON_OBJECT) ? v->n : 0;
}

const pc_json *pc_json_at(const pc_json *v, size_t i) {
  if (i >= pc_json_len(v)) return NULL;
  return v->kind == PC_JSON_ARRAY ? v->as.items[i] : v->as.members[i].value;
}

const char *pc_json_key_n(const pc_json *v, size_t i, size_t *len) {
  if (!pc_json_is_object(v) || i >= v->n) return NULL;
  if (len) *len = v->as.members[i].key_len;
  return v->as.members[i].key;
}

const char *pc_json_key(const pc_json *v, size_t i) { return pc_json_key_n(v, i, NULL); }

bool pc_json_has_duplicate_keys(const pc_json *v) { return pc_json_is_object(v) && v->duplicate_keys; }

const char *pc_config_string(const pc_json *config, const char *key, const char *fallback) {
  const pc_json *v = pc_json_get(config, key);
  if (!v) return fallback;
  if (!pc_json_is_string(v)) {
    pc_log(PORTCULLIS_POLICY_HOST_LEVEL_ERROR, key);
    pc_fail("a configuration field that must be a string is not");
  }
  return v->as.text;
}

// ---- text building ------------------------------------------------------------------

void pc_buf_add(pc_buf *b, const char *s, size_t len) {
  if (b->len + len + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + len + 1) cap *= 2;
    b->ptr = realloc(b->ptr, cap);
    if (!b->ptr) pc_fail("out of memory");
    b->cap = cap;
  }
  memcpy(b->ptr + b->len, s, len);
  b->len += len;
  b->ptr[b->len] = 0;
}

void pc_buf_str(pc_buf *b, const char *s) { pc_buf_add(b, s, strlen(s)); }

void pc_buf_truncate(pc_buf *b, size_t len) {
  if (len < b->len) {
    b->len = len;
    b->ptr[len] = 0;
  }
}

void pc_buf_u64(pc_buf *b, uint64_t n) {
  char digits[20];
  size_t i = sizeof digits;
  do digits[--i] = (char)('0' + n % 10); while ((n /= 10) != 0);
  pc_buf_add(b, digits + i, sizeof digits - i);
}

// The exact decimal expansion of a finite, non-zero |x|: digits (no leading or trailing
// zeros) and the decimal point position, value = 0.d1d2d3... × 10^point. A double is
// m × 2^e; for e < 0 that is m × 5^-e / 10^-e, so only big-integer multiplication by
// small factors is needed (base-10^9 limbs, at most ~90 of them).
static size_t pc_exact_digits(double x, char *digits, int *point) {
  uint64_t bits;
  memcpy(&bits, &x, sizeof bits);
  int biased = (int)((bits >> 52) & 0x7ff);
  uint64_t m = bits & ((1ull << 52) - 1);
  int e = biased ? biased - 1075 : -1074;
  if (biased) m |= 1ull << 52;
  uint32_t limbs[128];  // little endian, base 10^9
  size_t n = 0;
  for (; m; m /= 1000000000u) limbs[n++] = (uint32_t)(m % 1000000000u);
  for (int k = e < 0 ? -e : e; k > 0;) {  // multiply by 5^-e or 2^e
    int step = e < 0 ? (k < 13 ? k : 13) : (k < 29 ? k : 29);
    uint64_t factor = 1;
    for (int j = 0; j < step; j++) factor *= e < 0 ? 5 : 2;
    uint64_t carry = 0;
    for (size_t i = 0; i < n; i++) {
      uint64_t v = limbs[i] * factor + carry;
      limbs[i] = (uint32_t)(v % 1000000000u);
      carry = v / 1000000000u;
    }
    while (carry) limbs[n++] = (uint32_t)(carry % 1000000000u), carry /= 1000000000u;
    k -= step;
  }
  size_t len = 0;  // most significant limb without padding, the others with 9 digits
  for (size_t i = n; i-- > 0;) {
    char chunk[9];
    uint32_t v = limbs[i];
    for (int j = 8; j >= 0; j--) chunk[j] = (char)('0' + v % 10), v /= 10;
    int from = 0;
    if (i == n - 1) while (from < 8 && chunk[from] == '0') from++;
    memcpy(digits + len, chunk + from, (size_t)(9 - from));
    len += (size_t)(9 - from);
  }
  *point = (int)len + (e < 0 ? e : 0);
  while (len > 1 && digits[len - 1] == '0') len--;
  return len;
}

// Whether 0.digits × 10^point reads back (strtod, correctly rounded) as `x`.
static bool pc_reads_back(const char *digits, size_t len, int point, double x) {
  char text[48] = "0.";
  memcpy(text + 2, digits, len);
  size_t at = 2 + len;
  text[at++] = 'e';
  unsigned magnitude = point < 0 ? (unsigned)-point : (unsigned)point;
  if (point < 0) text[at++] = '-';
  char exp[8];
  size_t k = 0;
  do exp[k++] = (char)('0' + magnitude % 10); while ((magnitude /= 10) != 0);
  while (k) text[at++] = exp[--k];
  text[at] = 0;
  return strtod(text, NULL) == x;
}

void pc_buf_f64(pc_buf *b, double x) {
  if (__builtin_signbit(x)) pc_buf_add(b, "-", 1), x = -x;
  if (x == 0) return pc_buf_add(b, "0", 1);
  if (__builtin_isinf(x)) return pc_buf_add(b, "inf", 3);
  if (__builtin_isnan(x)) return pc_buf_add(b, "NaN", 3);
  static char exact[1100];  // up to ~770 digits (5^1074 × 2^53); one evaluation at a time
  int point;
  size_t len = pc_exact_digits(x, exact, &point);
  // The fewest significant digits that read back, the nearer of the two candidates
  // (rounded down / up) when both do: Rust's shortest representation.
  char best[20];
  size_t best_len = len;
  int best_point = point;
  for (size_t p = 1; p < len && p <= 17; p++) {
    char down[20], up[20];
    memcpy(down, exact, p);
    memcpy(up, exact, p);
    int up_point = point;
    size_t i = p;
    while (i > 0 && up[i - 1] == '9') up[--i] = '0';
    if (i == 0) up[0] = '1', up_point++;
    else up[i - 1]++;
    bool down_ok = pc_reads_back(down, p, point, x), up_ok = pc_reads_back(up, p, up_point, x);
    if (!down_ok && !up_ok) continue;
    // Compare the dropped digits with one half: below picks down, above (and, as in
    // Rust's Dragon4, an exact half) picks up.
    bool below_half = exact[p] < '5';
    bool pick_up = up_ok && (!down_ok || !below_half);
    memcpy(best, pick_up ? up : down, p);
    best_len = p;
    best_point = pick_up ? up_point : point;
    break;
  }
  const char *d = best_len < len ? best : exact;
  while (best_len > 1 && d[best_len - 1] == '0') best_len--;
  if (best_point <= 0) {
    pc_buf_add(b, "0.", 2);
    for (int i = 0; i < -best_point; i++) pc_buf_add(b, "0", 1);
    pc_buf_add(b, d, best_len);
  } else if ((size_t)best_point < best_len) {
    pc_buf_add(b, d, (size_t)best_point);
    pc_buf_add(b, ".", 1);
    pc_buf_add(b, d + best_point, best_len - (size_t)best_point);
  } else {
    pc_buf_add(b, d, best_len);
    for (size_t i = best_len; i < (size_t)best_point; i++) pc_buf_add(b, "0", 1);
  }
}

uint32_t pc_utf8_next(const char *s, size_t len, size_t *i) {
  const unsigned char *u = (const unsigned char *)s;
  uint32_t c = u[(*i)++];
  if (c < 0x80) return c;
  int extra = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
  c &= extra == 3 ? 0x07 : extra == 2 ? 0x0f : 0x1f;
  while (extra-- > 0 && *i < len) c = c << 6 | (u[(*i)++] & 0x3f);
  return c;
}

bool pc_is_whitespace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
         c == 0x205f || c == 0x3000;
}

// Characters Rust's `{:?}` shows as \u{..}: controls, and (an approximation of Rust's
// tables) common invisible format characters, separators and combining marks.
static bool pc_debug_escaped(uint32_t c) {
  static const uint32_t ranges[][2] = {
      {0x00, 0x1f},       {0x7f, 0x9f},       {0xa0, 0xa0},       {0xad, 0xad},
      {0x300, 0x36f},     {0x483, 0x489},     {0x591, 0x5bd},     {0x600, 0x605},
      {0x61c, 0x61c},     {0x6dd, 0x6dd},     {0x70f, 0x70f},     {0x1680, 0x1680},
      {0x180e, 0x180e},   {0x1ab0, 0x1aff},   {0x1dc0, 0x1dff},   {0x2000, 0x200f},
      {0x2028, 0x202f},   {0x205f, 0x206f},   {0x20d0, 0x20ff},   {0x3000, 0x3000},
      {0xd800, 0xf8ff},   {0xfe00, 0xfe0f},   {0xfe20, 0xfe2f},   {0xfeff, 0xfeff},
      {0xfff0, 0xfffb},   {0xfffe, 0xffff},   {0xe0000, 0xe0fff}, {0xf0000, 0x10ffff},
  };
  for (size_t i = 0; i < sizeof ranges / sizeof *ranges; i++)
    if (c >= ranges[i][0] && c <= ranges[i][1]) return true;
  return false;
}

void pc_buf_debug_str(pc_buf *b, const char *s, size_t len, size_t max_chars) {
  pc_buf_add(b, "\"", 1);
  size_t i = 0;
  for (size_t chars = 0; i < len && chars < max_chars; chars++) {
    size_t start = i;
    uint32_t c = pc_utf8_next(s, len, &i);
    const char *escape = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n"
                       : c == '\r' ? "\\r" : c == '\t' ? "\\t" : c == 0 ? "\\0" : NULL;
    if (escape) {
      pc_buf_str(b, escape);
    } else if (pc_debug_escaped(c)) {
      char hex[8];
      size_t k = 0;
      do hex[k++] = "0123456789abcdef"[c & 15]; while ((c >>= 4) != 0);
      pc_buf_add(b, "\\u{", 3);
      while (k) pc_buf_add(b, &hex[--k], 1);
      pc_buf_add(b, "}", 1);
    } else {
      pc_buf_add(b, s + start, i - start);
    }
  }
  pc_buf_add(b, "\"", 1);
}

// ---- globs ----------------------------------------------------------------------------

bool pc_glob_match(const char *p, size_t p_len, const char *t, size_t t_len) {
  size_t pi = 0, ti = 0;
  bool starred = false;  // a `*` was seen: where it was, and the text it now ends at
  size_t star_p = 0, star_t = 0;
  while (ti < t_len) {
    size_t p_next = pi, t_next = ti;
    uint32_t pc = pi < p_len ? pc_utf8_next(p, p_len, &p_next) : 0;
    uint32_t tc = pc_utf8_next(t, t_len, &t_next);
    if (pi < p_len && pc == '*') {
      starred = true;
      star_p = pi;
      star_t = ti;
      pi = p_next;
    } else if (pi < p_len && (pc == '?' || pc == tc)) {
      pi = p_next;
      ti = t_next;
    } else if (starred) {  // let the last `*` swallow one more character and retry
      pi = star_p + 1;
      pc_utf8_next(t, t_len, &star_t);
      ti = star_t;
    } else {
      return false;
    }
  }
  while (pi < p_len && p[pi] == '*') pi++;
  return pi == p_len;
}

// ---- SHA-256 (FIPS 180-4) ---------------------------------------------------------------

static const uint32_t pc_sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

static uint32_t pc_rotr(uint32_t x, int n) { return x >> n | x << (32 - n); }

static void pc_sha256_block(uint32_t h[8], const unsigned char *block) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
           (uint32_t)block[4 * i + 2] << 8 | block[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = pc_rotr(w[i - 15], 7) ^ pc_rotr(w[i - 15], 18) ^ w[i - 15] >> 3;
    uint32_t s1 = pc_rotr(w[i - 2], 17) ^ pc_rotr(w[i - 2], 19) ^ w[i - 2] >> 10;
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = k + (pc_rotr(e, 6) ^ pc_rotr(e, 11) ^ pc_rotr(e, 25)) + ((e & f) ^ (~e & g)) +
                  pc_sha256_k[i] + w[i];
    uint32_t t2 = (pc_rotr(a, 2) ^ pc_rotr(a, 13) ^ pc_rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    k = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

void pc_sha256_hex(const void *data, size_t len, char hex[65]) {
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  const unsigned char *p = data;
  size_t full = len / 64 * 64;
  for (size_t i = 0; i < full; i += 64) pc_sha256_block(h, p + i);
  unsigned char tail[128] = {0};  // the rest, the 0x80 marker and the bit length
  size_t rest = len - full;
  memcpy(tail, p + full, rest);
  tail[rest] = 0x80;
  size_t tail_len = rest + 9 <= 64 ? 64 : 128;
  uint64_t bits = (uint64_t)len * 8;
  for (int i = 0; i < 8; i++) tail[tail_len - 1 - i] = (unsigned char)(bits >> (8 * i));
  for (size_t i = 0; i < tail_len; i += 64) pc_sha256_block(h, tail + i);
  for (int i = 0; i < 32; i++) {
    unsigned char byte = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
    hex[2 * i] = "0123456789abcdef"[byte >> 4];
    hex[2 * i + 1] = "0123456789abcdef"[byte & 15];
  }
  hex[64] = 0;
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
  // The list has no capacity field: it grows to the next power of two whenever its
  // length reaches one (so pushes are amortized O(1), not a realloc each).
  size_t len = findings->len;
  if ((len & (len - 1)) == 0) {
    findings->ptr = realloc(findings->ptr, (len ? 2 * len : 1) * sizeof *findings->ptr);
    if (!findings->ptr) pc_fail("out of memory");
  }
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

void pc_redact(pc_findings_t *findings, const char *replacement,
               portcullis_policy_types_verdict_t *ret) {
  if (!findings->len) {
    pc_deny_if_any(findings, ret);  // allow
    return;
  }
  portcullis_policy_types_list_edit_t edits = {calloc(findings->len, sizeof *edits.ptr),
                                               findings->len};
  if (!edits.ptr) pc_fail("out of memory");
  for (size_t i = 0; i < findings->len; i++) {
    if (!findings->ptr[i].span.is_some) pc_fail("pc_redact: a finding without a span");
    edits.ptr[i].tag = PORTCULLIS_POLICY_TYPES_EDIT_REDACT;
    edits.ptr[i].val.redact.span = findings->ptr[i].span.val;
    edits.ptr[i].val.redact.replacement = pc_string(replacement);
  }
  memset(ret, 0, sizeof *ret);
  ret->tag = PORTCULLIS_POLICY_TYPES_VERDICT_MODIFY;
  ret->val.modify.edits = edits;
  ret->val.modify.findings = *findings;
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
    list.ptr[i].ptr = (uint8_t *)p->as.text;  // borrowed by the import
    list.ptr[i].len = p->n;
  }
  portcullis_policy_matchers_own_matcher_t matcher;
  pc_string_t err;
  bool ok = pc_matcher_try(list.ptr, n, &matcher, &err);
  free(list.ptr);
  if (!ok) {
    pc_buf message = {0};
    pc_buf_str(&message, "patterns: ");
    pc_buf_add(&message, (const char *)err.ptr, err.len);
    pc_fail(message.ptr);
  }
  return matcher;
}

bool pc_matcher_try(const pc_string_t *patterns, size_t n,
                    portcullis_policy_matchers_own_matcher_t *matcher, pc_string_t *error) {
  pc_list_string_t list = {(pc_string_t *)patterns, n};  // borrowed by the import
  return portcullis_policy_matchers_static_matcher_compile(&list, matcher, error);
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
