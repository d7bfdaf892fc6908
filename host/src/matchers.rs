//! Host-provided regular expressions (`portcullis:policy/matchers`).
//!
//! A policy asks for a pattern list; the host compiles it once per policy version and
//! every later fresh instance gets the cached, compiled set for the price of a lookup.
//! Patterns are untrusted input to the host, so counts, lengths, compiled sizes and the
//! number of distinct sets per policy are capped. Scans run natively and are charged to
//! the calling policy's fuel.

use std::sync::{Arc, Mutex};

use regex::{Regex, RegexBuilder};
use rustc_hash::FxHashMap;

use crate::bindings::Match;

/// At most this many patterns per list.
pub const MAX_PATTERNS: usize = 64;
/// At most this many bytes per pattern.
pub const MAX_PATTERN_BYTES: usize = 4 << 10;
/// At most this many distinct pattern lists per policy version.
pub const MAX_SETS_PER_POLICY: usize = 16;
/// Compiled program size limit per pattern: the regex crate's default, so a pattern
/// behaves the same here as in the SDK's native emulation.
const REGEX_SIZE_LIMIT: usize = 10 << 20;
/// Lazy-DFA cache limit per pattern: the regex crate's default. Smaller caches make
/// large alternations thrash and fall back to much slower engines.
const REGEX_DFA_LIMIT: usize = 2 << 20;
/// Fuel charged per scanned byte per pattern (about what the same scan costs in wasm).
pub const FUEL_PER_BYTE_PER_PATTERN: u64 = 20;
/// Fuel charged per `find-all` call on top of the scan.
pub const FUEL_PER_CALL: u64 = 1_000;

/// A compiled pattern list.
#[derive(Debug)]
pub struct CompiledSet {
    regexes: Vec<Regex>,
}

impl CompiledSet {
    /// Every non-overlapping match of every pattern, by pattern then start.
    pub fn find_all(&self, text: &str) -> Vec<Match> {
        let mut out = Vec::new();
        for (pattern, re) in self.regexes.iter().enumerate() {
            for m in re.find_iter(text) {
                out.push(Match {
                    pattern: pattern as u32,
                    start: m.start() as u32,
                    end: m.end() as u32,
                });
            }
        }
        out
    }

    /// Fuel a scan of `text_len` bytes costs.
    pub fn scan_cost(&self, text_len: usize) -> u64 {
        FUEL_PER_CALL + FUEL_PER_BYTE_PER_PATTERN * text_len as u64 * self.regexes.len() as u64
    }
}

/// The guest's handle to a compiled set (the `matcher` resource's representation).
#[derive(Debug, Clone)]
pub struct MatcherHandle(pub Arc<CompiledSet>);

/// The compiled pattern lists of one policy version.
#[derive(Debug, Default)]
pub struct MatcherCache {
    // Every fresh instance looks its lists up again, hashing all pattern bytes: a fast
    // non-cryptographic hash (the keys come from the policy, which is sandboxed and
    // capped at MAX_SETS_PER_POLICY entries, so collision flooding cannot grow it).
    sets: Mutex<FxHashMap<Vec<String>, Arc<CompiledSet>>>,
}

impl MatcherCache {
    /// The compiled set for `patterns`, compiling it on first use. Errors name the
    /// offending pattern or limit; they are returned to the guest, not raised.
    pub fn get_or_compile(&self, patterns: &[String]) -> Result<Arc<CompiledSet>, String> {
        let mut sets = self
            .sets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(set) = sets.get(patterns) {
            return Ok(set.clone());
        }
        if sets.len() >= MAX_SETS_PER_POLICY {
            return Err(format!(
                "a policy may compile at most {MAX_SETS_PER_POLICY} distinct pattern lists"
            ));
        }
        let set = Arc::new(compile(patterns)?);
        sets.insert(patterns.to_vec(), set.clone());
        Ok(set)
    }
}

fn compile(patterns: &[String]) -> Result<CompiledSet, String> {
    if patterns.len() > MAX_PATTERNS {
        return Err(format!(
            "{} patterns given, at most {MAX_PATTERNS} allowed",
            patterns.len()
        ));
    }
    let regexes = patterns
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if p.len() > MAX_PATTERN_BYTES {
                return Err(format!(
                    "pattern {i} is {} bytes, at most {MAX_PATTERN_BYTES} allowed",
                    p.len()
                ));
            }
            RegexBuilder::new(p)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_DFA_LIMIT)
                .build()
                .map_err(|e| format!("pattern {i} rejected: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CompiledSet { regexes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_by_pattern_list_and_matches_in_order() {
        let cache = MatcherCache::default();
        let pats = vec!["b+".to_string(), "a".to_string()];
        let a = cache.get_or_compile(&pats).unwrap();
        let b = cache.get_or_compile(&pats).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let hits: Vec<_> = a
            .find_all("abba a")
            .iter()
            .map(|m| (m.pattern, m.start, m.end))
            .collect();
        assert_eq!(hits, vec![(0, 1, 3), (1, 0, 1), (1, 3, 4), (1, 5, 6)]);
    }

    #[test]
    fn limits_are_enforced_with_clear_errors() {
        let cache = MatcherCache::default();
        let too_many: Vec<String> = (0..=MAX_PATTERNS).map(|i| format!("x{i}")).collect();
        assert!(
            cache
                .get_or_compile(&too_many)
                .unwrap_err()
                .contains("at most 64")
        );
        let long = vec!["a".repeat(MAX_PATTERN_BYTES + 1)];
        assert!(
            cache
                .get_or_compile(&long)
                .unwrap_err()
                .contains("pattern 0 is")
        );
        let bomb = vec!["(a{1000}){1000}".to_string()];
        assert!(
            cache
                .get_or_compile(&bomb)
                .unwrap_err()
                .contains("pattern 0 rejected")
        );
        for i in 0..MAX_SETS_PER_POLICY {
            cache.get_or_compile(&[format!("n{i}")]).unwrap();
        }
        assert!(
            cache
                .get_or_compile(&["late".to_string()])
                .unwrap_err()
                .contains("distinct")
        );
    }
}
