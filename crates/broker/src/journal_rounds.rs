//! Group commit through the shared journal (`fsync = "always"` with
//! `fsync_scope = "journal"`, the default).
//!
//! A produce waits until the journal is durable past its batch. Rounds
//! run back to back while anything appended is not yet durable: a round
//! writes everything appended so far to the journal and fdatasyncs it, so
//! one sync covers every batch appended before it, whichever partition
//! and connection it came from, at the cost of one file's sync. The
//! journal is emptied by checkpoints (`checkpoint.rs`), woken from here
//! when it has grown by `journal_checkpoint_bytes`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use sluice_storage::journal::Journal;
use tokio::sync::Notify;
use tracing::{debug, error};

use crate::error::{BrokerError, Result};
use crate::partition::PartitionRef;
use crate::rounds::{Round, Rounds};

pub struct JournalRounds {
    pub journal: Arc<Journal>,
    rounds: Rounds<JournalRound>,
}

/// One round: write and fdatasync everything appended so far.
struct JournalRound {
    journal: Arc<Journal>,
    checkpoint_bytes: u64,
    /// Wakes the checkpoints when the journal has grown.
    checkpoint_due: Arc<Notify>,
    /// The journal's end when a checkpoint was last asked for.
    asked_at: AtomicU64,
}

impl JournalRounds {
    pub fn new(
        journal: Arc<Journal>,
        checkpoint_bytes: u64,
        checkpoint_due: Arc<Notify>,
    ) -> JournalRounds {
        let round = JournalRound {
            journal: Arc::clone(&journal),
            checkpoint_bytes,
            checkpoint_due,
            asked_at: AtomicU64::new(0),
        };
        JournalRounds {
            journal,
            rounds: Rounds::new("journal rounds", round),
        }
    }

    /// Waits until offsets below `up_to` of `partition` are durable.
    pub async fn make_durable(&self, partition: &PartitionRef, up_to: i64) -> Result<()> {
        if partition.durable_offset() >= up_to {
            return Ok(());
        }
        let Some(position) = partition.journal_position(up_to) else {
            // Not in the journal (written before it was attached): the
            // segment itself is synced.
            return partition.make_durable(up_to).await;
        };
        let journal = &self.journal;
        self.rounds
            .wait_until(|| {
                if journal.durable_position() >= position {
                    return Ok(true);
                }
                match journal.failure() {
                    Some(why) => Err(BrokerError::Storage(why)),
                    None => Ok(false),
                }
            })
            .await?;
        partition.mark_synced(up_to);
        Ok(())
    }
}

impl Round for JournalRound {
    fn run_round(&self) -> bool {
        let journal = &self.journal;
        if journal.durable_position() >= journal.appended_end() || journal.is_failed() {
            return false;
        }
        let started = Instant::now();
        if let Err(e) = journal.flush() {
            error!("{e}; every partition stops accepting writes until restart");
        }
        debug!(
            micros = started.elapsed().as_micros() as u64,
            "journal round"
        );
        let end = journal.appended_end();
        let asked_at = self.asked_at.load(Ordering::Relaxed);
        if asks_for_checkpoint(
            end,
            journal.checkpointed_position(),
            asked_at,
            self.checkpoint_bytes,
        ) {
            self.asked_at.store(end, Ordering::Relaxed);
            self.checkpoint_due.notify_one();
        }
        true
    }

    fn abandon(&self, why: &str) {
        self.journal.fail(why);
    }
}

/// Whether the journal, now ending at `end`, asks for a checkpoint: it
/// has grown by `bytes` since the last checkpoint and since it last asked.
/// The second condition matters while a checkpoint runs: the checkpointed
/// position moves only when it ends, and asking again in the meantime
/// would queue a second checkpoint right behind it for a fraction of the
/// bytes.
fn asks_for_checkpoint(end: u64, checkpointed: u64, asked_at: u64, bytes: u64) -> bool {
    end.saturating_sub(checkpointed) >= bytes && end.saturating_sub(asked_at) >= bytes
}

#[cfg(test)]
mod tests {
    use super::asks_for_checkpoint;

    #[test]
    fn a_checkpoint_is_asked_for_once_per_growth_even_while_one_runs() {
        const MIB: u64 = 1 << 20;
        // Rounds of 1 MiB; a checkpoint asked for at the end of a round
        // completes three rounds later, at the position it was asked at.
        let (mut checkpointed, mut asked_at) = (0, 0);
        let mut asked = Vec::new();
        let mut running: Option<(u64, u64)> = None;
        for round in 1..=100u64 {
            let end = round * MIB;
            if let Some((done_at, position)) = running {
                if round == done_at {
                    checkpointed = position;
                    running = None;
                }
            }
            if asks_for_checkpoint(end, checkpointed, asked_at, 16 * MIB) {
                asked_at = end;
                asked.push(round);
                running.get_or_insert((round + 3, end));
            }
        }
        assert_eq!(asked, vec![16, 32, 48, 64, 80, 96]);
    }

    #[test]
    fn a_checkpoint_taken_early_delays_the_next_request() {
        const MIB: u64 = 1 << 20;
        // A periodic checkpoint at 10 MiB: the next request comes 16 MiB
        // after it, not 16 MiB after the start.
        assert!(!asks_for_checkpoint(16 * MIB, 10 * MIB, 0, 16 * MIB));
        assert!(asks_for_checkpoint(26 * MIB, 10 * MIB, 0, 16 * MIB));
    }
}
