"""tool-allowlist in Python: the same tool sandbox as policies/tool-allowlist (Rust),
with the same configuration, decisions and findings, passing the same fixtures. See
that crate's README for what it checks and how it is configured.

For every tool offered (`check_tools`) and every call made (`check_calls`) it decides
allow or deny: allow/deny lists over server and tool name, description pins against
rug pulls, and, for calls, that the tool was offered, that the arguments are JSON,
match the tool's input schema (`schema`) and pass the argument checks (`args`).
"""

import hashlib
from itertools import chain, islice

import portcullis_policy as p
from wit_world import exports
from wit_world.imports import types

import args
import config as configuration
import schema
import wildcard
from rusttext import trim

#: Findings reported per tool or call, at most.
MAX_FINDINGS = 10

CATEGORY = "tool-misuse"


class ToolAuthorizer(exports.ToolAuthorizer):
    """The tool sandbox."""

    def check_tools(self, context, tools):
        config = configuration.load()
        return [_authorization(tool_findings(config, i, tool)) for i, tool in enumerate(tools)]

    def check_calls(self, context, tools, calls):
        config = configuration.load()
        return [_authorization(call_findings(config, i, tools, call))
                for i, call in enumerate(calls)]


def _authorization(findings):
    return types.Authorization_Deny(findings) if findings else types.Authorization_Allow()


def _finding(severity, message, index, end=0):
    """A finding about tool or call `index`, spanning its first `end` bytes."""
    return p.byte_finding(CATEGORY, severity, message, index, 0, end)


def _utf8_len(text):
    return len(text.encode("utf-8"))


def tool_findings(config, index, tool):
    """Why a tool may not be offered (or called): deny list, allowlist, pins, schema."""
    findings = []
    why = listing_problem(config, tool.server, tool.name)
    if why:
        findings.append(_finding("high", why, index))
    pin = pin_problem(config, index, tool)
    if pin:
        findings.append(pin)
    if config.check_schema and parse_schema(tool.input_schema) is None:
        findings.append(_finding("high", "tool input schema is not valid JSON Schema", index))
    return findings


def _rule_matches(rule, server, name):
    return wildcard.matches(rule.server, server) and wildcard.matches(rule.tool, name)


def listing_problem(config, server, name):
    """Deny list first, then allowlist, then the default; None when allowed."""
    if any(_rule_matches(r, server, name) for r in config.deny):
        return "tool is on the deny list"
    allowed = config.default_allow or any(_rule_matches(r, server, name) for r in config.allow)
    return None if allowed else "tool is not on the allowlist"


def sha256_hex(text):
    """Lowercase hex SHA-256 of `text`'s UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def pin_problem(config, index, tool):
    """A pin mismatch (critical), or a missing pin when pins are required; else None."""
    pins = [pin for pin in config.pins
            if wildcard.matches(pin.server, tool.server) and wildcard.matches(pin.tool, tool.name)]
    if not pins:
        if config.require_pins:
            return _finding("high", "tool description is not pinned (require_pins)", index)
        return None
    digest = sha256_hex(tool.description)
    if any(pin.sha256 == digest for pin in pins):
        return None
    return _finding("critical", "tool description changed since pinned (possible rug pull)",
                    index, _utf8_len(tool.description))


def parse_schema(text):
    """A tool's input schema; None when it is not JSON or not a schema (an object or a
    boolean)."""
    try:
        value = p.parse_json(text)
    except p.JSONError:
        return None
    return value if isinstance(value, (dict, bool)) else None


def offered_tool(tools, call):
    """The offered tool a call refers to, as `(tool, None)`, or `(None, why not)`."""
    for tool in tools:
        if tool.name == call.name and tool.server == call.server:
            return tool, None
    if not call.server:
        named = [tool for tool in tools if tool.name == call.name][:2]
        if len(named) == 1:
            return named[0], None
        if named:
            return None, "call names a tool offered by several servers"
    return None, "tool was not offered in this request"


def parse_arguments(text):
    """Call arguments as JSON; an empty or blank string (a call without parameters) is
    `{}`. Raises `p.JSONError` when they are not JSON."""
    if not trim(text):
        return {}
    return p.parse_json(text)


def _distinct(items):
    """`items` without repeats, in order."""
    seen = set()
    for item in items:
        if item not in seen:
            seen.add(item)
            yield item


def call_findings(config, index, tools, call):
    """Why a call may not run."""
    tool, why = offered_tool(tools, call)
    if tool is None:
        return [_finding("high", why, index)]
    tool_level = tool_findings(config, index, tool)
    if tool_level:
        return tool_level
    try:
        arguments = parse_arguments(call.arguments)
    except p.JSONError:
        return [_finding("high", "call arguments are not valid JSON", index,
                         _utf8_len(call.arguments))]
    schema_problems = ()
    if config.check_schema:
        input_schema = parse_schema(tool.input_schema)
        if input_schema is not None:
            violations = schema.validate(input_schema, arguments, schema.Patterns(input_schema))
            schema_problems = [f"arguments do not match the input schema: {v}"
                               for v in violations]
    argument_problems = args.check(arguments, config) if config.argument_checks else ()
    # The argument checks are a generator: stop once MAX_FINDINGS distinct problems
    # are known, as the rest would be dropped anyway.
    problems = islice(_distinct(chain(schema_problems, argument_problems)), MAX_FINDINGS)
    end = _utf8_len(call.arguments)
    return [_finding("high", problem, index, end) for problem in problems]
