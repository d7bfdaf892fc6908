"""{{name}}: a tool sandbox policy (world `tool-sandbox`).

It lets the model be offered, and call, only the tools named in an allow list.
Configuration (the `config` of policy.toml):

    {"allow": ["search_docs"]}      # default: [] (fail closed: every tool is denied)

Replace the logic below with your own, keep fixtures/cases.jsonl in step, and run
`portcullis test`. The host asks twice: which tools may be offered (check_tools) and
which calls the model made may run (check_calls); answer once per tool or call, in order.
"""

import portcullis_policy as p
from wit_world import exports
from wit_world.imports import types


def allowed_tools():
    """The configured tool names; bad configuration fails the evaluation."""
    config = p.config()
    if set(config) - {"allow"}:
        p.fail("unknown configuration field(s): the only field is allow")
    allow = config.get("allow", [])
    if not isinstance(allow, list) or not all(isinstance(name, str) for name in allow):
        p.fail("allow must be a list of tool names")
    return set(allow)


def deny(reason):
    """A refusal with one finding (no span: it is about a tool, not a text range)."""
    return types.Authorization_Deny([p.finding("tool-misuse", "high", reason)])


class ToolAuthorizer(exports.ToolAuthorizer):
    def check_tools(self, context, tools):
        allowed = allowed_tools()
        return [types.Authorization_Allow() if tool.name in allowed
                else deny(f"tool {tool.name} is not on the allow list")
                for tool in tools]

    def check_calls(self, context, tools, calls):
        allowed = allowed_tools()
        offered = {tool.name for tool in tools}
        decisions = []
        for call in calls:
            if call.name not in allowed:
                decisions.append(deny(f"tool {call.name} is not on the allow list"))
            elif call.name not in offered:
                decisions.append(deny(f"tool {call.name} was not offered in this request"))
            else:
                decisions.append(types.Authorization_Allow())
        return decisions
