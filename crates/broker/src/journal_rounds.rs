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

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use sluice_storage::journal::Journal;
use tokio::sync::{watch, Notify};
use tracing::{debug, error};

use crate::error::{BrokerError, Result};
use crate::partition::PartitionRef;

pub struct JournalRounds {
    pub journal: Arc<Journal>,
    /// A task is running rounds.
    running: Mutex<bool>,
    /// Rounds completed; waiters wake on each and check the position.
    completed: watch::Sender<u64>,
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
        JournalRounds {
            journal,
            running: Mutex::new(false),
            completed: watch::Sender::new(0),
            checkpoint_bytes,
            checkpoint_due,
        }
    }

    fn running(&self) -> MutexGuard<'_, bool> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until offsets below `up_to` of `partition` are durable.
    pub async fn make_durable(
        self: &Arc<Self>,
        partition: &PartitionRef,
        up_to: i64,
    ) -> Result<()> {
        if partition.durable_offset() >= up_to {
            return Ok(());
        }
        let Some(position) = partition.journal_position(up_to) else {
            // Not in the journal (written before it was attached): the
            // segment itself is synced.
            return partition.make_durable(up_to).await;
        };
        self.wait_for(position).await?;
        partition.mark_synced(up_to);
        Ok(())
    }

    async fn wait_for(self: &Arc<Self>, position: u64) -> Result<()> {
        let mut completed = self.completed.subscribe();
        loop {
            if self.journal.durable_position() >= position {
                return Ok(());
            }
            if let Some(why) = self.journal.failure() {
                return Err(BrokerError::Storage(why));
            }
            let start = !std::mem::replace(&mut *self.running(), true);
            if start {
                // Its own task, so that no waiter's cancellation (a client
                // gone) can stop a round others wait for.
                let rounds = Arc::clone(self);
                tokio::spawn(async move { rounds.run().await });
            }
            completed
                .changed()
                .await
                .map_err(|_| BrokerError::Storage("the journal rounds stopped".into()))?;
        }
    }

    /// Runs rounds until everything appended is durable.
    async fn run(self: Arc<Self>) {
        loop {
            {
                let mut running = self.running();
                let caught_up = self.journal.durable_position() >= self.journal.appended_end();
                if caught_up || self.journal.is_failed() {
                    *running = false;
                    break;
                }
            }
            let started = Instant::now();
            let journal = Arc::clone(&self.journal);
            let flushed = tokio::task::spawn_blocking(move || journal.flush()).await;
            debug!(
                micros = started.elapsed().as_micros() as u64,
                "journal round"
            );
            match flushed {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => error!("{e}; every partition stops accepting writes until restart"),
                Err(e) => {
                    let why = format!("journal round task failed: {e}");
                    error!("{why}");
                    self.journal.fail(&why);
                }
            }
            self.completed.send_modify(|n| *n += 1);
            let since = self
                .journal
                .appended_end()
                .saturating_sub(self.journal.checkpointed_position());
            if since >= self.checkpoint_bytes {
                self.checkpoint_due.notify_one();
            }
        }
        // Wake anyone who checked before the last round ended.
        self.completed.send_modify(|n| *n += 1);
    }
}
