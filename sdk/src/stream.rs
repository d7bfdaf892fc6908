//! Streaming filtering with a hold-back window.

use crate::{
    Finding, Released, RequestContext, ResponseStream, ScanReport, Scanner, Span, StreamVerdict,
};

/// The largest index `<= at` that is a char boundary of `text`.
pub fn char_floor(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// A [`ResponseStream`] built from a [`Scanner`]: every chunk is appended to a buffer,
/// the buffer is scanned, and everything except the last [`Scanner::window`] bytes is
/// released (redacted as the scanner asks). A match that could still grow into the
/// held-back tail is never cut in half: the release point moves before it. Finding
/// spans are offsets into the whole stream as received.
pub struct HoldBack<S: Scanner> {
    scanner: S,
    /// Received but not yet released text.
    pending: String,
    /// Bytes of the stream released so far (offset of `pending` in the stream).
    released: usize,
}

impl<S: Scanner> HoldBack<S> {
    /// Wrap a scanner.
    pub fn with_scanner(scanner: S) -> Self {
        HoldBack {
            scanner,
            pending: String::new(),
            released: 0,
        }
    }

    fn release(&mut self, all: bool) -> StreamVerdict {
        let report = self.scanner.scan(&self.pending);
        if report.deny {
            return StreamVerdict::Deny(self.shift(report.findings));
        }
        let cut = if all {
            self.pending.len()
        } else {
            self.safe_cut(&report)
        };
        let mut text = String::with_capacity(cut);
        let mut copied = 0;
        let mut redactions: Vec<_> = report.redactions.iter().filter(|r| r.0 < cut).collect();
        redactions.sort_by_key(|r| r.0);
        for (start, end, replacement) in redactions {
            if *start < copied {
                continue; // overlapping redaction: the earlier one already covers it
            }
            text.push_str(&self.pending[copied..*start]);
            text.push_str(replacement);
            copied = *end;
        }
        text.push_str(&self.pending[copied.min(cut)..cut]);
        let findings = report
            .findings
            .into_iter()
            .filter(|f| f.span.as_ref().is_none_or(|s| (s.start as usize) < cut))
            .collect();
        let findings = self.shift(findings);
        self.pending.drain(..cut);
        self.released += cut;
        StreamVerdict::Emit(Released { text, findings })
    }

    /// How much of `pending` can be released now: all but the window, moved back so
    /// no redaction straddles the cut.
    fn safe_cut(&self, report: &ScanReport) -> usize {
        let window = self.scanner.window();
        let mut cut = char_floor(&self.pending, self.pending.len().saturating_sub(window));
        loop {
            let straddling = report
                .redactions
                .iter()
                .filter(|r| r.0 < cut && r.1 > cut)
                .map(|r| r.0)
                .min();
            match straddling {
                Some(start) => cut = start,
                None => return cut,
            }
        }
    }

    /// Make finding spans absolute stream offsets.
    fn shift(&self, findings: Vec<Finding>) -> Vec<Finding> {
        let offset = self.released as u32;
        findings
            .into_iter()
            .map(|mut f| {
                if let Some(span) = f.span.as_mut() {
                    *span = Span {
                        index: 0,
                        start: span.start + offset,
                        end: span.end + offset,
                    };
                }
                f
            })
            .collect()
    }
}

impl<S: Scanner> ResponseStream for HoldBack<S> {
    fn new(context: RequestContext) -> Self {
        match S::new(&context) {
            Ok(scanner) => HoldBack::with_scanner(scanner),
            Err(e) => crate::fail(e),
        }
    }

    fn push(&mut self, chunk: &str) -> StreamVerdict {
        self.pending.push_str(chunk);
        self.release(false)
    }

    fn finish(&mut self) -> StreamVerdict {
        self.release(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Category, Severity};

    /// Redacts every "SECRET" as "[S]"; denies on "STOP".
    struct Toy;
    impl Scanner for Toy {
        fn new(_: &RequestContext) -> Result<Self, String> {
            Ok(Toy)
        }
        fn window(&self) -> usize {
            6
        }
        fn scan(&mut self, text: &str) -> ScanReport {
            let mut report = ScanReport::default();
            for (i, m) in text.match_indices("SECRET") {
                report.redactions.push((i, i + m.len(), "[S]".into()));
                report
                    .findings
                    .push(Finding::new(Category::Secret, Severity::High, "toy").at(
                        0,
                        i,
                        i + m.len(),
                    ));
            }
            report.deny = text.contains("STOP");
            report
        }
    }

    fn emitted(v: StreamVerdict) -> (String, Vec<Finding>) {
        match v {
            StreamVerdict::Emit(r) => (r.text, r.findings),
            StreamVerdict::Deny(_) => panic!("unexpected deny"),
        }
    }

    #[test]
    fn secret_split_across_chunks_is_redacted_and_nothing_is_lost() {
        let mut s = HoldBack::<Toy>::new(RequestContext::for_test());
        let chunks = ["hello SE", "CR", "ET world, and SECR", "ET again é", "nd"];
        let mut out = String::new();
        let mut spans = Vec::new();
        for c in chunks {
            let (t, f) = emitted(s.push(c));
            out.push_str(&t);
            spans.extend(
                f.into_iter()
                    .filter_map(|f| f.span)
                    .map(|s| (s.start, s.end)),
            );
        }
        let (t, f) = emitted(s.finish());
        out.push_str(&t);
        spans.extend(
            f.into_iter()
                .filter_map(|f| f.span)
                .map(|s| (s.start, s.end)),
        );
        assert_eq!(out, "hello [S] world, and [S] again énd");
        let input: String = chunks.concat();
        assert_eq!(spans, vec![(6, 12), (24, 30)]);
        assert_eq!(&input[6..12], "SECRET");
        assert_eq!(&input[24..30], "SECRET");
    }

    #[test]
    fn text_is_released_before_the_stream_ends() {
        let mut s = HoldBack::<Toy>::new(RequestContext::for_test());
        let (t, _) = emitted(s.push("a long harmless sentence"));
        assert_eq!(t, "a long harmless se");
    }

    #[test]
    fn deny_stops_the_stream() {
        let mut s = HoldBack::<Toy>::new(RequestContext::for_test());
        emitted(s.push("fine text "));
        assert!(matches!(s.push("ST"), StreamVerdict::Emit(_)));
        assert!(matches!(s.push("OP"), StreamVerdict::Deny(_)));
    }
}
