// keyword-guard in JavaScript: the same policy as policies/keyword-guard (Rust),
// passing the same fixtures. See that crate's documentation for the configuration.

import * as p from '../../../sdk/js/portcullis.js';

const MAX_FINDINGS = 20;
const FIELDS = new Set(['keywords', 'patterns', 'category', 'severity', 'roles']);

export const requestChecker = {
  checkRequest(request) {
    const config = p.config();
    const unknown = Object.keys(config).filter((k) => !FIELDS.has(k)).sort();
    if (unknown.length) p.fail(`unknown configuration field(s): ${unknown.join(', ')}`);
    const keywords = (config.keywords ?? []).map(p.asciiLower);
    if (keywords.includes('')) p.fail(`keywords[${keywords.indexOf('')}] is empty`);
    const patterns = config.patterns ?? [];
    const matcher = patterns.length ? new p.Matcher(patterns) : undefined;
    const category = config.category ?? 'prompt-injection';
    const severity = config.severity ?? 'high';
    p.severity(severity); // a bad severity is an error even without a finding

    const findings = [];
    for (const [index, message] of p.scannedMessages(request, config.roles)) {
      const text = message.content;
      const lowered = p.asciiLower(text);
      keywords.forEach((keyword, k) => {
        for (let start = lowered.indexOf(keyword); start >= 0;
          start = lowered.indexOf(keyword, start + keyword.length)) {
          findings.push(p.finding(category, severity, `keyword ${k} matched`, text, index,
            start, start + keyword.length));
        }
      });
      for (const [pattern, start, end] of matcher?.findAll(text) ?? []) {
        findings.push(p.byteFinding(category, severity, `pattern ${pattern} matched`, index, start, end));
      }
    }
    return p.denyIfAny(findings.slice(0, MAX_FINDINGS));
  },
};
