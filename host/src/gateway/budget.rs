//! Token budgets per client, per minute and per UTC day.
//!
//! At admission a request reserves its prompt tokens (counted with the real tokenizer)
//! plus the completion tokens it may use (`max_tokens`, or the configured default);
//! the reservation is checked and recorded under one lock, so concurrent requests
//! cannot overspend. When the response is done the reservation is settled to what was
//! actually used (the upstream's `usage`, or the tokens counted in what was sent). A
//! request that is refused before reaching the model is refunded; one whose handling
//! is abandoned (client gone) keeps its whole reservation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::error::ApiError;
use super::settings::GatewaySection;

/// Budgets of every client with one.
pub struct Budgets {
    limits: HashMap<String, Limits>,
    ledger: Mutex<HashMap<String, Ledger>>,
}

#[derive(Clone, Copy)]
struct Limits {
    per_minute: Option<u64>,
    per_day: Option<u64>,
}

/// Tokens counted in the current minute and day.
#[derive(Default)]
struct Ledger {
    minute: u64,
    minute_used: u64,
    day: u64,
    day_used: u64,
}

/// Tokens held for one request until [`Reservation::settle`]; dropped unsettled, the
/// whole reservation stays spent.
pub struct Reservation {
    budgets: Arc<Budgets>,
    client: String,
    tokens: u64,
    minute: u64,
    day: u64,
    settled: bool,
}

impl Budgets {
    /// From the `[[gateway.clients]]` budgets.
    pub fn from_settings(gateway: &GatewaySection) -> Budgets {
        Budgets {
            limits: gateway
                .clients
                .iter()
                .filter(|c| c.tokens_per_minute.is_some() || c.tokens_per_day.is_some())
                .map(|c| {
                    (
                        c.id.clone(),
                        Limits {
                            per_minute: c.tokens_per_minute,
                            per_day: c.tokens_per_day,
                        },
                    )
                })
                .collect(),
            ledger: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `client` has a budget.
    pub fn applies_to(&self, client: &str) -> bool {
        self.limits.contains_key(client)
    }

    /// Reserve `tokens` for `client` at `now` (seconds since the Unix epoch). `None`:
    /// the client has no budget. Over budget: 429 with `Retry-After`.
    pub fn reserve(
        self: &Arc<Self>,
        client: &str,
        tokens: u64,
        now: u64,
    ) -> Result<Option<Reservation>, ApiError> {
        let Some(limits) = self.limits.get(client).copied() else {
            return Ok(None);
        };
        let (minute, day) = (now / 60, now / 86_400);
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        let entry = ledger.entry(client.to_string()).or_default();
        if entry.minute != minute {
            entry.minute = minute;
            entry.minute_used = 0;
        }
        if entry.day != day {
            entry.day = day;
            entry.day_used = 0;
        }
        for (limit, used, window, seconds) in [
            (
                limits.per_minute,
                entry.minute_used,
                "minute",
                60 - now % 60,
            ),
            (limits.per_day, entry.day_used, "day", 86_400 - now % 86_400),
        ] {
            let Some(limit) = limit else { continue };
            if tokens > limit {
                let mut e = ApiError::rate_limited(format!(
                    "this request needs {tokens} tokens (prompt + max_tokens), over the \
                     client's budget of {limit} per {window}: lower max_tokens or the prompt"
                ));
                e.retry_after = None;
                return Err(e);
            }
            if used + tokens > limit {
                let mut e = ApiError::rate_limited(format!(
                    "token budget exceeded: {used} of {limit} tokens per {window} used, this \
                     request needs {tokens}; retry in {seconds} s"
                ));
                e.retry_after = Some(seconds);
                return Err(e);
            }
        }
        entry.minute_used += tokens;
        entry.day_used += tokens;
        Ok(Some(Reservation {
            budgets: self.clone(),
            client: client.to_string(),
            tokens,
            minute,
            day,
            settled: false,
        }))
    }

    /// Tokens `client` has used in the current minute and day.
    pub fn used(&self, client: &str) -> (u64, u64) {
        let ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        ledger
            .get(client)
            .map_or((0, 0), |l| (l.minute_used, l.day_used))
    }
}

impl Reservation {
    /// Replace the reservation by what was actually used.
    pub fn settle(mut self, actual: u64) {
        self.settled = true;
        let mut ledger = self
            .budgets
            .ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = ledger.get_mut(&self.client) {
            // Only windows the reservation was counted in; a new window starts clean.
            if entry.minute == self.minute {
                entry.minute_used = (entry.minute_used + actual).saturating_sub(self.tokens);
            }
            if entry.day == self.day {
                entry.day_used = (entry.day_used + actual).saturating_sub(self.tokens);
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            tracing::debug!(client = %self.client, tokens = self.tokens, "reservation abandoned; it stays spent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::settings::ClientSection;

    fn budgets(per_minute: Option<u64>, per_day: Option<u64>) -> Arc<Budgets> {
        let mut g = GatewaySection::default();
        g.clients.push(ClientSection {
            id: "c".into(),
            key_sha256: Some("0".repeat(64)),
            key_env: None,
            tokens_per_minute: per_minute,
            tokens_per_day: per_day,
        });
        Arc::new(Budgets::from_settings(&g))
    }

    #[test]
    fn reserve_settle_and_windows() {
        let b = budgets(Some(100), Some(150));
        let t = 60 * 16_000 + 20; // 20 s into a minute
        assert!(
            b.reserve("other", 10_000, t).unwrap().is_none(),
            "no budget, no limit"
        );
        let r = b.reserve("c", 80, t).unwrap().unwrap();
        let e = b.reserve("c", 30, t).err().unwrap();
        assert_eq!((e.status.as_u16(), e.retry_after), (429, Some(40)));
        r.settle(20);
        assert_eq!(b.used("c"), (20, 20));
        let r = b.reserve("c", 80, t).unwrap().unwrap();
        drop(r); // abandoned: stays spent
        assert_eq!(b.used("c"), (100, 100));
        // The next minute starts clean; the day does not.
        let r = b.reserve("c", 50, t + 60).unwrap().unwrap();
        let e = b.reserve("c", 10, t + 60).err().unwrap();
        assert!(e.message.contains("per day"), "{}", e.message);
        r.settle(50);
        // Larger than the budget itself: 429 without Retry-After.
        let e = b.reserve("c", 101, t + 120).err().unwrap();
        assert_eq!(e.retry_after, None);
    }

    #[test]
    fn concurrent_reservations_never_overspend() {
        let b = budgets(Some(1000), None);
        let admitted: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let b = b.clone();
                    s.spawn(move || {
                        let mut n = 0;
                        for _ in 0..50 {
                            if let Ok(Some(r)) = b.reserve("c", 7, 60) {
                                std::mem::forget(r);
                                n += 1;
                            }
                        }
                        n
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(admitted, 1000 / 7);
        assert_eq!(b.used("c").0, 1000 / 7 * 7);
    }
}
