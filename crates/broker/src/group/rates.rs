//! Recent consumption rates, from the commits the coordinator sees: for
//! each partition of a group, the last commits (when, which offset, which
//! member). The rate over the last minute is how fast the group moves
//! through that partition, and with the lag it tells how long the backlog
//! will take to drain. Kept in memory only: after a restart rates start
//! afresh.

use std::collections::VecDeque;

/// Commits older than this are forgotten.
const MAX_AGE_MS: i64 = 10 * 60_000;
/// Commits kept per partition; frequent committers keep the most recent.
const MAX_SAMPLES: usize = 64;
/// Rates are measured over this much of the recent past.
pub const WINDOW_MS: i64 = 60_000;

#[derive(Debug, Clone)]
struct Sample {
    at_ms: i64,
    offset: i64,
    member: String,
}

#[derive(Debug, Clone, Default)]
pub struct CommitHistory {
    samples: VecDeque<Sample>,
}

/// A partition's recent consumption.
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    /// Records per second over `window_ms`.
    pub per_second: f64,
    pub window_ms: i64,
    /// Who committed last.
    pub member: String,
}

impl CommitHistory {
    pub fn record(&mut self, at_ms: i64, offset: i64, member: &str) {
        // A commit that goes back (an offset reset) starts a new history.
        if self.samples.back().is_some_and(|s| s.offset > offset) {
            self.samples.clear();
        }
        self.samples.push_back(Sample {
            at_ms,
            offset,
            member: member.to_string(),
        });
        while self.samples.len() > MAX_SAMPLES
            || self
                .samples
                .front()
                .is_some_and(|s| at_ms - s.at_ms > MAX_AGE_MS)
        {
            self.samples.pop_front();
        }
    }

    /// The rate over the window ending now: from the last commit before
    /// the window (or the first within it) to the latest commit, divided
    /// by the time up to now, so that a consumer that stopped committing
    /// shows its rate falling.
    pub fn rate(&self, now_ms: i64) -> Option<Rate> {
        let last = self.samples.back()?;
        let window_start = now_ms - WINDOW_MS;
        let base = self
            .samples
            .iter()
            .rev()
            .find(|s| s.at_ms <= window_start)
            .or_else(|| self.samples.front())?;
        let elapsed = now_ms - base.at_ms;
        if elapsed <= 0 || std::ptr::eq(base, last) && elapsed < 1000 {
            return None;
        }
        Some(Rate {
            per_second: (last.offset - base.offset) as f64 * 1000.0 / elapsed as f64,
            window_ms: elapsed,
            member: last.member.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_the_window_and_falling_when_commits_stop() {
        let mut h = CommitHistory::default();
        assert_eq!(h.rate(0), None);
        for i in 0..=10 {
            h.record(i * 1000, i * 100, "m");
        }
        let rate = h.rate(10_000).expect("a rate");
        assert_eq!(rate.per_second, 100.0);
        assert_eq!(rate.member, "m");
        // Nothing committed for a while: the rate drops.
        let later = h.rate(20_000).expect("a rate");
        assert!(later.per_second < 100.0);
        // A reset starts over.
        h.record(21_000, 5, "m");
        assert_eq!(h.rate(21_500), None);
    }

    #[test]
    fn history_is_bounded() {
        let mut h = CommitHistory::default();
        for i in 0..1000 {
            h.record(i, i, "m");
        }
        assert_eq!(h.samples.len(), MAX_SAMPLES);
        h.record(MAX_AGE_MS * 2, 2000, "m");
        assert_eq!(h.samples.len(), 1);
    }
}
