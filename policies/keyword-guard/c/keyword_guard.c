// keyword-guard in C: the same policy as policies/keyword-guard (Rust), passing the
// same fixtures. See that crate's documentation for the configuration.
//
//   portcullis build --lang c --world guardrail -I sdk/c --out keyword-guard-c.wasm \
//       policies/keyword-guard/c/keyword_guard.c sdk/c/portcullis.c

#include "guardrail.h"
#include "portcullis.h"

#include <stdlib.h>
#include <string.h>

#define MAX_FINDINGS 20

static const char *const FIELDS[] = {"keywords", "patterns", "category", "severity", "roles"};

static char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }

// Whether `needle` (already lowercased) occurs in `text` at `at`, ASCII case-insensitively.
static bool matches_at(const uint8_t *text, size_t at, const char *needle, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (ascii_lower((char)text[at + i]) != needle[i]) return false;
  return true;
}

void exports_portcullis_policy_request_checker_check_request(
    exports_portcullis_policy_request_checker_chat_request_t *request,
    exports_portcullis_policy_request_checker_verdict_t *ret) {
  const pc_json *config = pc_config();
  for (size_t i = 0; pc_json_key(config, i); i++) {
    const char *key = pc_json_key(config, i);
    size_t k = 0;
    while (k < sizeof FIELDS / sizeof *FIELDS && strcmp(key, FIELDS[k]) != 0) k++;
    if (k == sizeof FIELDS / sizeof *FIELDS) pc_fail("unknown configuration field");
  }
  const pc_json *keywords = pc_json_get(config, "keywords");
  size_t keyword_count = pc_json_len(keywords);
  char **lowered = calloc(keyword_count ? keyword_count : 1, sizeof *lowered);
  size_t *lengths = calloc(keyword_count ? keyword_count : 1, sizeof *lengths);
  for (size_t k = 0; k < keyword_count; k++) {
    const char *keyword = pc_json_string(pc_json_at(keywords, k), &lengths[k]);
    if (!keyword) pc_fail("keywords must be strings");
    if (lengths[k] == 0) pc_fail("a keyword is empty");
    lowered[k] = malloc(lengths[k]);
    for (size_t i = 0; i < lengths[k]; i++) lowered[k][i] = ascii_lower(keyword[i]);
  }
  const pc_json *patterns = pc_json_get(config, "patterns");
  bool has_matcher = pc_json_len(patterns) > 0;
  portcullis_policy_matchers_own_matcher_t matcher = {0};
  if (has_matcher) matcher = pc_matcher(patterns);
  portcullis_policy_types_category_t category =
      pc_category(pc_config_string(config, "category", "prompt-injection"));
  portcullis_policy_types_severity_t severity =
      pc_severity(pc_config_string(config, "severity", "high"));
  const pc_json *roles = pc_json_get(config, "roles");

  pc_findings_t findings = {0};
  pc_buf message = {0};
  for (size_t index = 0; index < request->messages.len; index++) {
    portcullis_policy_types_message_t *m = &request->messages.ptr[index];
    if (!pc_role_scanned(roles, m->role)) continue;
    const uint8_t *text = m->content.ptr;
    size_t len = m->content.len;
    for (size_t k = 0; k < keyword_count; k++) {
      for (size_t at = 0; at + lengths[k] <= len;) {
        if (!matches_at(text, at, lowered[k], lengths[k])) { at++; continue; }
        pc_buf_truncate(&message, 0);
        pc_buf_str(&message, "keyword ");
        pc_buf_u64(&message, k);
        pc_buf_str(&message, " matched");
        pc_findings_push(&findings, category, severity, message.ptr, (uint32_t)index,
                         (uint32_t)at, (uint32_t)(at + lengths[k]));
        at += lengths[k];
      }
    }
    if (has_matcher) {
      portcullis_policy_matchers_list_match_t found = pc_matcher_find_all(matcher, text, len);
      for (size_t i = 0; i < found.len; i++) {
        pc_buf_truncate(&message, 0);
        pc_buf_str(&message, "pattern ");
        pc_buf_u64(&message, found.ptr[i].pattern);
        pc_buf_str(&message, " matched");
        pc_findings_push(&findings, category, severity, message.ptr, (uint32_t)index,
                         found.ptr[i].start, found.ptr[i].end);
      }
      portcullis_policy_matchers_list_match_free(&found);
    }
  }
  for (size_t i = MAX_FINDINGS; i < findings.len; i++)
    portcullis_policy_types_finding_free(&findings.ptr[i]);
  if (findings.len > MAX_FINDINGS) findings.len = MAX_FINDINGS;
  free(message.ptr);
  if (has_matcher) portcullis_policy_matchers_matcher_drop_own(matcher);
  exports_portcullis_policy_request_checker_chat_request_free(request);
  pc_deny_if_any(&findings, ret);
}
