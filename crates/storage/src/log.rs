//! The log of one partition: an ordered set of segments, the offsets that
//! bound it, appends, reads, rolling, retention and crash recovery.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{error, info, warn};

use crate::batch::{self, BatchHeader, BatchParts, ProducedBatch};
use crate::disk::{self, Disk, DiskRef, RealDisk};
use crate::error::StorageError;
use crate::producers::{self, ControlType, ProducerStates, SequenceCheck};
use crate::recovery_points::RecoveryPoint;
use crate::region::FileRegion;
use crate::segment::{Segment, TrustedPrefix, LOG_SUFFIX};

/// Per-partition settings (Kafka's topic configs of the same meaning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: a segment is rolled before it would exceed this size.
    pub segment_bytes: u64,
    /// `segment.ms`: a segment is rolled once its first batch is this old.
    pub segment_ms: i64,
    /// `retention.ms`: segments whose newest batch is older are deleted; -1 keeps forever.
    pub retention_ms: i64,
    /// `retention.bytes`: oldest segments are deleted while the partition is larger; -1 is no limit.
    pub retention_bytes: i64,
    /// `index.interval.bytes`: bytes of log between two offset-index entries.
    pub index_interval_bytes: u64,
    /// `producer.id.expiration.ms`: an idempotent producer that wrote
    /// nothing for this long is forgotten (a later retry from it is then
    /// accepted as new).
    pub producer_id_expiration_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            producer_id_expiration_ms: 24 * 60 * 60 * 1000,
        }
    }
}

/// What replaying one journal entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayOutcome {
    Appended,
    /// The segment already held it (written before the crash).
    AlreadyPresent,
    /// Appended, but the log ended before the batch began: offsets in
    /// between are missing (the segment lost more than the journal holds).
    AppendedAfterGap {
        log_end: i64,
    },
    /// The log ends inside the batch; it cannot be placed.
    Overlaps {
        log_end: i64,
    },
}

/// Where an appended batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The batch's max timestamp as stored (log-append time if stamped).
    pub max_timestamp: i64,
    /// The batch was a producer's retry of one already stored: nothing was
    /// written, and the offsets are the stored batch's.
    pub duplicate: bool,
}

/// What opening a log found and repaired.
#[derive(Debug, Default)]
pub struct RecoveryReport {
    pub segments: usize,
    pub truncated_bytes: u64,
    pub indexes_rebuilt: bool,
    /// Sealed segments whose indexes did not match their log and that were
    /// scanned, and possibly cut, to repair them. A sealed segment is never
    /// torn by a crash (it was fsynced before its successor was created),
    /// so each of these is damage worth an operator's attention.
    pub sealed_repairs: Vec<SealedRepair>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// Where validation of the active segment began: past the prefix the
    /// last checkpoint vouched for, or 0.
    pub validated_from: u64,
}

/// One repaired sealed segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRepair {
    pub base_offset: i64,
    pub truncated_bytes: u64,
    pub reason: Option<String>,
    /// Offsets lost between this segment's new end and the next segment:
    /// `[from, to)`, empty when none were.
    pub lost_offsets: (i64, i64),
}

/// A file to fsync and the offset that will be durable once it is.
#[derive(Debug)]
pub struct SyncPoint {
    file: Arc<File>,
    path: PathBuf,
    disk: DiskRef,
    pub up_to: i64,
}

impl SyncPoint {
    pub fn sync(&self) -> std::io::Result<()> {
        self.disk.sync_file(&self.file, &self.path)
    }

    /// Writes the file's dirty pages to the disk and waits, without
    /// making them durable (`Disk::write_out`): a sync of the filesystem
    /// after it does.
    pub fn write_out(&self) -> std::io::Result<()> {
        self.disk.write_out(&self.file)
    }
}

/// A range of a segment file whose writeback to the disk may start now:
/// the bytes reach the disk steadily, as they are appended, instead of all
/// at the next fsync. Makes nothing durable.
#[derive(Debug)]
pub struct WritebackRange {
    file: Arc<File>,
    disk: DiskRef,
    from: u64,
    len: u64,
}

impl WritebackRange {
    /// Where it starts in the file and how long it is.
    pub fn range(&self) -> (u64, u64) {
        (self.from, self.len)
    }

    /// Starts the writeback; does not wait for it.
    pub fn start(&self) -> std::io::Result<()> {
        self.disk.start_writeback(&self.file, self.from, self.len)
    }
}

/// The log of one partition. Not internally synchronized: the caller holds
/// it behind a lock, and may fsync through a [`SyncPoint`] without the lock.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    log_end_offset: i64,
    /// Offsets below this are known to be on stable storage.
    durable_offset: i64,
    /// Set when a failed write could not be undone, or an fsync failed; all
    /// later appends fail.
    failed: bool,
    disk: DiskRef,
    /// Set when the partition is deleted: appends, rolls and retention stop,
    /// so a handle still held elsewhere cannot touch a new topic's files.
    closed: bool,
    /// Idempotent producers' recent batches (`producers.rs`).
    producers: ProducerStates,
    /// A producer snapshot at this offset holds the state through the log
    /// end: no producer batch was stored since it was written.
    snapshot_through: Option<i64>,
}

impl PartitionLog {
    /// Opens the log in `dir`, creating it if absent. Sealed segments are
    /// trusted after a check of their indexes; the last segment, the only one
    /// that can be torn by a crash, is validated batch by batch and cut at
    /// the first bad byte.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<(PartitionLog, RecoveryReport), StorageError> {
        Self::open_on(RealDisk::shared(), dir, config, now_ms)
    }

    /// [`PartitionLog::open`] with every fsync and file creation or
    /// removal going through `disk` (a simulated one in tests).
    pub fn open_on(
        disk: DiskRef,
        dir: &Path,
        config: LogConfig,
        now_ms: i64,
    ) -> Result<(PartitionLog, RecoveryReport), StorageError> {
        Self::open_from(disk, dir, config, now_ms, None)
    }

    /// [`PartitionLog::open_on`], validating the active segment only past
    /// `point` (the last checkpoint's recovery point) when it still holds,
    /// and reading the producers' state from the snapshot it names.
    pub fn open_from(
        disk: DiskRef,
        dir: &Path,
        config: LogConfig,
        now_ms: i64,
        point: Option<&RecoveryPoint>,
    ) -> Result<(PartitionLog, RecoveryReport), StorageError> {
        disk::create_dir_durably(&*disk, dir)?;
        let bases = segment_bases(dir)?;
        let mut segments = BTreeMap::new();
        let mut report = RecoveryReport::default();
        let interval = config.index_interval_bytes;
        for (i, &base) in bases.iter().enumerate() {
            let segment = match bases.get(i + 1) {
                Some(&next) => {
                    let (segment, repair) =
                        Segment::open_sealed(disk.clone(), dir, base, next, interval)?;
                    if let Some(outcome) = repair {
                        let repair = SealedRepair {
                            base_offset: base,
                            truncated_bytes: outcome.truncated_bytes,
                            reason: outcome.stop_reason,
                            lost_offsets: (segment.next_offset(), next),
                        };
                        error!(
                            dir = %dir.display(),
                            segment = base,
                            truncated_bytes = repair.truncated_bytes,
                            reason = repair.reason.as_deref().unwrap_or("indexes disagreed with the log"),
                            lost_from = repair.lost_offsets.0,
                            lost_to = repair.lost_offsets.1,
                            "repaired a sealed segment: its indexes did not match its log{}",
                            if repair.lost_offsets.0 < repair.lost_offsets.1 {
                                "; the offsets in [lost_from, lost_to) are gone"
                            } else {
                                ""
                            }
                        );
                        report.truncated_bytes += repair.truncated_bytes;
                        report.indexes_rebuilt = true;
                        report.sealed_repairs.push(repair);
                    }
                    segment
                }
                None => {
                    let trusted = point
                        .filter(|p| p.segment_base == base)
                        .map(|p| TrustedPrefix {
                            position: p.position,
                            next_offset: p.next_offset,
                            max_timestamp: p.max_timestamp,
                            offset_entries: p.offset_entries as usize,
                            time_entries: p.time_entries as usize,
                        });
                    let (segment, outcome) =
                        Segment::open_and_recover(disk.clone(), dir, base, interval, trusted)?;
                    report.validated_from = outcome.validated_from;
                    if outcome.truncated_bytes > 0 {
                        warn!(
                            dir = %dir.display(),
                            segment = base,
                            bytes = outcome.truncated_bytes,
                            reason = outcome.stop_reason.as_deref().unwrap_or(""),
                            "truncated torn tail of the log"
                        );
                    }
                    report.truncated_bytes += outcome.truncated_bytes;
                    report.indexes_rebuilt |= outcome.indexes_rebuilt;
                    segment
                }
            };
            segments.insert(base, segment);
        }
        if segments.is_empty() {
            segments.insert(0, Segment::create(disk.clone(), dir, 0, now_ms)?);
        }
        // After a kill -9 the active segment's tail may exist only in the
        // page cache. Everything recovered is about to be published and
        // called durable, so it must first really be on disk.
        if let Some(active) = segments.values().next_back() {
            active.sync_all()?;
        }
        disk.sync_dir(dir)?;
        let log_end_offset = segments.values().next_back().map_or(0, |s| s.next_offset());
        report.segments = segments.len();
        report.log_end_offset = log_end_offset;
        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_end_offset,
            durable_offset: log_end_offset,
            failed: false,
            closed: false,
            disk,
            producers: ProducerStates::default(),
            snapshot_through: None,
        };
        if let Err(e) = log.rebuild_producers(now_ms, point) {
            // Without the producers' history a retry may be stored twice;
            // the data itself is fine, so the log still opens.
            warn!(dir = %dir.display(), error = %e, "cannot rebuild the idempotent producers' state");
        }
        report.log_start_offset = log.log_start_offset();
        if report.truncated_bytes > 0 || report.indexes_rebuilt {
            info!(dir = %dir.display(), ?report, "recovered partition log");
        }
        Ok((log, report))
    }

    /// Assigns a validated producer batch the next offsets,
    /// stamps the leader epoch (and log-append time if asked) and writes it.
    /// The batch is visible to readers only once the caller advances the
    /// high watermark past it.
    pub fn append(
        &mut self,
        produced: &mut ProducedBatch,
        leader_epoch: i32,
        log_append_time_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        if self.closed {
            return Err(StorageError::LogClosed);
        }
        if self.failed {
            return Err(StorageError::LogFailed);
        }
        let duplicate = match self.producers.check(produced.header())? {
            SequenceCheck::Append => None,
            SequenceCheck::Duplicate(stored) => Some(stored),
        };
        if let Some(stored) = duplicate {
            return Ok(AppendInfo {
                base_offset: stored.base_offset,
                last_offset: stored.last_offset,
                max_timestamp: stored.max_timestamp,
                duplicate: true,
            });
        }
        produced.stamp(self.log_end_offset, leader_epoch, log_append_time_ms);
        let parts = produced.parts();
        let header = BatchHeader::parse(parts.header)?;
        self.store(parts, &header, now_ms)?;
        Ok(AppendInfo {
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            max_timestamp: header.max_timestamp,
            duplicate: false,
        })
    }

    /// Puts back a batch the journal holds (stamped, already checked
    /// against its producer when first appended) that recovery did not
    /// find in the segment. A batch the log already holds is skipped.
    pub fn append_replayed(
        &mut self,
        bytes: &[u8],
        now_ms: i64,
    ) -> Result<ReplayOutcome, StorageError> {
        if self.closed {
            return Err(StorageError::LogClosed);
        }
        // Exactly one whole batch, CRC included.
        let header = batch::validate(bytes)?;
        if header.next_offset() <= self.log_end_offset {
            return Ok(ReplayOutcome::AlreadyPresent);
        }
        if header.base_offset < self.log_end_offset {
            return Ok(ReplayOutcome::Overlaps {
                log_end: self.log_end_offset,
            });
        }
        let gap_from = (header.base_offset > self.log_end_offset).then_some(self.log_end_offset);
        self.store(BatchParts::whole(bytes), &header, now_ms)?;
        Ok(match gap_from {
            Some(log_end) => ReplayOutcome::AppendedAfterGap { log_end },
            None => ReplayOutcome::Appended,
        })
    }

    /// Writes a stamped batch and records its producer.
    fn store(
        &mut self,
        batch: BatchParts<'_>,
        header: &BatchHeader,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        self.append_validated(batch, header, now_ms)?;
        if header.producer_id >= 0 {
            self.snapshot_through = None;
        }
        let control = header
            .is_control()
            .then(|| ControlType::of_records(batch.records, header))
            .flatten();
        self.producers.record(header, control, now_ms);
        Ok(())
    }

    fn append_validated(
        &mut self,
        batch: BatchParts<'_>,
        header: &BatchHeader,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        if self.should_roll(batch.len() as u64, header) {
            self.roll(now_ms)?;
        }
        let interval = self.config.index_interval_bytes;
        let active = self.active_mut();
        match active.append(batch, header, interval) {
            Ok(()) => {
                self.log_end_offset = header.next_offset();
                Ok(())
            }
            Err(e) => {
                // Segment::append cuts a partial write back; if even that
                // failed the file's tail is unknown, so stop accepting writes.
                if active.is_torn() {
                    self.failed = true;
                }
                Err(e.into())
            }
        }
    }

    fn should_roll(&self, incoming: u64, header: &BatchHeader) -> bool {
        let Some(active) = self.segments.values().next_back() else {
            return true;
        };
        if active.is_empty() {
            return false;
        }
        let too_big = active.size() + incoming > self.config.segment_bytes;
        // Like Kafka: the age is the incoming batch's timestamp minus the
        // first batch's, so old producer timestamps do not roll every batch.
        let too_old = active.rolling_timestamp() >= 0
            && header.max_timestamp - active.rolling_timestamp() >= self.config.segment_ms;
        let offsets_overflow = header.last_offset() - active.base_offset() >= i64::from(i32::MAX);
        too_big || too_old || offsets_overflow
    }

    /// Seals the active segment and starts a new one at the log end offset.
    /// Any failure here (an fsync of the sealed segment, creating the new
    /// one, syncing the directory) stops the log taking writes: after a
    /// failed fsync the kernel may have dropped the pages, and a later fsync
    /// of the same file can succeed without having written them.
    pub fn roll(&mut self, now_ms: i64) -> Result<(), StorageError> {
        if self.closed {
            return Err(StorageError::LogClosed);
        }
        if self.failed {
            return Err(StorageError::LogFailed);
        }
        let base = self.log_end_offset;
        if self.segments.contains_key(&base) {
            return Ok(());
        }
        let rolled = self.seal_and_create(base, now_ms);
        match rolled {
            Ok(segment) => {
                self.segments.insert(base, segment);
                self.durable_offset = self.durable_offset.max(base);
                // Everything below `base` is durable now: a snapshot at
                // `base` spares a restart from scanning it again.
                self.producers
                    .expire(now_ms, self.config.producer_id_expiration_ms);
                match producers::write_snapshot(&self.dir, &self.producers, base) {
                    Ok(()) => self.snapshot_through = Some(base),
                    Err(e) => {
                        warn!(dir = %self.dir.display(), error = %e, "cannot write a producer snapshot")
                    }
                }
                Ok(())
            }
            Err(e) => {
                error!(dir = %self.dir.display(), error = %e, "rolling a segment failed; the partition stops accepting writes until restart");
                self.failed = true;
                Err(e.into())
            }
        }
    }

    fn seal_and_create(&mut self, base: i64, now_ms: i64) -> std::io::Result<Segment> {
        if let Some(active) = self.segments.values_mut().next_back() {
            active.seal()?;
        }
        let segment = Segment::create(self.disk.clone(), &self.dir, base, now_ms)?;
        self.disk.sync_dir(&self.dir)?;
        Ok(segment)
    }

    /// Whether appending `incoming` bytes with this header would roll a
    /// segment first: rolling fsyncs and creates files, which a caller on
    /// an async worker may want to do where blocking is allowed.
    pub fn roll_due(&self, incoming: usize, header: &BatchHeader) -> bool {
        self.should_roll(incoming as u64, header)
    }

    /// Reads whole batches from `offset` on, up to `max_bytes` (but at least
    /// one batch if `min_one`), never at or past `max_offset`, into memory.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one: bool,
    ) -> Result<Vec<u8>, StorageError> {
        match self.read_region(offset, max_bytes, max_offset, min_one)? {
            Some(region) => Ok(region.to_vec()?),
            None => Ok(Vec::new()),
        }
    }

    /// Where in the segment files the batches that [`PartitionLog::read`]
    /// returns lie; `None` when there is nothing to return.
    pub fn read_region(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one: bool,
    ) -> Result<Option<FileRegion>, StorageError> {
        let start = self.log_start_offset();
        if offset < start || offset > self.log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: start,
                log_end: self.log_end_offset,
            });
        }
        // The segment holding `offset`, then later ones if it has a gap
        // there (a sealed segment cut short by recovery).
        let first_base = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(start, |(&b, _)| b);
        for segment in self.segments.range(first_base..).map(|(_, s)| s) {
            if segment.base_offset() >= max_offset {
                break;
            }
            let from = offset.max(segment.base_offset());
            if let Some(region) = segment.read(from, max_bytes, max_offset, min_one)? {
                return Ok((!region.is_empty()).then_some(region));
            }
        }
        Ok(None)
    }

    /// The first batch at or after the first record with a timestamp of at
    /// least `timestamp`, below `max_offset`.
    pub fn find_by_timestamp(
        &self,
        timestamp: i64,
        max_offset: i64,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        for segment in self.segments.values() {
            if let Some(bytes) = segment.find_by_timestamp(timestamp)? {
                let header = BatchHeader::parse(&bytes)?;
                if header.base_offset >= max_offset {
                    return Ok(None);
                }
                return Ok(Some(bytes));
            }
        }
        Ok(None)
    }

    /// The largest timestamp in the log, for ListOffsets' MAX_TIMESTAMP
    /// query (KIP-734); `find_by_timestamp` then finds its batch.
    pub fn max_timestamp(&self) -> Option<i64> {
        self.segments
            .values()
            .map(|s| s.max_timestamp())
            .max()
            .filter(|&t| t >= 0)
    }

    /// What to fsync to make everything appended so far durable, or `None`
    /// if it already is.
    /// What to fdatasync to make the active segment durable as it is now,
    /// whatever the log counts as durable (a checkpoint under the journal,
    /// where appends are durable in the journal, not the segment).
    pub fn segment_sync_point(&self) -> Option<SyncPoint> {
        self.segments.values().next_back().map(|s| SyncPoint {
            file: s.log_file(),
            path: s.log_path().to_path_buf(),
            disk: self.disk.clone(),
            up_to: self.log_end_offset,
        })
    }

    /// The active segment's bytes appended since the last call, once they
    /// are at least `min_bytes` (see [`WritebackRange`]).
    pub fn writeback_due(&mut self, min_bytes: u64) -> Option<WritebackRange> {
        let disk = self.disk.clone();
        let active = self.segments.values_mut().next_back()?;
        let (from, len) = active.take_writeback(min_bytes)?;
        Some(WritebackRange {
            file: active.log_file(),
            disk,
            from,
            len,
        })
    }

    pub fn sync_point(&self) -> Option<SyncPoint> {
        if self.durable_offset >= self.log_end_offset {
            return None;
        }
        self.segments.values().next_back().map(|s| SyncPoint {
            file: s.log_file(),
            path: s.log_path().to_path_buf(),
            disk: self.disk.clone(),
            up_to: self.log_end_offset,
        })
    }

    /// Records that a [`SyncPoint`] was fsynced.
    pub fn mark_durable(&mut self, up_to: i64) {
        self.durable_offset = self.durable_offset.max(up_to);
    }

    pub fn durable_offset(&self) -> i64 {
        self.durable_offset
    }

    /// fsyncs everything now, while holding the log (shutdown, tests).
    pub fn sync(&mut self) -> Result<(), StorageError> {
        if self.failed {
            return Err(StorageError::LogFailed);
        }
        if let Some(point) = self.sync_point() {
            if let Err(e) = point.sync() {
                self.failed = true;
                return Err(e.into());
            }
            self.mark_durable(point.up_to);
        }
        Ok(())
    }

    /// Deletes whole sealed segments that retention no longer covers.
    /// Returns how many were deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, StorageError> {
        if self.closed {
            return Ok(0);
        }
        let mut deleted = 0;
        let mut total: u64 = self.size_bytes();
        let retention_ms = self.config.retention_ms;
        let retention_bytes = self.config.retention_bytes;
        while self.segments.len() > 1 {
            let Some((&base, oldest)) = self.segments.iter().next() else {
                break;
            };
            let expired = retention_ms >= 0
                && oldest.max_timestamp() >= 0
                && now_ms - oldest.max_timestamp() > retention_ms;
            let oversized = retention_bytes >= 0 && total - oldest.size() >= retention_bytes as u64;
            if !expired && !oversized {
                break;
            }
            let Some(segment) = self.segments.remove(&base) else {
                break;
            };
            total -= segment.size();
            segment.delete()?;
            deleted += 1;
        }
        if deleted > 0 {
            // Not needed for safety (a deleted segment that comes back holds
            // valid, older data), but keeps the log start where it was set.
            self.disk.sync_dir(&self.dir)?;
        }
        self.producers.trim_aborted(self.log_start_offset());
        Ok(deleted)
    }

    /// Deletes every sealed segment that lies wholly below `offset` (the
    /// segment after it starts at or before `offset`), as a compacting
    /// owner does once everything live below `offset` was written again
    /// above it and made durable. Returns how many were deleted.
    pub fn delete_segments_before(&mut self, offset: i64) -> Result<usize, StorageError> {
        if self.closed {
            return Ok(0);
        }
        let mut deleted = 0;
        loop {
            let mut bases = self.segments.keys();
            let (Some(&first), Some(&next)) = (bases.next(), bases.next()) else {
                break;
            };
            if next > offset {
                break;
            }
            let Some(segment) = self.segments.remove(&first) else {
                break;
            };
            segment.delete()?;
            deleted += 1;
        }
        if deleted > 0 {
            self.disk.sync_dir(&self.dir)?;
            self.producers.trim_aborted(self.log_start_offset());
        }
        Ok(deleted)
    }

    /// Stops all writes for good: the partition is being deleted.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Refuses further appends after an fsync failed: the kernel may have
    /// dropped the unsynced pages, so what follows them cannot be trusted.
    pub fn mark_failed(&mut self) {
        self.failed = true;
    }

    pub fn is_failed(&self) -> bool {
        self.failed
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn log_start_offset(&self) -> i64 {
        self.segments.keys().next().copied().unwrap_or(0)
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size()).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes the whole log directory.
    pub fn delete(self) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        let disk = self.disk.clone();
        drop(self);
        fs::remove_dir_all(&dir)?;
        disk.removed(&dir);
        if let Some(parent) = dir.parent() {
            disk.sync_dir(parent)?;
        }
        Ok(())
    }

    /// The idempotent producers' state, as of the log end.
    pub fn producers(&self) -> &ProducerStates {
        &self.producers
    }

    /// Writes the producers' state at the log end, so that the next open
    /// reads it instead of scanning the log (a clean shutdown).
    pub fn snapshot_producers(&mut self) -> std::io::Result<()> {
        producers::write_snapshot(&self.dir, &self.producers, self.log_end_offset)?;
        self.snapshot_through = Some(self.log_end_offset);
        Ok(())
    }

    /// What a checkpoint about to sync the filesystem may vouch for: the
    /// active segment as it is now. Writes a producer snapshot first if
    /// producer batches were stored since the last one (unsynced: the
    /// checkpoint's sync covers it), so that a restart need not scan for
    /// them either.
    pub fn recovery_point(&mut self) -> Option<RecoveryPoint> {
        if self.closed || self.failed {
            return None;
        }
        if self.snapshot_through.is_none() {
            if let Err(e) = self.snapshot_producers() {
                warn!(dir = %self.dir.display(), error = %e, "cannot write a producer snapshot");
            }
        }
        let active = self.segments.values().next_back()?;
        if active.size() == 0 {
            return None;
        }
        // The entries the point counts must be in the files the
        // checkpoint's sync covers.
        if let Err(e) = active.flush_indexes() {
            warn!(dir = %self.dir.display(), error = %e, "cannot write index entries");
            return None;
        }
        Some(RecoveryPoint {
            segment_base: active.base_offset(),
            position: active.size(),
            next_offset: active.next_offset(),
            max_timestamp: active.max_timestamp(),
            offset_entries: u32::try_from(active.offset_entries()).ok()?,
            time_entries: u32::try_from(active.time_entries()).ok()?,
            producers_snapshot: self.snapshot_through,
        })
    }

    /// Forgets producers idle for longer than `producer_id_expiration_ms`.
    pub fn expire_producers(&mut self, now_ms: i64) -> usize {
        self.producers
            .expire(now_ms, self.config.producer_id_expiration_ms)
    }

    /// Rebuilds the producer table: the newest snapshot, then every batch
    /// after it (all of them when there is none).
    fn rebuild_producers(
        &mut self,
        now_ms: i64,
        point: Option<&RecoveryPoint>,
    ) -> Result<(), StorageError> {
        // A recovery point names a snapshot complete through its offset:
        // only the batches after that are scanned.
        // Only if the log still reaches that offset: a state ahead of the
        // log would answer a retry of a lost batch as a duplicate.
        let vouched = point.and_then(|p| {
            let snapshot = p.producers_snapshot?;
            if p.next_offset > self.log_end_offset || snapshot > p.next_offset {
                return None;
            }
            let (states, _) = producers::read_snapshot_at(&self.dir, snapshot)?;
            Some((states, p.next_offset))
        });
        let (mut states, from) = vouched
            .or_else(|| producers::read_latest_snapshot(&self.dir, self.log_end_offset))
            .unwrap_or_else(|| (ProducerStates::default(), self.log_start_offset()));
        let end = self.log_end_offset;
        let mut offset = from.max(self.log_start_offset());
        while offset < end {
            let bytes = self.read(offset, 1 << 20, end, true)?;
            if bytes.is_empty() {
                break;
            }
            let before = offset;
            let mut rest = &bytes[..];
            while let Ok(header) = BatchHeader::parse(rest) {
                let Some(next) = rest.get(header.total_size()..) else {
                    break;
                };
                let control = header
                    .is_control()
                    .then(|| ControlType::of_batch(rest, &header))
                    .flatten();
                // Found by the scan: active as of this open.
                states.record(&header, control, now_ms);
                offset = header.next_offset();
                rest = next;
            }
            if offset == before {
                break;
            }
        }
        states.expire(now_ms, self.config.producer_id_expiration_ms);
        self.producers = states;
        Ok(())
    }

    fn active_mut(&mut self) -> &mut Segment {
        // `open` and `roll` guarantee at least one segment.
        self.segments
            .values_mut()
            .next_back()
            .expect("a partition log always has an active segment")
    }
}

/// Base offsets of the segments in `dir`, ascending.
fn segment_bases(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(LOG_SUFFIX) {
            continue;
        }
        let Some(base) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<i64>().ok())
        else {
            warn!(path = %path.display(), "ignoring a file that is not a segment");
            continue;
        };
        bases.push(base);
    }
    bases.sort_unstable();
    Ok(bases)
}

/// fsyncs a directory on the real disk.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    RealDisk.sync_dir(dir)
}
