"""{{name}}: a guardrail policy (world `guardrail`).

It denies a request when an untrusted message (role `user` or `tool`) contains a
blocked phrase, ignoring ASCII case. Configuration (the `config` of policy.toml):

    {"phrases": ["ignore previous instructions"]}      # the default

Replace the logic below with your own, keep fixtures/cases.jsonl in step, and run
`portcullis test`. Spans are UTF-8 byte offsets: `p.finding` converts Python's
code point offsets for you.
"""

import portcullis_policy as p
from wit_world import exports

DEFAULT_PHRASES = ["ignore previous instructions"]


def blocked_phrases():
    """The configured phrases, ASCII-lowercased. Bad configuration fails the evaluation
    (the host then applies the policy's `on_error`)."""
    config = p.config()
    if set(config) - {"phrases"}:
        p.fail("unknown configuration field(s): the only field is phrases")
    phrases = config.get("phrases", DEFAULT_PHRASES)
    if not isinstance(phrases, list) or not all(isinstance(x, str) for x in phrases):
        p.fail("phrases must be a list of strings")
    if "" in phrases:
        p.fail(f"phrases[{phrases.index('')}] is empty")
    return [p.ascii_lower(phrase) for phrase in phrases]


class RequestChecker(exports.RequestChecker):
    def check_request(self, request):
        phrases = blocked_phrases()
        findings = []
        for index, message in p.scanned_messages(request):    # user and tool messages
            # ascii_lower keeps every character in place, so offsets stay exact.
            text = p.ascii_lower(message.content)
            for i, phrase in enumerate(phrases):
                start = text.find(phrase)
                while start >= 0:
                    end = start + len(phrase)
                    # The message names the phrase by number, never the user's text.
                    findings.append(p.finding("prompt-injection", "high",
                                              f"matches blocked phrase {i}",
                                              message.content, index, start, end))
                    start = text.find(phrase, end)
        return p.deny_if_any(findings)
