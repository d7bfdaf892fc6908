"""Helpers for Portcullis policies written in Python (componentize-py).

The contract's types come from the bindings componentize-py generates from
`wit/policy.wit` (module `wit_world`); these helpers wrap the parts every policy
needs: its configuration, findings with spans in the contract's unit (UTF-8 bytes,
while Python indexes code points), verdicts, the host's compiled regular
expressions, and the untrusted texts of a request.
"""

import json

from wit_world.imports import host, matchers, types

from .strict_json import JSONError, loads as parse_json

__all__ = [
    "config", "raw_config", "parse_json", "JSONError", "fail", "log", "category",
    "severity", "finding", "deny_if_any", "redact", "byte_finding", "utf8_offset", "ascii_lower",
    "Matcher", "PatternError", "scanned_messages",
]

_CATEGORIES = {
    "prompt-injection": types.Category_PromptInjection,
    "jailbreak": types.Category_Jailbreak,
    "pii": types.Category_Pii,
    "secret": types.Category_Secret,
    "toxicity": types.Category_Toxicity,
    "tool-misuse": types.Category_ToolMisuse,
    "model-extraction": types.Category_ModelExtraction,
    "system-prompt-leak": types.Category_SystemPromptLeak,
}

_SEVERITIES = {
    "low": types.Severity.LOW,
    "medium": types.Severity.MEDIUM,
    "high": types.Severity.HIGH,
    "critical": types.Severity.CRITICAL,
}

_ROLES = {
    "system": types.Role.SYSTEM,
    "developer": types.Role.DEVELOPER,
    "user": types.Role.USER,
    "assistant": types.Role.ASSISTANT,
    "tool": types.Role.TOOL,
}


class PolicyError(Exception):
    """A policy error (bad configuration, impossible input): the host records an
    `error` outcome and applies the policy's `on_error`."""


def fail(reason):
    """Log `reason` and raise: the evaluation ends as an error, never as a verdict."""
    host.log(host.Level.ERROR, str(reason))
    raise PolicyError(str(reason))


def log(message, level="info"):
    """A log line the host keeps with the evaluation."""
    host.log(getattr(host.Level, level.upper()), message)


def raw_config():
    """The operator's configuration as the host passed it: JSON text (`{}` when none).
    For policies that parse it themselves, e.g. with `parse_json`."""
    return host.config()


def config():
    """The operator's configuration of this policy (a dict; `{}` when none)."""
    text = host.config()
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        fail(f"configuration is not JSON: {e}")
    if not isinstance(value, dict):
        fail("configuration must be a JSON object")
    return value


def category(name):
    """A contract category by name; any other name is a custom category."""
    known = _CATEGORIES.get(name)
    return known() if known else types.Category_Custom(name)


def severity(name):
    """`low`, `medium`, `high` or `critical`."""
    try:
        return _SEVERITIES[name]
    except KeyError:
        fail(f"unknown severity {name!r}: use low, medium, high or critical")


def utf8_offset(text, index):
    """The UTF-8 byte offset of code point `index` of `text`."""
    return len(text[:index].encode("utf-8"))


def finding(category_name, severity_name, message, text=None, index=None,
            start=None, end=None, score=None):
    """A finding. With `text`, `index` (the message number) and `start`/`end` in code
    points of `text`, it carries a span in UTF-8 bytes."""
    span = None
    if index is not None:
        span = types.Span(index=index, start=utf8_offset(text, start),
                          end=utf8_offset(text, end))
    return types.Finding(category=category(category_name),
                         severity=severity(severity_name), message=message,
                         span=span, score=score)


def byte_finding(category_name, severity_name, message, index, start, end):
    """A finding whose span is already in UTF-8 bytes (host matcher results)."""
    return types.Finding(category=category(category_name),
                         severity=severity(severity_name), message=message,
                         span=types.Span(index=index, start=start, end=end), score=None)


def deny_if_any(findings):
    """Deny when there is any finding, allow otherwise."""
    return types.Verdict_Deny(findings) if findings else types.Verdict_Allow([])


def redact(findings, replacement):
    """Replace the span of every finding (spans must not overlap): a modify verdict
    carrying the findings, or allow when there are none. `replacement` is a string, or a
    function of the finding returning one (e.g. numbered placeholders)."""
    if not findings:
        return types.Verdict_Allow([])
    replace = replacement if callable(replacement) else (lambda _finding: replacement)
    edits = [types.Edit_Redact(types.Redaction(f.span, replace(f))) for f in findings]
    return types.Verdict_Modify(types.Modification(edits, findings))


def ascii_lower(text):
    """`text` with ASCII letters lowercased and nothing else changed (code point
    offsets stay valid, unlike `str.lower()`)."""
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


class PatternError(Exception):
    """The host could not compile a pattern list (syntax, size or count limits); the
    message names the offending pattern."""


class Matcher:
    """Regular expressions (Rust `regex` syntax) compiled by the host once per policy
    version. Matches are in UTF-8 bytes.

    `Matcher(patterns)` ends the evaluation as an error when the host refuses the
    patterns (fit for configured patterns); `Matcher.compile(patterns)` raises
    `PatternError` instead, for policies that handle it themselves."""

    def __init__(self, patterns):
        try:
            self._inner = _compile(patterns)
        except PatternError as e:
            fail(f"patterns: {e}")

    @classmethod
    def compile(cls, patterns):
        """A Matcher for `patterns`; raises `PatternError` if the host refuses them."""
        matcher = cls.__new__(cls)
        matcher._inner = _compile(patterns)
        return matcher

    def find_all(self, text):
        """Every match as (pattern index, start byte, end byte)."""
        return [(m.pattern, m.start, m.end) for m in self._inner.find_all(text)]


def _compile(patterns):
    try:
        return matchers.Matcher.compile(list(patterns))
    except Exception as e:  # componentize_py_types.Err carries the host's message
        raise PatternError(str(getattr(e, "value", e))) from None


def scanned_messages(request, roles=None):
    """(index, message) for the messages whose role is in `roles` (names; default:
    the untrusted roles, user and tool)."""
    wanted = set()
    for name in roles if roles is not None else ["user", "tool"]:
        if name not in _ROLES:
            fail(f"unknown role {name!r}: use system, developer, user, assistant or tool")
        wanted.add(_ROLES[name])
    return [(i, m) for i, m in enumerate(request.messages) if m.role in wanted]
