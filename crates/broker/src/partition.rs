//! A partition this broker leads: its log behind a lock, the high watermark
//! readers may see up to, and group commit of fsyncs.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use sluice_storage::journal::Journal;
use sluice_storage::producers::AbortedTxn;
use sluice_storage::recovery_points::RecoveryPoint;
use sluice_storage::{AppendInfo, DiskRef, FileRegion, PartitionLog, ProducedBatch};
use tokio::sync::Notify;
use tracing::error;
use uuid::Uuid;

use crate::error::{BrokerError, Result};
use crate::fetch_watchers::FetchWatchers;
use crate::segment_writeback::SegmentWriteback;
use crate::topic_config::TopicSettings;

pub struct Partition {
    pub topic: String,
    topic_id: Uuid,
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
    /// The data directory's write-ahead journal (`fsync_scope =
    /// "journal"`): every batch appended is also copied there.
    journal: Option<Arc<Journal>>,
    /// For each append not yet known durable, oldest first: where it ends
    /// in the log and in the journal. A producer waits for the journal
    /// position of its own batch, not for the partition's latest.
    journal_marks: Mutex<VecDeque<(i64, u64)>>,
    /// Fetches waiting for this partition's high watermark to move.
    fetch_watchers: FetchWatchers,
    /// Starts the segment's writeback as it grows (`segment_writeback`).
    writeback: Option<Arc<SegmentWriteback>>,
}

/// Which partition: its topic's name and id, and its index.
#[derive(Clone, Copy)]
pub struct PartitionId<'a> {
    pub topic: &'a str,
    pub topic_id: Uuid,
    pub index: i32,
}

/// Where partitions keep their data: the disk seam, the data directory
/// and the journal, if the broker uses one.
#[derive(Clone)]
pub struct LogHome<'a> {
    pub disk: DiskRef,
    pub data_dir: &'a Path,
    pub journal: Option<Arc<Journal>>,
    /// Paced segment writeback, if the fsync policy syncs at all.
    pub writeback: Option<Arc<SegmentWriteback>>,
}

/// Directory of a partition's log: `<data_dir>/<topic>-<partition>`.
pub fn partition_dir(data_dir: &Path, topic: &str, index: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

impl Partition {
    pub fn open(
        home: &LogHome<'_>,
        id: PartitionId<'_>,
        leader_epoch: i32,
        settings: TopicSettings,
        now_ms: i64,
        point: Option<&RecoveryPoint>,
    ) -> Result<Partition> {
        let PartitionId {
            topic,
            topic_id,
            index,
        } = id;
        let dir = partition_dir(home.data_dir, topic, index);
        let (log, _report) =
            PartitionLog::open_from(home.disk.clone(), &dir, settings.log.clone(), now_ms, point)?;
        let end = log.log_end_offset();
        Ok(Partition {
            topic: topic.to_string(),
            topic_id,
            index,
            leader_epoch,
            log: Mutex::new(log),
            high_watermark: AtomicI64::new(end),
            settings: RwLock::new(settings),
            sync_lock: tokio::sync::Mutex::new(()),
            journal: home.journal.clone(),
            journal_marks: Mutex::new(VecDeque::new()),
            fetch_watchers: FetchWatchers::default(),
            writeback: home.writeback.clone(),
        })
    }

    /// What a checkpoint about to sync may vouch for (see
    /// `PartitionLog::recovery_point`).
    pub fn recovery_point(&self) -> Option<RecoveryPoint> {
        self.log().recovery_point()
    }

    pub fn topic_id(&self) -> Uuid {
        self.topic_id
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
    /// The bytes are stored as given (a produce request's own buffer is
    /// not copied).
    pub fn append(&self, batch: impl Into<bytes::Bytes>, now_ms: i64) -> Result<AppendInfo> {
        let batch = batch.into();
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
        let mut log = self.log();
        if !log.roll_due(batch.len(), batch.header()) {
            return self.append_locked(&mut log, &mut batch, append_time, now_ms);
        }
        drop(log);
        // Rolling fsyncs the sealed segment and creates files: do it where
        // blocking is allowed.
        crate::blocking::disk_work(|| {
            self.append_locked(&mut self.log(), &mut batch, append_time, now_ms)
        })
    }

    /// Appends to the log and, under the same lock (so that the journal
    /// holds each partition's batches in offset order), to the journal.
    fn append_locked(
        &self,
        log: &mut PartitionLog,
        batch: &mut ProducedBatch,
        append_time: Option<i64>,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        if let Some(why) = self.journal.as_ref().and_then(|j| j.failure()) {
            return Err(BrokerError::Storage(why));
        }
        let info = log.append(batch, self.leader_epoch, append_time, now_ms)?;
        if let Some(writeback) = &self.writeback {
            if let Some(range) = log.writeback_due(writeback.min_bytes) {
                writeback.submit(range);
            }
        }
        if let (Some(journal), false) = (&self.journal, info.duplicate) {
            match journal.append(self.topic_id.as_bytes(), self.index, batch.parts()) {
                Ok(end) => self.marks().push_back((info.last_offset + 1, end)),
                Err(e) => {
                    // In the segment but not the journal: nothing after it
                    // could be replayed in order, so stop here.
                    log.mark_failed();
                    return Err(e.into());
                }
            }
        }
        Ok(info)
    }

    fn marks(&self) -> MutexGuard<'_, VecDeque<(i64, u64)>> {
        self.journal_marks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The journal position that makes offsets below `up_to` durable, if
    /// they are in the journal and not yet known durable.
    pub fn journal_position(&self, up_to: i64) -> Option<u64> {
        self.marks()
            .iter()
            .find(|(end, _)| *end >= up_to)
            .map(|(_, position)| *position)
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
        let mut marks = self.marks();
        while marks.front().is_some_and(|(end, _)| *end <= up_to) {
            marks.pop_front();
        }
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

    /// Refuses writes until a restart: its log or the journal it writes
    /// through failed.
    pub fn is_failed(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| j.is_failed()) || self.log().is_failed()
    }

    /// Makes offsets below `up_to` visible to readers. Waiting fetches
    /// are woken separately (`wake_fetches`), once every partition of a
    /// request is published.
    pub fn publish(&self, up_to: i64) {
        self.high_watermark.fetch_max(up_to, Ordering::AcqRel);
    }

    /// Registers a fetch to be woken at the next `wake_fetches`.
    pub fn watch_for_fetch(&self, waiter: &Arc<Notify>) {
        self.fetch_watchers.watch(waiter);
    }

    /// Wakes the fetches waiting for this partition.
    pub fn wake_fetches(&self) {
        self.fetch_watchers.wake();
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
