"""{{name}}: an output filter policy (world `output-filter`).

It redacts configured words (case-sensitive) from model responses, complete or
streamed. Configuration (the `config` of policy.toml):

    {"words": ["CONFIDENTIAL"]}      # the default

Replace the logic below with your own, keep fixtures/cases.jsonl in step, and run
`portcullis test`. The work is done on UTF-8 bytes, so offsets are already in the
contract's unit.
"""

import sys

import portcullis_policy as p
from wit_world import exports
from wit_world.exports import response_filter
from wit_world.imports import types

DEFAULT_WORDS = ["CONFIDENTIAL"]
REPLACEMENT = "[REDACTED]"


def redacted_words():
    """The configured words as UTF-8 bytes; bad configuration fails the evaluation."""
    config = p.config()
    if set(config) - {"words"}:
        p.fail("unknown configuration field(s): the only field is words")
    words = config.get("words", DEFAULT_WORDS)
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        p.fail("words must be a list of strings")
    if "" in words:
        p.fail(f"words[{words.index('')}] is empty")
    return [w.encode("utf-8") for w in words]


def occurrences(data, words):
    """(start, end, word index) of every non-overlapping occurrence, left to right;
    where several words match at one position the first configured one wins."""
    found, at = [], 0
    upcoming = [data.find(word) for word in words]   # next start of each word; -1: none
    while True:
        for i, word in enumerate(words):
            if 0 <= upcoming[i] < at:                    # overtaken: search again
                upcoming[i] = data.find(word, at)
        candidates = [(start, i) for i, start in enumerate(upcoming) if start >= 0]
        if not candidates:
            return found
        start, i = min(candidates)                       # earliest, then first configured
        at = start + len(words[i])
        found.append((start, at, i))


def redaction_finding(i, start, end):
    """The finding for word `i` redacted at bytes start..end."""
    return p.byte_finding("redacted-word", "medium", f"redacted word {i}", 0, start, end)


class ResponseFilter(exports.ResponseFilter):
    def check_response(self, context, text):
        findings = [redaction_finding(i, s, e)
                    for s, e, i in occurrences(text.encode("utf-8"), redacted_words())]
        return p.redact(findings, REPLACEMENT)


class ResponseStream(response_filter.ResponseStream):
    """One streamed response. Text is held back until no word can still be completed
    by a later chunk; spans count bytes from the start of the whole stream."""

    def __init__(self, context):
        self.words = redacted_words()
        self.hold = max((len(w) for w in self.words), default=1) - 1   # bytes
        self.pending = b""      # received, not yet released
        self.released = 0       # bytes of the stream released so far

    def push(self, chunk):
        self.pending += chunk.encode("utf-8")
        return self.release(everything=False)

    def finish(self):
        return self.release(everything=True)

    def release(self, everything):
        found = occurrences(self.pending, self.words)
        cut = len(self.pending) if everything else self.safe_cut(found)
        parts, findings, copied = [], [], 0
        for start, end, i in found:
            if start >= cut:
                break
            parts += [self.pending[copied:start], REPLACEMENT.encode()]
            findings.append(redaction_finding(i, self.released + start, self.released + end))
            copied = end
        parts.append(self.pending[copied:cut])
        self.pending = self.pending[cut:]
        self.released += cut
        return types.StreamVerdict_Emit(types.Released(b"".join(parts).decode("utf-8"), findings))

    def safe_cut(self, found):
        """All but the hold-back tail, moved back to a character boundary and to the
        start of an occurrence that would straddle it."""
        cut = max(len(self.pending) - self.hold, 0)
        while 0 < cut < len(self.pending) and self.pending[cut] & 0xC0 == 0x80:
            cut -= 1                                   # inside a multi-byte character
        for start, end, _ in found:
            if start < cut < end:
                return start
        return cut


# componentize-py looks for the classes of exported resources in a module named after
# their interface (`response_filter`); this file serves as that module.
sys.modules["response_filter"] = sys.modules[__name__]
