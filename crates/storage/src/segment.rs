//! One segment of a partition log: a file of record batches starting at
//! `base_offset`, with its offset and time indexes.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{self, BatchHeader, BatchParts, HEADER_SIZE};
use crate::disk::DiskRef;
use crate::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use crate::region::FileRegion;

pub const LOG_SUFFIX: &str = "log";
pub const INDEX_SUFFIX: &str = "index";
pub const TIME_INDEX_SUFFIX: &str = "timeindex";

/// File name stem of the segment starting at `base_offset`, zero padded so
/// that names sort like offsets (Kafka's convention).
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// What a scan of a segment's bytes found.
#[derive(Debug, Default)]
pub struct ScanOutcome {
    /// Bytes at the end that do not form valid batches and were cut off.
    pub truncated_bytes: u64,
    /// Why the scan stopped early, if it did.
    pub stop_reason: Option<String>,
    /// Whether the indexes on disk disagreed with the log and were rewritten.
    pub indexes_rebuilt: bool,
    /// Where validation began: 0, or the end of a prefix a recovery point
    /// vouched for.
    pub validated_from: u64,
}

/// The start of an active segment a checkpoint made durable and vouches
/// for (`recovery_points.rs`): recovery validates only what follows.
#[derive(Debug, Clone, Copy)]
pub struct TrustedPrefix {
    pub position: u64,
    pub next_offset: i64,
    pub max_timestamp: i64,
    pub offset_entries: usize,
    pub time_entries: usize,
}

#[derive(Debug)]
pub struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    log: Arc<File>,
    size: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    /// Offset after the last batch in this segment (its base offset if empty).
    next_offset: i64,
    /// Largest batch max-timestamp stored here; -1 if none.
    max_timestamp: i64,
    /// Time the segment was started, for roll by age: the first batch's
    /// timestamp, or the wall clock when the segment was created empty.
    rolling_timestamp: i64,
    bytes_since_index_entry: u64,
    /// A failed append could not be cut back: the file's tail is unknown.
    torn: bool,
    /// Where the last batches appended to this segment lie, so that a
    /// reader following the tail finds them without reading headers back
    /// from the file (the offset index only has an entry every
    /// `index_interval_bytes`). Emptied when the segment is sealed.
    recent: VecDeque<BatchSpan>,
    /// Where the writeback last started by [`Segment::take_writeback`]
    /// ended: the file before it has been handed to the disk.
    writeback_from: u64,
    disk: DiskRef,
}

/// One batch's offsets and place in the segment file.
#[derive(Debug, Clone, Copy)]
struct BatchSpan {
    base_offset: i64,
    last_offset: i64,
    position: u64,
    size: u64,
}

/// Batches remembered per active segment: enough for consumers a few
/// requests behind the tail, 1.3 KiB per partition.
const RECENT_BATCHES: usize = 32;

/// The page-cache page: writeback is started in whole pages.
const PAGE_BYTES: u64 = 4096;

/// Whether a read that has taken `taken` bytes also takes the next batch
/// (at `base_offset`, `size` bytes): not at or past `max_offset` (the high
/// watermark), and not beyond `max_bytes`, except that with `min_one` the
/// first batch goes whatever its size (KIP-74).
fn takes_next(
    taken: u64,
    base_offset: i64,
    size: u64,
    max_bytes: usize,
    max_offset: i64,
    min_one: bool,
) -> bool {
    let fits = taken + size <= max_bytes as u64;
    base_offset < max_offset && (fits || (taken == 0 && min_one))
}

/// Writes every piece, in order, at the file's end (it is opened for
/// appending), with as few `writev` calls as the kernel allows.
fn write_all_vectored(file: &File, pieces: &[&[u8]]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = pieces.iter().map(|p| IoSlice::new(p)).collect();
    let mut rest = &mut slices[..];
    IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        match (&*file).write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut rest, written),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Segment {
    /// Creates a new, empty segment.
    pub fn create(disk: DiskRef, dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Segment> {
        let mut segment = Self::open_files(disk, dir, base_offset, true)?;
        segment.rolling_timestamp = now_ms;
        Ok(segment)
    }

    /// Opens an existing segment without reading its batches: trusts the
    /// indexes after checking that they are well formed and that the last
    /// offset-index entry points at the batch it names. `next_offset` is the
    /// base offset of the following segment. When the indexes fail those
    /// checks the segment is scanned and its indexes rebuilt instead, and
    /// what the scan found is returned.
    pub fn open_sealed(
        disk: DiskRef,
        dir: &Path,
        base_offset: i64,
        next_offset: i64,
        index_interval: u64,
    ) -> io::Result<(Segment, Option<ScanOutcome>)> {
        let mut segment = Self::open_files(disk, dir, base_offset, false)?;
        segment.next_offset = next_offset;
        if !segment.indexes_look_sound()? {
            let outcome = segment.scan_and_repair(index_interval, Some(next_offset), None)?;
            return Ok((segment, Some(outcome)));
        }
        segment.max_timestamp = segment.time_index.last().map_or(-1, |e| e.timestamp);
        segment.rolling_timestamp = segment
            .time_index
            .entries()
            .first()
            .map_or(segment.max_timestamp, |e| e.timestamp);
        Ok((segment, None))
    }

    /// Opens the segment and validates every batch in it, truncating a torn
    /// or corrupt tail and rebuilding the indexes. Used for the active segment
    /// after a restart, and for any segment whose indexes look wrong.
    /// With `trusted`, the prefix it names is taken as it is (if the files
    /// still hold it) and validation starts after it.
    pub fn open_and_recover(
        disk: DiskRef,
        dir: &Path,
        base_offset: i64,
        index_interval: u64,
        trusted: Option<TrustedPrefix>,
    ) -> io::Result<(Segment, ScanOutcome)> {
        let mut segment = Self::open_files(disk, dir, base_offset, false)?;
        let trusted = trusted.filter(|t| segment.holds(t));
        let outcome = segment.scan_and_repair(index_interval, None, trusted)?;
        Ok((segment, outcome))
    }

    /// Whether the files still hold the prefix: long enough, with at least
    /// the indexes' vouched entries, each inside it.
    fn holds(&self, t: &TrustedPrefix) -> bool {
        let span = t.next_offset - self.base_offset;
        let offsets = self.offset_index.entries();
        let times = self.time_index.entries();
        t.position > 0
            && t.position <= self.size
            && span > 0
            && offsets.len() >= t.offset_entries
            && times.len() >= t.time_entries
            && t.offset_entries > 0
            && t.time_entries > 0
            && offsets[..t.offset_entries]
                .iter()
                .all(|e| u64::from(e.position) < t.position && i64::from(e.relative_offset) < span)
            && times[..t.time_entries]
                .iter()
                .all(|e| i64::from(e.relative_offset) < span)
    }

    /// Opens the segment's three files (creating them when `create`, which
    /// fails if the log file already exists).
    fn open_files(
        disk: DiskRef,
        dir: &Path,
        base_offset: i64,
        create: bool,
    ) -> io::Result<Segment> {
        let stem = file_stem(base_offset);
        let log_path = dir.join(format!("{stem}.{LOG_SUFFIX}"));
        let log = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(create)
            .open(&log_path)?;
        if create {
            disk.created(&log_path);
        }
        let size = log.metadata()?.len();
        let offset_index =
            OffsetIndex::open(disk.clone(), &dir.join(format!("{stem}.{INDEX_SUFFIX}")))?;
        let time_index = TimeIndex::open(
            disk.clone(),
            &dir.join(format!("{stem}.{TIME_INDEX_SUFFIX}")),
        )?;
        Ok(Segment {
            base_offset,
            log_path,
            log: Arc::new(log),
            size,
            offset_index,
            time_index,
            next_offset: base_offset,
            max_timestamp: -1,
            rolling_timestamp: -1,
            bytes_since_index_entry: 0,
            torn: false,
            recent: VecDeque::new(),
            writeback_from: size,
            disk,
        })
    }

    /// Cheap structural checks of a sealed segment's indexes.
    fn indexes_look_sound(&self) -> io::Result<bool> {
        let offsets = self.offset_index.entries();
        if offsets.is_empty() && self.size > 0 {
            // A lost index file: lookups and retention need it rebuilt.
            return Ok(false);
        }
        let span = self.next_offset - self.base_offset;
        let ordered = offsets
            .windows(2)
            .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position);
        let in_bounds = offsets
            .iter()
            .all(|e| u64::from(e.position) < self.size && i64::from(e.relative_offset) < span);
        if !ordered || !in_bounds {
            return Ok(false);
        }
        if let Some(last) = self.offset_index.last() {
            // The last indexed batch must be where the index says, and the
            // batches after it must end exactly at the end of the file and
            // at the next segment's base offset: a sealed segment cut short
            // or grown (a bad disk, a careless copy) fails here, at the
            // cost of reading a few headers.
            let expected = self.base_offset + i64::from(last.relative_offset);
            match self.tail_is_whole(u64::from(last.position), expected) {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(e) if e.kind() != io::ErrorKind::InvalidData => return Err(e),
                Err(_) => return Ok(false),
            }
        }
        let times = self.time_index.entries();
        let times_ordered = times.windows(2).all(|w| {
            w[0].timestamp <= w[1].timestamp && w[0].relative_offset <= w[1].relative_offset
        });
        let times_in_bounds = times.iter().all(|e| i64::from(e.relative_offset) < span);
        Ok(times_ordered && times_in_bounds)
    }

    /// Whether the batches from `position` (where the batch at `offset`
    /// starts) follow each other with contiguous offsets up to exactly the
    /// end of the file and the segment's next offset.
    fn tail_is_whole(&self, mut position: u64, mut offset: i64) -> io::Result<bool> {
        while position < self.size {
            let Some(header) = self.header_at(position)? else {
                return Ok(false);
            };
            if header.base_offset != offset {
                return Ok(false);
            }
            position += header.total_size() as u64;
            offset = header.next_offset();
        }
        Ok(position == self.size && offset == self.next_offset)
    }

    /// Reads every batch from the start, validating each one; cuts the file
    /// at the first invalid byte and rebuilds both indexes from what remains.
    /// `end`, for a sealed segment, is the next segment's base offset: a
    /// batch reaching it overlaps the next segment and is cut as well.
    fn scan_and_repair(
        &mut self,
        index_interval: u64,
        end: Option<i64>,
        trusted: Option<TrustedPrefix>,
    ) -> io::Result<ScanOutcome> {
        let mut outcome = ScanOutcome::default();
        let mut offsets = Vec::new();
        let mut times: Vec<TimeEntry> = Vec::new();
        let mut position = 0u64;
        let mut expected_offset = self.base_offset;
        let mut max_timestamp = -1i64;
        let mut first_timestamp = None;
        let mut since_entry = 0u64;
        if let Some(t) = trusted {
            offsets = self.offset_index.entries()[..t.offset_entries].to_vec();
            times = self.time_index.entries()[..t.time_entries].to_vec();
            position = t.position;
            expected_offset = t.next_offset;
            max_timestamp = t.max_timestamp;
            first_timestamp = times.first().map(|e| e.timestamp);
            since_entry = offsets
                .last()
                .map_or(0, |e| t.position - u64::from(e.position));
            outcome.validated_from = t.position;
        }
        let mut buf = Vec::new();
        while position < self.size {
            let header = match self.header_at(position) {
                Ok(Some(h)) => h,
                Ok(None) => {
                    outcome.stop_reason = Some("incomplete batch header".to_string());
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    outcome.stop_reason = Some(e.to_string());
                    break;
                }
                Err(e) => return Err(e),
            };
            let total = header.total_size() as u64;
            if position + total > self.size {
                outcome.stop_reason = Some(format!(
                    "batch at position {position} claims {total} bytes, only {} remain",
                    self.size - position
                ));
                break;
            }
            buf.resize(total as usize, 0);
            self.log.read_exact_at(&mut buf, position)?;
            if let Err(e) = batch::validate(&buf) {
                outcome.stop_reason = Some(format!("batch at position {position}: {e}"));
                break;
            }
            if header.base_offset < expected_offset {
                outcome.stop_reason = Some(format!(
                    "batch at position {position} has offset {} below the expected {expected_offset}",
                    header.base_offset
                ));
                break;
            }
            if let Some(end) = end.filter(|&end| header.last_offset() >= end) {
                outcome.stop_reason = Some(format!(
                    "batch at position {position} (offsets {}..={}) runs into the next segment at {end}",
                    header.base_offset,
                    header.last_offset()
                ));
                break;
            }
            let relative = (header.base_offset - self.base_offset) as u32;
            max_timestamp = max_timestamp.max(header.max_timestamp);
            first_timestamp.get_or_insert(header.max_timestamp);
            if offsets.is_empty() || since_entry >= index_interval {
                offsets.push(OffsetEntry {
                    relative_offset: relative,
                    position: position as u32,
                });
                if times.last().is_none_or(|t| max_timestamp > t.timestamp) {
                    times.push(TimeEntry {
                        timestamp: max_timestamp,
                        relative_offset: relative,
                    });
                }
                since_entry = 0;
            }
            since_entry += total;
            expected_offset = header.next_offset();
            position += total;
        }
        if position < self.size {
            self.recent.clear();
            outcome.truncated_bytes = self.size - position;
            self.log.set_len(position)?;
            self.disk.sync_file(&self.log, &self.log_path)?;
            self.size = position;
        }
        if times.last().is_some_and(|t| t.timestamp < max_timestamp) {
            if let Some(last) = offsets.last() {
                times.push(TimeEntry {
                    timestamp: max_timestamp,
                    relative_offset: last.relative_offset,
                });
            }
        }
        if self.offset_index.entries() != offsets.as_slice() {
            self.offset_index.replace(offsets)?;
            outcome.indexes_rebuilt = true;
        }
        if self.time_index.entries() != times.as_slice() {
            self.time_index.replace(times)?;
            outcome.indexes_rebuilt = true;
        }
        self.next_offset = expected_offset;
        self.max_timestamp = max_timestamp;
        self.rolling_timestamp = first_timestamp.unwrap_or(-1);
        self.bytes_since_index_entry = since_entry;
        Ok(outcome)
    }

    /// The batch header at `position`, `Ok(None)` if fewer than a header's
    /// bytes remain, an `InvalidData` error if the bytes are not a header.
    pub fn header_at(&self, position: u64) -> io::Result<Option<BatchHeader>> {
        if position + HEADER_SIZE as u64 > self.size {
            return Ok(None);
        }
        let mut buf = [0u8; HEADER_SIZE];
        self.log.read_exact_at(&mut buf, position)?;
        BatchHeader::parse(&buf)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Appends a validated batch whose offsets have been assigned. On a write
    /// error the file is cut back to its previous length so that no part of
    /// the batch remains.
    pub fn append(
        &mut self,
        batch: BatchParts<'_>,
        header: &BatchHeader,
        index_interval: u64,
    ) -> io::Result<()> {
        let position = self.size;
        let result = write_all_vectored(&self.log, &batch.slices())
            .and_then(|()| self.index_batch(position, header, index_interval));
        if let Err(e) = result {
            // Undo the whole append so that the offsets can be given again.
            let undone = self.log.set_len(position).is_ok()
                && self
                    .offset_index
                    .truncate_while(|x| u64::from(x.position) < position)
                    .is_ok()
                && self
                    .time_index
                    .truncate_while(|x| {
                        i64::from(x.relative_offset) < header.base_offset - self.base_offset
                    })
                    .is_ok();
            if !undone {
                self.torn = true;
            }
            return Err(e);
        }
        if self.recent.len() == RECENT_BATCHES {
            self.recent.pop_front();
        }
        self.recent.push_back(BatchSpan {
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            position,
            size: batch.len() as u64,
        });
        self.size += batch.len() as u64;
        if self.next_offset == self.base_offset {
            self.rolling_timestamp = header.max_timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        self.bytes_since_index_entry += batch.len() as u64;
        self.next_offset = header.next_offset();
        Ok(())
    }

    /// Adds index entries for a batch written at `position`, if one is due.
    fn index_batch(
        &mut self,
        position: u64,
        header: &BatchHeader,
        index_interval: u64,
    ) -> io::Result<()> {
        if !(self.offset_index.entries().is_empty()
            || self.bytes_since_index_entry >= index_interval)
        {
            return Ok(());
        }
        let relative = (header.base_offset - self.base_offset) as u32;
        self.offset_index.append(OffsetEntry {
            relative_offset: relative,
            position: position as u32,
        })?;
        let max_timestamp = self.max_timestamp.max(header.max_timestamp);
        if self
            .time_index
            .last()
            .is_none_or(|t| max_timestamp > t.timestamp)
        {
            self.time_index.append(TimeEntry {
                timestamp: max_timestamp,
                relative_offset: relative,
            })?;
        }
        self.bytes_since_index_entry = 0;
        Ok(())
    }

    /// Seals the segment when a newer one takes over: records its final max
    /// timestamp in the time index and makes everything durable.
    pub fn seal(&mut self) -> io::Result<()> {
        if self
            .time_index
            .last()
            .is_some_and(|t| t.timestamp < self.max_timestamp)
        {
            let relative = self.offset_index.last().map_or(0, |e| e.relative_offset);
            self.time_index.append(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset: relative,
            })?;
        }
        self.recent = VecDeque::new();
        self.sync_all()
    }

    /// Byte position of the first batch whose last offset is at least
    /// `offset`, with its header; `None` if no such batch is here.
    pub fn locate(&self, offset: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        let relative = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        let mut position = self
            .offset_index
            .floor(relative, |e| e.relative_offset)
            .map_or(0, |e| u64::from(e.position));
        while let Some(header) = self.header_at(position)? {
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
            position += header.total_size() as u64;
        }
        Ok(None)
    }

    /// Reads whole batches starting with the one that holds `offset`, stopping
    /// before a batch at or beyond `max_offset` (the high watermark), and
    /// before `max_bytes` would be exceeded, except that with `min_one` the
    /// first batch is returned whatever its size (KIP-74). `None` means no
    /// batch at or after `offset` is in this segment, so the caller may look
    /// in the next one; an empty region means there is one but it is not to
    /// be returned (beyond `max_offset`, or larger than `max_bytes`).
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one: bool,
    ) -> io::Result<Option<FileRegion>> {
        if let Some(region) = self.read_recent(offset, max_bytes, max_offset, min_one) {
            return Ok(Some(region));
        }
        let Some((start, first)) = self.locate(offset)? else {
            return Ok(None);
        };
        let mut end = start;
        let mut header = Some(first);
        while let Some(h) = header {
            let size = h.total_size() as u64;
            if !takes_next(
                end - start,
                h.base_offset,
                size,
                max_bytes,
                max_offset,
                min_one,
            ) {
                break;
            }
            end += size;
            header = self.header_at(end)?;
        }
        Ok(Some(FileRegion::new(
            self.log_file(),
            start,
            (end - start) as usize,
        )))
    }

    /// [`Segment::read`] from the recent batches alone, when they reach
    /// back to `offset` and hold a batch at or after it; otherwise `None`
    /// (the file and index answer instead).
    fn read_recent(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one: bool,
    ) -> Option<FileRegion> {
        if self.recent.front()?.base_offset > offset {
            return None;
        }
        let first = self.recent.iter().position(|s| s.last_offset >= offset)?;
        let start = self.recent[first].position;
        let mut taken = 0u64;
        for span in self.recent.range(first..) {
            if !takes_next(
                taken,
                span.base_offset,
                span.size,
                max_bytes,
                max_offset,
                min_one,
            ) {
                break;
            }
            taken += span.size;
        }
        Some(FileRegion::new(self.log_file(), start, taken as usize))
    }

    /// The first batch whose max timestamp is at least `timestamp`.
    pub fn find_by_timestamp(&self, timestamp: i64) -> io::Result<Option<Vec<u8>>> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        // The last time-index entry below the target bounds where to start:
        // everything up to its offset is older than the target.
        let below = self
            .time_index
            .entries()
            .partition_point(|e| e.timestamp < timestamp);
        let start_offset = below.checked_sub(1).map_or(self.base_offset, |i| {
            self.base_offset + i64::from(self.time_index.entries()[i].relative_offset)
        });
        let Some((mut position, mut header)) = self.locate(start_offset)? else {
            return Ok(None);
        };
        loop {
            if header.max_timestamp >= timestamp {
                let mut out = vec![0u8; header.total_size()];
                self.log.read_exact_at(&mut out, position)?;
                return Ok(Some(out));
            }
            position += header.total_size() as u64;
            match self.header_at(position)? {
                Some(h) => header = h,
                None => return Ok(None),
            }
        }
    }

    /// fsyncs the log file and both indexes.
    pub fn sync_all(&self) -> io::Result<()> {
        self.disk.sync_file(&self.log, &self.log_path)?;
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// The whole pages appended since the last call, as (position,
    /// length), once they are at least `min_bytes`: for the caller to start
    /// their writeback (`Disk::start_writeback`). The page still being
    /// filled waits for the next call.
    pub fn take_writeback(&mut self, min_bytes: u64) -> Option<(u64, u64)> {
        let from = self.writeback_from.min(self.size);
        let to = self.size / PAGE_BYTES * PAGE_BYTES;
        if to <= from || to - from < min_bytes {
            return None;
        }
        self.writeback_from = to;
        Some((from, to - from))
    }

    /// A handle to the log file, so that it can be fsynced without holding
    /// the partition's lock.
    pub fn log_file(&self) -> Arc<File> {
        Arc::clone(&self.log)
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Removes the segment's files.
    pub fn delete(self) -> io::Result<()> {
        let offset_path = self.offset_index.path().to_path_buf();
        let time_path = self.time_index.path().to_path_buf();
        drop(self.offset_index);
        drop(self.time_index);
        fs::remove_file(&self.log_path)?;
        self.disk.removed(&self.log_path);
        remove_if_present(&offset_path)?;
        self.disk.removed(&offset_path);
        remove_if_present(&time_path)?;
        self.disk.removed(&time_path);
        Ok(())
    }

    /// Writes the index entries kept in memory to their files.
    pub fn flush_indexes(&self) -> io::Result<()> {
        self.offset_index.flush()?;
        self.time_index.flush()
    }

    pub fn offset_entries(&self) -> usize {
        self.offset_index.entries().len()
    }

    pub fn time_entries(&self) -> usize {
        self.time_index.entries().len()
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn is_torn(&self) -> bool {
        self.torn
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    pub fn rolling_timestamp(&self) -> i64 {
        self.rolling_timestamp
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
