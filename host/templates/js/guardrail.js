// {{name}}: a guardrail policy (world `guardrail`).
//
// It denies a request when an untrusted message (role `user` or `tool`) contains a
// blocked phrase, ignoring ASCII case. Configuration (the `config` of policy.toml):
//
//   {"phrases": ["ignore previous instructions"]}      // the default
//
// Replace the logic below with your own, keep fixtures/cases.jsonl in step, and run
// `portcullis test`. Spans are UTF-8 byte offsets: `p.finding` converts JavaScript's
// UTF-16 offsets for you.

import * as p from '{{js_sdk}}';

const DEFAULT_PHRASES = ['ignore previous instructions'];

/** The configured phrases, ASCII-lowercased. Bad configuration fails the evaluation
 * (the host then applies the policy's `on_error`). */
function blockedPhrases() {
  const config = p.config();
  if (Object.keys(config).some((key) => key !== 'phrases')) {
    p.fail('unknown configuration field(s): the only field is phrases');
  }
  const { phrases = DEFAULT_PHRASES } = config; // the default applies only when absent
  if (!Array.isArray(phrases) || !phrases.every((x) => typeof x === 'string')) {
    p.fail('phrases must be a list of strings');
  }
  if (phrases.includes('')) p.fail(`phrases[${phrases.indexOf('')}] is empty`);
  return phrases.map(p.asciiLower);
}

export const requestChecker = {
  checkRequest(request) {
    const phrases = blockedPhrases();
    const findings = [];
    for (const [index, message] of p.scannedMessages(request)) { // user and tool messages
      // asciiLower keeps every character in place, so offsets stay exact.
      const text = p.asciiLower(message.content);
      phrases.forEach((phrase, i) => {
        for (let start = text.indexOf(phrase); start >= 0;
          start = text.indexOf(phrase, start + phrase.length)) {
          // The message names the phrase by number, never the user's text.
          findings.push(p.finding('prompt-injection', 'high', `matches blocked phrase ${i}`,
            message.content, index, start, start + phrase.length));
        }
      });
    }
    return p.denyIfAny(findings);
  },
};
