"""keyword-guard in Python: the same policy as policies/keyword-guard (Rust), passing
the same fixtures. See that crate's documentation for the configuration."""

import portcullis_policy as p
from wit_world import exports

MAX_FINDINGS = 20


class RequestChecker(exports.RequestChecker):
    def check_request(self, request):
        config = p.config()
        unknown = set(config) - {"keywords", "patterns", "category", "severity", "roles"}
        if unknown:
            p.fail(f"unknown configuration field(s): {', '.join(sorted(unknown))}")
        keywords = [p.ascii_lower(k) for k in config.get("keywords", [])]
        if "" in keywords:
            p.fail(f"keywords[{keywords.index('')}] is empty")
        patterns = config.get("patterns", [])
        matcher = p.Matcher(patterns) if patterns else None
        category = config.get("category", "prompt-injection")
        severity = config.get("severity", "high")
        p.severity(severity)  # a bad severity is an error even without a finding

        findings = []
        for index, message in p.scanned_messages(request, config.get("roles")):
            text = message.content
            lowered = p.ascii_lower(text)
            for k, keyword in enumerate(keywords):
                start = lowered.find(keyword)
                while start >= 0:
                    end = start + len(keyword)
                    findings.append(p.finding(category, severity, f"keyword {k} matched",
                                              text, index, start, end))
                    start = lowered.find(keyword, end)
            if matcher:
                for pattern, start, end in matcher.find_all(text):
                    findings.append(p.byte_finding(category, severity,
                                                   f"pattern {pattern} matched",
                                                   index, start, end))
        return p.deny_if_any(findings[:MAX_FINDINGS])
