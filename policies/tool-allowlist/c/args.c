// Argument checks (args.rs): every string in a call's arguments (nested objects and
// arrays included) is checked for path traversal, sensitive paths, shell
// metacharacters and URLs to hosts outside the allowlist. Messages name the JSON path.

#include "tool_allowlist.h"

#include <stdlib.h>
#include <string.h>

// Words in a property name that make its value a command, path or file name.
static const char *const COMMAND_WORDS[] = {
    "cmd",  "cmdline", "command", "commands",  "shell",     "script", "exec",   "execute",
    "path", "paths",   "filepath", "file",     "files",     "filename", "filenames", "dir",
    "dirs", "directory", "folder", "cwd",      "program",   "binary", "argv",   "args",
};

// Shell metacharacters (command separators, pipes, substitution, redirection), in the
// order they are looked for.
static const char *const SHELL_META[][2] = {
    {";", "command separator ;"}, {"&&", "command chaining &&"}, {"|", "pipe |"},
    {"`", "backtick substitution"}, {"$(", "command substitution $("},
    {">", "output redirection >"}, {"\n", "newline"}, {"\r", "carriage return"},
};

static bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }

// Whether `needle` occurs in s[0..len).
static bool contains(const char *s, size_t len, const char *needle) {
  size_t n = strlen(needle);
  for (size_t i = 0; i + n <= len; i++)
    if (memcmp(s + i, needle, n) == 0) return true;
  return false;
}

static bool contains_char(const char *s, size_t len, char c) { return len && memchr(s, c, len); }

static bool is_command_word(const char *word, size_t len) {
  for (size_t i = 0; i < sizeof COMMAND_WORDS / sizeof *COMMAND_WORDS; i++)
    if (strlen(COMMAND_WORDS[i]) == len && memcmp(COMMAND_WORDS[i], word, len) == 0) return true;
  return false;
}

// Split a property name into lower-case words at non-alphanumerics and camelCase humps
// (ASCII; any other byte is a boundary), and look for a command/path word.
static bool is_command_key(const char *key, size_t len) {
  char word[16];  // longer words are never command words
  size_t n = 0;
  bool too_long = false, prev_lower = false;
  for (size_t i = 0; i < len; i++) {
    char c = key[i];
    bool boundary = !is_alnum(c) || (c >= 'A' && c <= 'Z' && prev_lower);
    if (boundary && (n || too_long)) {
      if (!too_long && is_command_word(word, n)) return true;
      n = 0, too_long = false;
    }
    if (is_alnum(c)) {
      if (n < sizeof word) word[n++] = lower(c);
      else too_long = true;
    }
    prev_lower = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  }
  return !too_long && is_command_word(word, n);
}

// ---- decoding ---------------------------------------------------------------------------

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The length of the valid UTF-8 prefix of a sequence starting at s[i] (its maximal
// subpart), and whether it is complete.
static size_t utf8_sequence(const unsigned char *s, size_t len, size_t i, bool *complete) {
  unsigned char c = s[i];
  *complete = true;
  if (c < 0x80) return 1;
  size_t need = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (!need) return *complete = false, 1;
  unsigned char lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
  unsigned char hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
  size_t n = 1;
  for (; n < need; n++) {
    if (i + n >= len) break;
    unsigned char b = s[i + n];
    if (b < (n == 1 ? lo : 0x80) || b > (n == 1 ? hi : 0xbf)) break;
  }
  *complete = n == need;
  return n;
}

// Decode `%XX` escapes (invalid ones are kept as they are; like Rust's
// u8::from_str_radix, `%+X` counts as one hex digit), then make the bytes valid UTF-8,
// each invalid sequence becoming U+FFFD (String::from_utf8_lossy).
static ta_str percent_decode(ta_str s) {
  unsigned char *bytes = malloc(s.len + 1);
  if (!bytes) pc_fail("out of memory");
  size_t n = 0;
  for (size_t i = 0; i < s.len;) {
    if (s.ptr[i] == '%' && i + 3 <= s.len) {
      int a = s.ptr[i + 1] == '+' ? 0 : hex_value(s.ptr[i + 1]), b = hex_value(s.ptr[i + 2]);
      if (a >= 0 && b >= 0) {
        bytes[n++] = (unsigned char)(a * 16 + b);
        i += 3;
        continue;
      }
    }
    bytes[n++] = (unsigned char)s.ptr[i++];
  }
  pc_buf out = {0};
  pc_buf_add(&out, "", 0);
  for (size_t i = 0; i < n;) {
    bool complete;
    size_t k = utf8_sequence(bytes, n, i, &complete);
    if (complete) pc_buf_add(&out, (const char *)bytes + i, k);
    else pc_buf_add(&out, "\xef\xbf\xbd", 3);
    i += k;
  }
  free(bytes);
  return (ta_str){out.ptr, out.len};
}

// The string as given, once and twice percent-decoded (`%2e%2e`, `%252e%252e`); the
// decoded copies are heap strings (free with free_decodings).
typedef struct {
  ta_str all[3];
  size_t len;
} decodings;

static decodings decode(ta_str s) {
  decodings d = {{s}, 1};
  while (d.len < 3 && contains_char(d.all[d.len - 1].ptr, d.all[d.len - 1].len, '%')) {
    ta_str next = percent_decode(d.all[d.len - 1]);
    bool seen = false;
    for (size_t i = 0; i < d.len; i++)
      seen |= d.all[i].len == next.len && memcmp(d.all[i].ptr, next.ptr, next.len) == 0;
    if (seen) {
      free((char *)next.ptr);
      break;
    }
    d.all[d.len++] = next;
  }
  return d;
}

static void free_decodings(decodings *d) {
  for (size_t i = 1; i < d->len; i++) free((char *)d->all[i].ptr);
}

// ---- traversal ---------------------------------------------------------------------------

// Trim Unicode whitespace from both ends.
static ta_str trim(ta_str s) {
  size_t start = 0, end = s.len;
  while (start < end) {
    size_t i = start;
    if (!pc_is_whitespace(pc_utf8_next(s.ptr, s.len, &i))) break;
    start = i;
  }
  while (end > start) {
    size_t i = end - 1;
    while (i > start && ((unsigned char)s.ptr[i] & 0xc0) == 0x80) i--;
    size_t j = i;
    if (!pc_is_whitespace(pc_utf8_next(s.ptr, s.len, &j))) break;
    end = i;
  }
  return (ta_str){s.ptr + start, end - start};
}

static bool is(ta_str s, const char *word) { return s.len == strlen(word) && memcmp(s.ptr, word, s.len) == 0; }

// Whether some segment of `s`, split where `separator` says, is exactly "..".
static bool has_dotdot_segment(ta_str s, bool command_like) {
  size_t start = 0;
  for (size_t i = 0; i <= s.len;) {
    size_t next = i;
    bool at_end = i == s.len, cut = at_end;
    if (!at_end) {
      uint32_t c = pc_utf8_next(s.ptr, s.len, &next);
      cut = (c < 0x80 && strchr("/\\=?&;,", (int)c) && c) || (command_like && pc_is_whitespace(c));
    }
    if (cut) {
      if (i - start == 2 && s.ptr[start] == '.' && s.ptr[start + 1] == '.') return true;
      start = next;
    }
    if (at_end) break;
    i = next;
  }
  return false;
}

// A `..` path segment next to a separator, in the string or its percent-decodings, or
// an overlong-UTF-8 dot. In command-like values words are segments too.
static bool has_traversal(ta_str s, bool command_like) {
  static const char *const overlong[] = {"%c0%ae", "%c0%af", "%e0%80%ae"};
  char *lowered = malloc(s.len + 1);
  if (!lowered) pc_fail("out of memory");
  for (size_t i = 0; i < s.len; i++) lowered[i] = lower(s.ptr[i]);
  bool found = false;
  for (size_t i = 0; i < 3 && !found; i++) found = contains(lowered, s.len, overlong[i]);
  free(lowered);
  if (found) return true;
  decodings d = decode(s);
  for (size_t i = 0; i < d.len && !found; i++) {
    ta_str v = d.all[i];
    found = is(trim(v), "..") ||
            ((contains_char(v.ptr, v.len, '/') || contains_char(v.ptr, v.len, '\\')) &&
             has_dotdot_segment(v, command_like));
  }
  free_decodings(&d);
  return found;
}

// ---- sensitive paths -------------------------------------------------------------------

static bool starts_with(const char *s, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return len >= n && memcmp(s, prefix, n) == 0;
}

// Normalize a path for the sensitive-path globs: lower case, `/` separators, no
// `file://` prefix, `~` and `$HOME` as `/~`, no empty or `.` segments. Returns a heap
// string.
static pc_buf normalize_path(ta_str p) {
  ta_str t = trim(p);
  while (t.len && (t.ptr[0] == '"' || t.ptr[0] == '\'')) t.ptr++, t.len--;
  while (t.len && (t.ptr[t.len - 1] == '"' || t.ptr[t.len - 1] == '\'')) t.len--;
  pc_buf s = {0};
  pc_buf_add(&s, t.ptr, t.len);
  for (size_t i = 0; i < s.len; i++) s.ptr[i] = s.ptr[i] == '\\' ? '/' : lower(s.ptr[i]);
  size_t from = 0;
  if (starts_with(s.ptr, s.len, "file://")) {
    from = 7;
    if (starts_with(s.ptr + from, s.len - from, "localhost")) from += 9;
  }
  pc_buf work = {0};  // s[from..], with a home prefix rewritten to "/~"
  static const char *const homes[] = {"~", "$home", "${home}"};
  const char *rest = s.ptr + from;
  size_t rest_len = s.len - from;
  pc_buf_add(&work, rest, rest_len);
  for (size_t h = 0; h < 3; h++) {
    size_t n = strlen(homes[h]);
    if (starts_with(work.ptr, work.len, homes[h]) && (work.len == n || work.ptr[n] == '/')) {
      pc_buf moved = {0};
      pc_buf_str(&moved, "/~");
      pc_buf_add(&moved, work.ptr + n, work.len - n);
      free(work.ptr);
      work = moved;
    }
  }
  free(s.ptr);
  bool absolute = (work.len && work.ptr[0] == '/') || (work.len > 1 && work.ptr[1] == ':');
  pc_buf joined = {0};
  pc_buf_add(&joined, "", 0);
  for (size_t start = 0, i = 0; i <= work.len; i++) {
    if (i < work.len && work.ptr[i] != '/') continue;
    size_t n = i - start;
    if (n && !(n == 1 && work.ptr[start] == '.')) {
      if (joined.len) pc_buf_add(&joined, "/", 1);
      pc_buf_add(&joined, work.ptr + start, n);
    }
    start = i + 1;
  }
  free(work.ptr);
  if (absolute && !contains_char(joined.ptr, joined.len, ':')) {
    pc_buf rooted = {0};
    pc_buf_add(&rooted, "/", 1);
    pc_buf_add(&rooted, joined.ptr, joined.len);
    free(joined.ptr);
    return rooted;
  }
  return joined;
}

// Whether the normalized `path` matches a sensitive glob; relative paths are also tried
// with a leading `/` against globs that start with `*`.
static bool is_sensitive(const pc_buf *path, const ta_config *config) {
  pc_buf rooted = {0};
  bool found = false;
  for (size_t i = 0; i < config->sensitive_paths_len && !found; i++) {
    ta_str g = config->sensitive_paths[i];
    found = pc_glob_match(g.ptr, g.len, path->ptr, path->len);
    if (!found && g.len && g.ptr[0] == '*' && !(path->len && path->ptr[0] == '/')) {
      if (!rooted.len) {
        pc_buf_add(&rooted, "/", 1);
        pc_buf_add(&rooted, path->ptr, path->len);
      }
      found = pc_glob_match(g.ptr, g.len, rooted.ptr, rooted.len);
    }
  }
  free(rooted.ptr);
  return found;
}

static bool normalized_is_sensitive(ta_str p, const ta_config *config) {
  pc_buf path = normalize_path(p);
  bool found = is_sensitive(&path, config);
  free(path.ptr);
  return found;
}

// The whole value is a sensitive path; for command/path-like properties, also any word
// of it containing `/` or `\` or starting with `~`.
static bool reaches_sensitive_path(ta_str s, bool command_like, const ta_config *config) {
  decodings d = decode(s);
  bool found = false;
  for (size_t i = 0; i < d.len && !found; i++) found = normalized_is_sensitive(d.all[i], config);
  free_decodings(&d);
  if (found || !command_like) return found;
  size_t start = 0;
  for (size_t i = 0; i <= s.len && !found;) {
    size_t next = i;
    bool at_end = i == s.len, cut = at_end;
    if (!at_end) {
      uint32_t c = pc_utf8_next(s.ptr, s.len, &next);
      cut = pc_is_whitespace(c) || (c < 0x80 && c && strchr("=;|&<>()\"'`,", (int)c));
    }
    if (cut) {
      ta_str w = {s.ptr + start, i - start};
      if (contains_char(w.ptr, w.len, '/') || contains_char(w.ptr, w.len, '\\') ||
          (w.len && w.ptr[0] == '~'))
        found = normalized_is_sensitive(w, config);
      start = next;
    }
    if (at_end) break;
    i = next;
  }
  return found;
}

// ---- shell and URLs ------------------------------------------------------------------------

// The first shell metacharacter in `s`, described, or NULL.
static const char *shell_metacharacter(ta_str s) {
  for (size_t i = 0; i < sizeof SHELL_META / sizeof *SHELL_META; i++)
    if (contains(s.ptr, s.len, SHELL_META[i][0])) return SHELL_META[i][1];
  return NULL;
}

// The host of a URL authority: after the last `@`, without the port, brackets or a
// trailing dot, lower-cased into `out`.
static void host_of(ta_str authority, pc_buf *out) {
  const char *at = authority.ptr;
  for (size_t i = authority.len; i-- > 0;)
    if (authority.ptr[i] == '@') { at = authority.ptr + i + 1; break; }
  size_t len = (size_t)(authority.ptr + authority.len - at);
  const char *host = at;
  char stop = ':';
  if (len && host[0] == '[') host++, len--, stop = ']';
  const char *end = memchr(host, stop, len);
  if (end) len = (size_t)(end - host);
  while (len && host[len - 1] == '.') len--;
  pc_buf_truncate(out, 0);
  pc_buf_add(out, host, len);
  for (size_t i = 0; i < out->len; i++) out->ptr[i] = lower(out->ptr[i]);
}

static bool host_allowed(const pc_buf *host, const ta_config *config) {
  for (size_t i = 0; i < config->allowed_hosts_len; i++) {
    ta_str g = config->allowed_hosts[i];
    if (pc_glob_match(g.ptr, g.len, host->ptr, host->len)) return true;
  }
  return false;
}

// Whether some `scheme://` URL in `s` (not `file://`) has a host outside allowed_hosts.
static bool has_foreign_url(ta_str s, const ta_config *config) {
  pc_buf host = {0};
  bool foreign = false;
  for (size_t at = 0; at + 3 <= s.len && !foreign; at++) {
    if (memcmp(s.ptr + at, "://", 3) != 0) continue;
    size_t scheme = at;
    while (scheme > 0 && (is_alnum(s.ptr[scheme - 1]) || s.ptr[scheme - 1] == '+' ||
                          s.ptr[scheme - 1] == '-' || s.ptr[scheme - 1] == '.'))
      scheme--;
    bool alpha = scheme < at && ((s.ptr[scheme] | 32) >= 'a' && (s.ptr[scheme] | 32) <= 'z');
    bool file = at - scheme == 4 && (s.ptr[scheme] | 32) == 'f' && (s.ptr[scheme + 1] | 32) == 'i' &&
                (s.ptr[scheme + 2] | 32) == 'l' && (s.ptr[scheme + 3] | 32) == 'e';
    size_t start = at + 3, end = start;
    while (end < s.len) {
      size_t next = end;
      uint32_t c = pc_utf8_next(s.ptr, s.len, &next);
      if (pc_is_whitespace(c) || (c < 0x80 && c && strchr("/\\?#\"'<>`", (int)c))) break;
      end = next;
    }
    if (alpha && !file) {
      host_of((ta_str){s.ptr + start, end - start}, &host);
      foreign = !host_allowed(&host, config);
    }
    at += 2;  // matches of "://" never overlap
  }
  free(host.ptr);
  return foreign;
}

// ---- the walk ------------------------------------------------------------------------------

static void report(ta_problems *out, const char *before, const char *what, const pc_buf *path) {
  pc_buf message = {0};
  pc_buf_str(&message, before);
  if (what) {
    pc_buf_str(&message, what);
    pc_buf_str(&message, ") in argument ");
  }
  pc_buf_add(&message, path->ptr, path->len);
  ta_problems_add(out, message.ptr);
  free(message.ptr);
}

static void check_string(ta_str s, ta_str key, const pc_buf *path, const ta_config *config,
                         ta_problems *out) {
  bool command_like = is_command_key(key.ptr, key.len);
  if (has_traversal(s, command_like)) report(out, "path traversal in argument ", NULL, path);
  if (reaches_sensitive_path(s, command_like, config))
    report(out, "sensitive path in argument ", NULL, path);
  const char *meta = command_like || config->strict_shell ? shell_metacharacter(s) : NULL;
  if (meta) report(out, "shell metacharacter (", meta, path);
  if (config->has_allowed_hosts && has_foreign_url(s, config))
    report(out, "URL to a host outside allowed_hosts in argument ", NULL, path);
}

// Visit every string under `value`; array items inherit their property's name. Stops
// once the findings are full (later problems would be dropped anyway).
static void walk(const pc_json *value, ta_str key, pc_buf *path, const ta_config *config,
                 ta_problems *out) {
  if (ta_problems_full(out)) return;
  size_t mark = path->len;
  switch (pc_json_kind_of(value)) {
    case PC_JSON_STRING: {
      ta_str s;
      s.ptr = pc_json_string(value, &s.len);
      check_string(s, key, path, config, out);
      break;
    }
    case PC_JSON_ARRAY:
      for (size_t i = 0; i < pc_json_len(value); i++) {
        pc_buf_str(path, "[");
        pc_buf_u64(path, i);
        pc_buf_str(path, "]");
        walk(pc_json_at(value, i), key, path, config, out);
        pc_buf_truncate(path, mark);
      }
      break;
    case PC_JSON_OBJECT:
      for (size_t i = 0; i < pc_json_len(value); i++) {
        ta_str k;
        k.ptr = pc_json_key_n(value, i, &k.len);
        ta_child_path(path, k.ptr, k.len);
        walk(pc_json_at(value, i), k, path, config, out);
        pc_buf_truncate(path, mark);
      }
      break;
    default:
      break;
  }
}

void ta_args_check(const pc_json *arguments, const ta_config *config, ta_problems *out) {
  pc_buf path = {0};
  pc_buf_str(&path, "$");
  walk(arguments, (ta_str){"", 0}, &path, config, out);
  free(path.ptr);
}
