// tool-allowlist in JavaScript: the same tool sandbox as policies/tool-allowlist (Rust),
// with the same configuration, decisions and findings, passing the same fixtures. See
// that crate's README for the rules and the configuration.
//
// For every tool offered (`checkTools`) and every call made (`checkCalls`) it decides
// allow or deny: allow/deny lists of server and tool globs (fail closed by default),
// description pins (SHA-256) against rug pulls, the arguments' JSON Schema, and
// argument checks for traversal, sensitive paths, shell metacharacters and URL hosts.
// Findings: category tool-misuse, severity high (critical for a pin mismatch), span
// index = tool or call index.

import * as p from '../../../sdk/js/portcullis.js';
import * as args from './args.js';
import { loadConfig } from './config.js';
import { isObject, parseJson } from './json.js';
import { Patterns, validate } from './schema.js';
import { isRustBlank } from './text.js';

/** Findings reported per tool or call, at most. */
const MAX_FINDINGS = 10;

export const toolAuthorizer = {
  checkTools(_context, tools) {
    const config = loadConfig();
    return tools.map((tool, i) => authorization(toolFindings(config, i, tool, schemaOf(config, tool))));
  },

  checkCalls(_context, tools, calls) {
    const config = loadConfig();
    return calls.map((call, i) => authorization(callFindings(config, i, tools, call)));
  },
};

function authorization(findings) {
  return findings.length ? { tag: 'deny', val: findings } : { tag: 'allow' };
}

function finding(severity, message, index, start, end) {
  return p.byteFinding('tool-misuse', severity, message, index, start, end);
}

/** The tool's input schema when `check_schema` is on: a JSON object or boolean, or
 * null when it is not one; undefined when schemas are not checked. */
function schemaOf(config, tool) {
  if (!config.checkSchema) return undefined;
  const schema = parseJson(tool.inputSchema);
  return isObject(schema) || typeof schema === 'boolean' ? schema : null;
}

/** Why a tool may not be offered (or called): deny list, allowlist, pins, schema. */
function toolFindings(config, index, tool, schema) {
  const findings = [];
  const why = listingProblem(config, tool.server, tool.name);
  if (why !== undefined) findings.push(finding('high', why, index, 0, 0));
  const pin = pinProblem(config, index, tool);
  if (pin !== undefined) findings.push(pin);
  if (schema === null) {
    findings.push(finding('high', 'tool input schema is not valid JSON Schema', index, 0, 0));
  }
  return findings;
}

function ruleMatches(rule, server, name) {
  return rule.server.matches(server) && rule.tool.matches(name);
}

/** Deny list first, then allowlist, then the default. */
function listingProblem(config, server, name) {
  if (config.deny.some((r) => ruleMatches(r, server, name))) return 'tool is on the deny list';
  const allowed = config.defaultAllow || config.allow.some((r) => ruleMatches(r, server, name));
  return allowed ? undefined : 'tool is not on the allowlist';
}

/** A pin mismatch (critical), or a missing pin when pins are required. */
function pinProblem(config, index, tool) {
  const pins = config.pins.filter((pin) => ruleMatches(pin, tool.server, tool.name));
  if (!pins.length) {
    return config.requirePins
      ? finding('high', 'tool description is not pinned (require_pins)', index, 0, 0)
      : undefined;
  }
  const digest = p.sha256Hex(tool.description);
  if (pins.some((pin) => pin.sha256 === digest)) return undefined;
  return finding('critical', 'tool description changed since pinned (possible rug pull)',
    index, 0, p.utf8Length(tool.description));
}

/** The offered tool a call refers to, or why there is none. */
function offeredTool(tools, call) {
  const exact = tools.find((t) => t.name === call.name && t.server === call.server);
  if (exact) return { tool: exact };
  if (call.server === '') {
    const named = tools.filter((t) => t.name === call.name);
    if (named.length === 1) return { tool: named[0] };
    if (named.length > 1) return { why: 'call names a tool offered by several servers' };
  }
  return { why: 'tool was not offered in this request' };
}

/** Call arguments as JSON; an empty or blank string (a call without parameters) is
 * `{}`. Undefined when they are not valid JSON. */
function parseArguments(text) {
  return isRustBlank(text) ? {} : parseJson(text);
}

/** Why a call may not run. */
function callFindings(config, index, tools, call) {
  const { tool, why } = offeredTool(tools, call);
  if (!tool) return [finding('high', why, index, 0, 0)];
  const schema = schemaOf(config, tool);
  const toolLevel = toolFindings(config, index, tool, schema);
  if (toolLevel.length) return toolLevel;
  const argumentsValue = parseArguments(call.arguments);
  const span = p.utf8Length(call.arguments);
  if (argumentsValue === undefined) {
    return [finding('high', 'call arguments are not valid JSON', index, 0, span)];
  }
  const problems = new args.Problems(MAX_FINDINGS);
  if (schema !== undefined) {
    for (const e of validate(schema, argumentsValue, new Patterns(schema))) {
      problems.push(`arguments do not match the input schema: ${e}`);
    }
  }
  if (config.argumentChecks) args.check(argumentsValue, config, problems);
  return problems.list.map((problem) => finding('high', problem, index, 0, span));
}
