//! A partition this broker leads: its log behind a lock, the high watermark
//! readers may see up to, and group commit of fsyncs.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use sluice_storage::producers::AbortedTxn;
use sluice_storage::{AppendInfo, DiskRef, FileRegion, PartitionLog, ProducedBatch};
use tracing::error;

use crate::error::{BrokerError, Result};
use crate::topic_config::TopicSettings;

pub struct Partition {
    pub topic: String,
    pub index: i32,
    leader_epoch: i32,
    log: Mutex<PartitionLog>,
    /// Offsets below this are complete (and durable, under fsync=always) and
    /// visible to consumers.
    high_watermark: AtomicI64,
    settings: RwLock<TopicSettings>,
    /// Held while an fsync is in flight, so that concurrent producers wait
    /// for one fsync instead of issuing one each.
    sync_lock: tokio::sync::Mutex<()>,
}

/// Directory of a partition's log: `<data_dir>/<topic>-<partition>`.
pub fn partition_dir(data_dir: &Path, topic: &str, index: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

impl Partition {
    pub fn open(
        disk: DiskRef,
        data_dir: &Path,
        topic: &str,
        index: i32,
        leader_epoch: i32,
        settings: TopicSettings,
        now_ms: i64,
    ) -> Result<Partition> {
        let dir = partition_dir(data_dir, topic, index);
        let (log, _report) = PartitionLog::open_on(disk, &dir, settings.log.clone(), now_ms)?;
        let end = log.log_end_offset();
        Ok(Partition {
            topic: topic.to_string(),
            index,
            leader_epoch,
            log: Mutex::new(log),
            high_watermark: AtomicI64::new(end),
            settings: RwLock::new(settings),
            sync_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The log, locked. A panic while holding the lock cannot leave a
    /// half-appended batch visible (the high watermark is separate), so a
    /// poisoned lock is taken over rather than propagated.
    pub fn log(&self) -> MutexGuard<'_, PartitionLog> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn settings(&self) -> TopicSettings {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn update_settings(&self, settings: TopicSettings) {
        self.log().set_config(settings.log.clone());
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = settings;
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    /// Validates and appends one producer batch. Not yet visible: see
    /// [`Partition::publish`]. The validation (CRC, inflating a compressed
    /// batch, walking its records) runs before the log's lock is taken.
    pub fn append(&self, batch: Vec<u8>, now_ms: i64) -> Result<AppendInfo> {
        let settings = self.settings();
        if batch.len() > settings.max_message_bytes {
            return Err(BrokerError::MessageTooLarge {
                size: batch.len(),
                max: settings.max_message_bytes,
            });
        }
        let mut batch = ProducedBatch::new(batch, settings.max_uncompressed_batch_bytes)
            .map_err(|e| BrokerError::from(sluice_storage::StorageError::InvalidBatch(e)))?;
        let append_time = settings.log_append_time.then_some(now_ms);
        let epoch = self.leader_epoch;
        let mut log = self.log();
        if !log.roll_due(batch.len(), batch.header()) {
            return Ok(log.append(&mut batch, epoch, append_time, now_ms)?);
        }
        drop(log);
        // Rolling fsyncs the sealed segment and creates files: do it where
        // blocking is allowed.
        let info = crate::blocking::disk_work(|| {
            self.log().append(&mut batch, epoch, append_time, now_ms)
        })?;
        Ok(info)
    }

    /// Makes offsets below `up_to` durable. Concurrent callers share fsyncs:
    /// whoever holds the sync lock fsyncs everything appended so far, and
    /// the others usually find their data already covered.
    pub async fn make_durable(&self, up_to: i64) -> Result<()> {
        if self.durable_offset() >= up_to {
            return Ok(());
        }
        let _syncing = self.sync_lock.lock().await;
        let point = {
            let log = self.log();
            // The sync this one waited for may have covered it: a round
            // makes everything appended before it durable, so waiters
            // share it instead of each starting one of their own.
            if log.durable_offset() >= up_to {
                return Ok(());
            }
            if log.is_failed() {
                return Err(BrokerError::Storage(
                    "an earlier fsync failed; the partition refuses writes until restart".into(),
                ));
            }
            log.sync_point()
        };
        let Some(point) = point else {
            return Ok(());
        };
        if point.up_to < up_to {
            // Cannot happen: everything appended is below the sync point.
            error!(topic = %self.topic, partition = self.index, "sync point behind append");
        }
        let synced = tokio::task::spawn_blocking(move || point.sync().map(|()| point))
            .await
            .map_err(|e| format!("fsync task failed: {e}"))
            .and_then(|r| r.map_err(|e| format!("fsync failed: {e}")));
        match synced {
            Ok(point) => {
                self.log().mark_durable(point.up_to);
                Ok(())
            }
            Err(why) => {
                // After a failed fsync the kernel may have dropped the dirty
                // pages; nothing appended after them can be trusted, so the
                // partition refuses writes until a restart recovers it.
                error!(topic = %self.topic, partition = self.index, "{why}; partition stops accepting writes");
                self.log().mark_failed();
                Err(BrokerError::Storage(why))
            }
        }
    }

    /// Where everything appended so far ends, if it is not all durable yet:
    /// what a sync of the whole filesystem started now makes durable.
    pub fn unsynced_end(&self) -> Option<i64> {
        let log = self.log();
        let end = log.log_end_offset();
        (log.durable_offset() < end).then_some(end)
    }

    /// Records that offsets below `up_to` are durable.
    pub fn mark_synced(&self, up_to: i64) {
        self.log().mark_durable(up_to);
    }

    /// A sync that should have covered this partition failed: the kernel
    /// may have dropped its dirty pages, so it refuses writes until a
    /// restart recovers it (as after a failed fdatasync).
    pub fn mark_sync_failed(&self, why: &str) {
        error!(topic = %self.topic, partition = self.index, "{why}; partition stops accepting writes");
        self.log().mark_failed();
    }

    /// Offsets below this are durable.
    pub fn durable_offset(&self) -> i64 {
        self.log().durable_offset()
    }

    pub fn is_failed(&self) -> bool {
        self.log().is_failed()
    }

    /// Makes offsets below `up_to` visible to readers.
    pub fn publish(&self, up_to: i64) {
        self.high_watermark.fetch_max(up_to, Ordering::AcqRel);
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log().log_start_offset()
    }

    /// Where the whole batches from `offset` on lie, never past the high
    /// watermark; `None` when there is nothing to read.
    pub fn read(&self, offset: i64, max_bytes: usize, min_one: bool) -> Result<Option<FileRegion>> {
        self.read_up_to(offset, max_bytes, self.high_watermark(), min_one)
    }

    /// As [`Partition::read`], never past `upper` either (the last stable
    /// offset, for `read_committed` readers).
    pub fn read_up_to(
        &self,
        offset: i64,
        max_bytes: usize,
        upper: i64,
        min_one: bool,
    ) -> Result<Option<FileRegion>> {
        let upper = upper.min(self.high_watermark());
        Ok(self.log().read_region(offset, max_bytes, upper, min_one)?)
    }

    /// The last stable offset: below it every transaction is decided. The
    /// first offset of the oldest open transaction, or the high watermark.
    pub fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark();
        self.log()
            .producers()
            .first_unstable_offset()
            .map_or(hw, |first| first.min(hw))
    }

    /// The aborted transactions that may hold records in `[from, to)`, for
    /// `read_committed` readers to skip.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.log().producers().aborted_between(from, to)
    }

    /// fsyncs the active segment if it has unsynced data (interval policy,
    /// shutdown).
    pub async fn sync_now(&self) -> Result<()> {
        let end = self.log().log_end_offset();
        self.make_durable(end).await
    }
}

/// Shared handle.
pub type PartitionRef = Arc<Partition>;
