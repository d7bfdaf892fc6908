//! A deliberately misbehaving guardrail for the host's tests. Its configuration
//! (`{"mode": "..."}`) picks the misbehaviour:
//!
//! * `allow` / `deny`: behave (a trivial policy, also used by benchmarks);
//! * `loop`: spin forever; `loop-on-traffic`: pass the host's warm-up evaluation, then spin;
//! * `memory`: allocate without bound; `stack`: recurse without bound;
//! * `trap`: hit `unreachable`; `panic`: panic with a message;
//! * `big`: return a 2 MiB finding message; `huge`: a 100 MB one;
//! * `log-spam`: log a million lines;
//! * `bad-span`: return a redaction outside the text; `probe`: try files, environment,
//!   clocks and the network, and report what was obtained; `matcher-bomb`: ask the host to
//!   compile an enormous regular expression.

use portcullis_sdk::{
    Category, ChatRequest, Edit, Finding, Guardrail, Level, Modification, Redaction, Severity,
    Span, Verdict, config, log,
};

#[derive(serde::Deserialize)]
struct Config {
    mode: String,
}

struct Hostile;

impl Guardrail for Hostile {
    fn check_request(request: ChatRequest) -> Verdict {
        let cfg: Config = match config() {
            Ok(c) => c,
            Err(e) => return Verdict::error(e),
        };
        match cfg.mode.as_str() {
            "allow" => Verdict::Allow(Vec::new()),
            "deny" => Verdict::Deny(vec![Finding::new(
                Category::Jailbreak,
                Severity::High,
                "always denies",
            )]),
            "loop" => loop {
                std::hint::black_box(&request);
            },
            "loop-on-traffic" if request.context.request_id != "warm-up" => loop {
                std::hint::black_box(&request);
            },
            "loop-on-traffic" => Verdict::Allow(Vec::new()),
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "stack" => Verdict::Allow(vec![Finding::new(
                Category::Custom(format!("{}", recurse(std::hint::black_box(1)))),
                Severity::Low,
                "unreachable",
            )]),
            "trap" => {
                #[cfg(target_arch = "wasm32")]
                core::arch::wasm32::unreachable();
                #[cfg(not(target_arch = "wasm32"))]
                unreachable!()
            }
            "panic" => panic!("hostile policy panics on purpose"),
            "big" => Verdict::Deny(vec![Finding::new(
                Category::Jailbreak,
                Severity::High,
                "x".repeat(2 << 20),
            )]),
            "huge" => Verdict::Deny(vec![Finding::new(
                Category::Jailbreak,
                Severity::High,
                "x".repeat(100 << 20),
            )]),
            "log-spam" => {
                for i in 0..1_000_000 {
                    log(Level::Info, &format!("spam line {i} {}", "y".repeat(100)));
                }
                Verdict::Allow(Vec::new())
            }
            "bad-span" => Verdict::Modify(Modification {
                edits: vec![Edit::Redact(Redaction {
                    span: Span {
                        index: 0,
                        start: 0,
                        end: u32::MAX,
                    },
                    replacement: "[X]".into(),
                })],
                findings: Vec::new(),
            }),
            "probe" => Verdict::Allow(probe_capabilities()),
            "matcher-bomb" => match portcullis_sdk::Matcher::new(&["(a{1000}){1000}"]) {
                Ok(_) => Verdict::Allow(Vec::new()),
                Err(e) => Verdict::error(e),
            },
            other => Verdict::error(format!("unknown mode {other:?}")),
        }
    }
}

/// Try what a sandbox escape would need and report what was obtained, one finding per
/// probe (`custom("<probe>:<result>")`).
fn probe_capabilities() -> Vec<Finding> {
    let note = |what: String| Finding::new(Category::Custom(what), Severity::Low, "probe");
    let fs = match std::fs::read("/etc/hostname") {
        Ok(bytes) => format!("fs:read {} bytes", bytes.len()),
        Err(_) => "fs:denied".to_string(),
    };
    let dir = match std::fs::read_dir(".") {
        Ok(entries) => format!("dir:listed {}", entries.count()),
        Err(_) => "dir:denied".to_string(),
    };
    let env = format!("env:{}", std::env::vars().count());
    let args = format!("args:{}", std::env::args().count());
    let clock = match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => format!("clock:{}", d.as_secs()),
        Err(_) => "clock:before-epoch".to_string(),
    };
    let net = match std::net::TcpStream::connect("127.0.0.1:9") {
        Ok(_) => "net:connected".to_string(),
        Err(_) => "net:denied".to_string(),
    };
    [fs, dir, env, args, clock, net]
        .into_iter()
        .map(note)
        .collect()
}

/// Recursion that keeps every frame on the wasm call stack (no shadow-stack buffers),
/// so it overflows the engine's stack limit rather than linear memory.
#[inline(never)]
fn recurse(n: u64) -> u64 {
    if n == u64::MAX {
        n
    } else {
        std::hint::black_box(recurse(std::hint::black_box(n + 1))) + 1
    }
}

portcullis_sdk::export_guardrail!(Hostile);
