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
        let since = journal
            .appended_end()
            .saturating_sub(journal.checkpointed_position());
        if since >= self.checkpoint_bytes {
            self.checkpoint_due.notify_one();
        }
        true
    }

    fn abandon(&self, why: &str) {
        self.journal.fail(why);
    }
}
