//! Host-compiled regular expressions.

/// One match of one pattern: UTF-8 byte offsets into the scanned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// Index of the pattern in the list given to [`Matcher::new`].
    pub pattern: usize,
    /// First byte (inclusive).
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
}

/// A list of regular expressions (Rust `regex` syntax) compiled once per policy version
/// by the host and shared by every fresh instance: creating one costs a cache lookup,
/// not a compilation. Prefer ASCII classes and `(?-u:\b)` word boundaries: Unicode
/// `\b` makes every scan of non-ASCII text several times slower.
pub struct Matcher {
    #[cfg(target_arch = "wasm32")]
    inner: crate::bindings::imports::portcullis::policy::matchers::Matcher,
    #[cfg(not(target_arch = "wasm32"))]
    inner: std::sync::Arc<Vec<regex::Regex>>,
}

/// Natively, compiled lists are cached process-wide, as the host caches them per policy.
#[cfg(not(target_arch = "wasm32"))]
fn native_compile(patterns: Vec<String>) -> Result<std::sync::Arc<Vec<regex::Regex>>, String> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    type Cache = Mutex<HashMap<Vec<String>, Arc<Vec<regex::Regex>>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(hit) = cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&patterns)
    {
        return Ok(hit.clone());
    }
    let compiled = patterns
        .iter()
        .enumerate()
        .map(|(i, p)| regex::Regex::new(p).map_err(|e| format!("pattern {i}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let compiled = Arc::new(compiled);
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(patterns, compiled.clone());
    Ok(compiled)
}

impl Matcher {
    /// Compile (or fetch from the host's cache) `patterns`. The error names the pattern
    /// the host rejected (syntax, size or count limits).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, String> {
        let patterns: Vec<String> = patterns.iter().map(|p| p.as_ref().to_string()).collect();
        #[cfg(target_arch = "wasm32")]
        {
            use crate::bindings::imports::portcullis::policy::matchers::Matcher as HostMatcher;
            HostMatcher::compile(&patterns).map(|inner| Matcher { inner })
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            native_compile(patterns).map(|inner| Matcher { inner })
        }
    }

    /// Every non-overlapping match of every pattern (leftmost-first per pattern),
    /// ordered by pattern index, then by start.
    pub fn find_all(&self, text: &str) -> Vec<Match> {
        #[cfg(target_arch = "wasm32")]
        {
            self.inner
                .find_all(text)
                .into_iter()
                .map(|m| Match {
                    pattern: m.pattern as usize,
                    start: m.start as usize,
                    end: m.end as usize,
                })
                .collect()
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.inner
                .iter()
                .enumerate()
                .flat_map(|(pattern, re)| {
                    re.find_iter(text).map(move |m| Match {
                        pattern,
                        start: m.start(),
                        end: m.end(),
                    })
                })
                .collect()
        }
    }
}
