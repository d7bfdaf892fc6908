// {{name}}: a tool sandbox policy (world `tool-sandbox`).
//
// It lets the model be offered, and call, only the tools named in an allow list.
// Configuration (the `config` of policy.toml):
//
//   {"allow": ["search_docs"]}      // default: [] (fail closed: every tool is denied)
//
// Replace the logic below with your own, keep fixtures/cases.jsonl in step, and run
// `portcullis test`. The host asks twice: which tools may be offered (checkTools) and
// which calls the model made may run (checkCalls); answer once per tool or call, in order.

import * as p from '{{js_sdk}}';

const ALLOW = { tag: 'allow' };

/** The configured tool names; bad configuration fails the evaluation. */
function allowedTools() {
  const config = p.config();
  if (Object.keys(config).some((key) => key !== 'allow')) {
    p.fail('unknown configuration field(s): the only field is allow');
  }
  const { allow = [] } = config; // the default applies only when absent
  if (!Array.isArray(allow) || !allow.every((name) => typeof name === 'string')) {
    p.fail('allow must be a list of tool names');
  }
  return new Set(allow);
}

/** A refusal with one finding (no span: it is about a tool, not a text range). */
function deny(reason) {
  return { tag: 'deny', val: [p.finding('tool-misuse', 'high', reason)] };
}

export const toolAuthorizer = {
  checkTools(context, tools) {
    const allowed = allowedTools();
    return tools.map((tool) => (allowed.has(tool.name) ? ALLOW
      : deny(`tool ${tool.name} is not on the allow list`)));
  },

  checkCalls(context, tools, calls) {
    const allowed = allowedTools();
    const offered = new Set(tools.map((tool) => tool.name));
    return calls.map((call) => {
      if (!allowed.has(call.name)) return deny(`tool ${call.name} is not on the allow list`);
      if (!offered.has(call.name)) return deny(`tool ${call.name} was not offered in this request`);
      return ALLOW;
    });
  },
};
