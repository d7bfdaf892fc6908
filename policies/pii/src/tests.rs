//! Scanner-level tests: fixtures, streaming equivalence, speed.

use portcullis_sdk::fixture::apply_redactions;
use portcullis_sdk::native::NativePolicy;
use portcullis_sdk::{
    Edit, Finding, HoldBack, RequestContext, ResponseStream, StreamVerdict, Verdict, scan_response,
};

use super::*;

#[test]
fn fixtures_pass() {
    let failures = NativePolicy::scanner::<PiiScanner>()
        .run_fixtures(include_str!("../fixtures/cases.jsonl"), "{}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The response redacted in one piece, and its finding spans.
fn whole(text: &str) -> (String, Vec<(u32, u32)>) {
    match scan_response::<PiiScanner>(&RequestContext::for_test(), text) {
        Verdict::Modify(m) => {
            let redactions: Vec<(usize, usize, &str)> = m
                .edits
                .iter()
                .map(|e| match e {
                    Edit::Redact(r) => (
                        r.span.start as usize,
                        r.span.end as usize,
                        r.replacement.as_str(),
                    ),
                    Edit::Replace(_) => panic!("unexpected replace"),
                })
                .collect();
            (
                apply_redactions(text, &redactions).unwrap(),
                spans(&m.findings),
            )
        }
        Verdict::Allow(findings) => (text.to_string(), spans(&findings)),
        Verdict::Deny(_) => panic!("unexpected deny"),
    }
}

/// The response streamed through `HoldBack` in `chunks`: released text and finding spans.
fn streamed<'a>(chunks: impl IntoIterator<Item = &'a str>) -> (String, Vec<(u32, u32)>) {
    let mut stream = HoldBack::<PiiScanner>::new(RequestContext::for_test());
    let mut text = String::new();
    let mut found = Vec::new();
    let mut take = |verdict: StreamVerdict| match verdict {
        StreamVerdict::Emit(released) => {
            text.push_str(&released.text);
            found.extend(spans(&released.findings));
        }
        StreamVerdict::Deny(_) => panic!("unexpected deny"),
    };
    for chunk in chunks {
        take(stream.push(chunk));
    }
    take(stream.finish());
    found.sort_unstable();
    (text, found)
}

fn spans(findings: &[Finding]) -> Vec<(u32, u32)> {
    let mut spans: Vec<(u32, u32)> = findings
        .iter()
        .filter_map(|f| f.span.as_ref())
        .map(|s| (s.start, s.end))
        .collect();
    spans.sort_unstable();
    spans
}

/// Split `text` into chunks of `size` characters.
fn chunks(text: &str, size: usize) -> Vec<&str> {
    let mut bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).step_by(size).collect();
    bounds.push(text.len());
    bounds.windows(2).map(|w| &text[w[0]..w[1]]).collect()
}

#[test]
fn email_split_at_every_byte_boundary_is_redacted_like_the_whole_text() {
    let text = "Hi team, forward the report to jane.doe+reports@mail.example.com today. Thanks!";
    let (expected, expected_spans) = whole(text);
    assert_eq!(
        expected,
        "Hi team, forward the report to [EMAIL_1] today. Thanks!"
    );
    for at in 0..=text.len() {
        let (out, found) = streamed([&text[..at], &text[at..]]);
        assert_eq!(out, expected, "split at byte {at}");
        assert_eq!(found, expected_spans, "split at byte {at}");
    }
}

#[test]
fn every_split_of_a_mixed_text_matches_the_whole_text() {
    let text = "Mail a@x.example or b@y.example, call +44 20 7946 0958. Card 4111 1111 1111 1111, \
                IBAN DE89 3704 0044 0532 0130 00, host 2001:db8::ff00:42:8329. Again: a@x.example";
    let (expected, expected_spans) = whole(text);
    assert_eq!(
        expected,
        "Mail [EMAIL_1] or [EMAIL_2], call [PHONE_1]. Card [CARD_1], IBAN [IBAN_1], host [IP_1]. Again: [EMAIL_1]"
    );
    for at in 0..=text.len() {
        assert_eq!(
            streamed([&text[..at], &text[at..]]),
            (expected.clone(), expected_spans.clone()),
            "split at {at}"
        );
    }
}

/// A response much longer than the hold-back window, so text is released while values
/// and their context words are still arriving.
fn long_response() -> String {
    let filler = "The quick brown fox jumps over the lazy dog while the band plays on. ";
    [
        filler.repeat(4),
        "Contact jane@example.com, my SSN is 123456789 and the old one was 219-09-9999. ".into(),
        filler.repeat(3),
        "Your order number 4111111111111111 ships soon; pay with card 5555 5555 5555 4444. ".into(),
        filler.repeat(2),
        "Server 203.0.113.7 runs version 1.2.3.4 — café crème — ask jane@example.com or bob@example.org. ".into(),
        filler.repeat(5),
        "Tracking: 1Z999AA10123456784. Ring 415-555-2671 or text 2125551234 later. ".into(),
        filler.repeat(4),
        "Is 123456789 still the right number, and 078-05-1120 the wrong one?".into(),
    ]
    .concat()
}

#[test]
fn long_streams_in_any_chunk_size_match_the_whole_text() {
    let text = long_response();
    let (expected, expected_spans) = whole(&text);
    for value in [
        "jane@example.com",
        "123456789",
        "219-09-9999",
        "5555 5555 5555 4444",
        "203.0.113.7",
        "415-555-2671",
        "2125551234",
    ] {
        assert!(
            !expected.contains(value),
            "{value} not redacted in {expected}"
        );
    }
    for kept in ["4111111111111111", "1.2.3.4", "1Z999AA10123456784"] {
        assert!(expected.contains(kept), "{kept} redacted in {expected}");
    }
    assert!(
        expected.contains("ask [EMAIL_1] or [EMAIL_2]"),
        "{expected}"
    );
    for size in (1..=40).chain([97, 255, 256, 257, 1000]) {
        let (out, found) = streamed(chunks(&text, size));
        assert_eq!(out, expected, "chunks of {size}");
        assert_eq!(found, expected_spans, "chunks of {size}");
    }
}

#[test]
fn a_cue_released_before_its_value_still_counts() {
    // The cue and the bare SSN are 40 bytes apart; with one-byte chunks the cue is
    // released while the number is still held back.
    let text = format!(
        "{}my SSN, for the record, is this one: 078051120{}",
        "x ".repeat(150),
        " y".repeat(150)
    );
    let (expected, _) = whole(&text);
    assert!(expected.contains("is this one: [SSN_1] y"), "{expected}");
    assert_eq!(streamed(chunks(&text, 1)).0, expected);
}

#[test]
fn detect_mode_streams_report_the_same_findings() {
    portcullis_sdk::native::set_config(r#"{"action": "detect"}"#);
    let text = long_response();
    let (out, expected) = whole(&text);
    assert_eq!(out, text);
    assert!(expected.len() >= 9, "{expected:?}");
    for size in [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377] {
        assert_eq!(
            streamed(chunks(&text, size)),
            (text.clone(), expected.clone()),
            "chunks of {size}"
        );
    }
    portcullis_sdk::native::set_config("{}");
}

#[test]
fn deny_mode_stops_the_stream() {
    portcullis_sdk::native::set_config(r#"{"action": "deny"}"#);
    let mut stream = HoldBack::<PiiScanner>::new(RequestContext::for_test());
    let verdicts: Vec<StreamVerdict> = chunks("Your SSN 123-45-6789 is on file.", 4)
        .into_iter()
        .map(|c| stream.push(c))
        .collect();
    assert!(verdicts.iter().any(|v| matches!(v, StreamVerdict::Deny(_))));
    portcullis_sdk::native::set_config("{}");
}

#[test]
fn findings_carry_score_severity_and_no_value() {
    let text = "card 4111 1111 1111 1111";
    let Verdict::Modify(m) = scan_response::<PiiScanner>(&RequestContext::for_test(), text) else {
        panic!()
    };
    let [finding] = m.findings.as_slice() else {
        panic!("{:?}", m.findings)
    };
    assert_eq!(finding.severity, portcullis_sdk::Severity::High);
    assert_eq!(finding.score, Some(1.0));
    assert_eq!(finding.message, "payment card number (Visa)");
    assert!(!finding.message.contains("4111"));
}

#[test]
fn sixteen_kilobytes_scan_quickly() {
    let text = long_response().repeat(16 * 1024 / long_response().len() + 1);
    let mut scanner = PiiScanner::new(&RequestContext::for_test()).unwrap();
    let start = std::time::Instant::now();
    let report = scanner.scan(&text[..portcullis_sdk::char_floor(&text, 16 * 1024)]);
    let elapsed = start.elapsed();
    assert!(report.findings.len() > 50);
    // Generous bound for unoptimized test builds; release builds are far faster.
    assert!(elapsed.as_millis() < 200, "{elapsed:?}");
}
