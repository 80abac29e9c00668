//! Entry points shared by the fuzz targets and the corpus replay test.
//!
//! `fuzz/fuzz_targets/{batch,recovery}.rs` (libFuzzer, nightly) and
//! `tests/fuzz_corpus.rs` (stable, `cargo test`) call the very same
//! functions here, so a corpus input that once found a bug keeps being
//! checked by every test run. Each function panics when a property it
//! checks does not hold; anything else it finds wrong in its input is an
//! ordinary, expected refusal.

use std::fs;
use std::path::Path;

use crate::batch::{self, BatchHeader, ProducedBatch, HEADER_SIZE, LOG_OVERHEAD};
use crate::log::{LogConfig, PartitionLog};
use crate::records::{self, Codec, Records};
use crate::segment::{file_stem, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};

/// The inflation limit [`batch`] validates with.
pub const BATCH_LIMIT: usize = 1 << 20;

/// The largest single allocation [`batch`] may make for `data` (the
/// callers check it with a counting global allocator).
pub fn batch_allocation_bound(data: &[u8]) -> usize {
    BATCH_LIMIT + 64 * data.len() + 64 * 1024
}

/// What [`batch`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    /// `data` as given passed `validate_produced`.
    pub valid: bool,
    /// `data` with its batch length and CRC made right passed it.
    pub valid_once_fixed: bool,
}

/// Validates `data` as a produced batch (`validate_produced` with
/// [`BATCH_LIMIT`]) and, if it passes, walks its inflated records and looks
/// records up by timestamp; a batch that passed must read back without an
/// error. Then does the same with a copy whose batch length and CRC-32C
/// are set to match the bytes, so that the fuzzer reaches the codecs and
/// the record walk without having to forge checksums.
pub fn batch(data: &[u8]) -> BatchOutcome {
    let mut outcome = BatchOutcome {
        valid: check_batch(data),
        ..BatchOutcome::default()
    };
    if data.len() >= HEADER_SIZE {
        let mut fixed = data.to_vec();
        let length = (fixed.len() - LOG_OVERHEAD).min(i32::MAX as usize) as i32;
        fixed[8..12].copy_from_slice(&length.to_be_bytes());
        fix_crc(&mut fixed);
        outcome.valid_once_fixed = check_batch(&fixed);
    }
    outcome
}

fn check_batch(buf: &[u8]) -> bool {
    let Ok(header) = batch::validate_produced(buf, BATCH_LIMIT) else {
        // Refused; the timestamp lookup must refuse it too, or cope.
        let _ = records::first_at_or_after(buf, 0, BATCH_LIMIT);
        return false;
    };
    let codec = Codec::from_id(header.compression()).expect("a valid batch has a known codec");
    let section = records::inflate(codec, &buf[HEADER_SIZE..], BATCH_LIMIT)
        .expect("a valid batch inflates again");
    let mut walk = Records::new(&section, header.records_count);
    let mut timestamps = Vec::new();
    for (i, record) in (0..).zip(walk.by_ref()) {
        let record = record.expect("a valid batch's records read back");
        assert_eq!(record.offset_delta, i, "records of a valid batch are dense");
        timestamps.push(header.base_timestamp.saturating_add(record.timestamp_delta));
    }
    walk.finish()
        .expect("a valid batch holds exactly its records");
    let first = records::first_at_or_after(buf, i64::MIN, BATCH_LIMIT)
        .expect("a valid batch can be searched");
    assert_eq!(
        first,
        Some((header.base_offset, timestamps[0])),
        "the first record is at or after the earliest time"
    );
    for &at in timestamps.iter().take(4) {
        let found = records::first_at_or_after(buf, at, BATCH_LIMIT)
            .expect("a valid batch can be searched")
            .expect("a record has this timestamp");
        assert!(found.1 >= at, "lookup of {at} found {found:?}");
    }
    true
}

/// Sets the CRC of the batch occupying `buf` to match its bytes.
fn fix_crc(buf: &mut [u8]) {
    if buf.len() >= HEADER_SIZE {
        let crc = crc32c::crc32c(&buf[21..]);
        buf[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

/// Flags (`data[0]`) of a [`recovery`] input.
pub mod recovery_flags {
    /// Fix the CRC of every batch whose header the segment's bytes frame.
    pub const FIX_CRCS: u8 = 0x01;
    /// Write two segments: the first (sealed) holds the log bytes up to the
    /// split point, the second (active) the rest.
    pub const TWO_SEGMENTS: u8 = 0x02;
    /// Base the second segment at the offset following the valid batches
    /// at the start of the first, as a broker that rolled would have;
    /// otherwise at `1 + data[5]`.
    pub const CONSISTENT_BASE: u8 = 0x04;
    /// Write an offset index (`.index`).
    pub const INDEX: u8 = 0x08;
    /// Write a time index (`.timeindex`).
    pub const TIME_INDEX: u8 = 0x10;
    /// The index files belong to the last segment instead of the first.
    pub const INDEXES_ON_LAST: u8 = 0x20;
}

/// Bytes of a [`recovery`] input before the file contents.
pub const RECOVERY_PREFIX: usize = 6;

/// The segment size [`recovery`] opens logs with: small, so that appends
/// roll.
pub const RECOVERY_SEGMENT_BYTES: u64 = 1024;

const NOW_MS: i64 = 1_700_000_000_000;

/// The files a [`recovery`] input describes, in order: base offset, log
/// bytes, offset index bytes, time index bytes (`None`: no such file).
pub type SegmentFiles = Vec<(i64, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>)>;

/// Decodes a [`recovery`] input into the segment files it describes.
///
/// Layout: `data[0]` flags ([`recovery_flags`]), `data[1..3]` split point
/// (u16 BE, modulo the log bytes + 1), `data[3]` offset index length,
/// `data[4]` time index length, `data[5]` second base offset − 1 (without
/// `CONSISTENT_BASE`), then the log bytes followed by the offset index
/// bytes and the time index bytes (their lengths clamped to what is there).
pub fn recovery_files(data: &[u8]) -> Option<SegmentFiles> {
    let (prefix, rest) = data.split_first_chunk::<RECOVERY_PREFIX>()?;
    let [flags, split_hi, split_lo, index_len, time_len, base] = *prefix;
    let has = |flag: u8| flags & flag != 0;
    let (rest, time_bytes) = rest.split_at(rest.len() - usize::from(time_len).min(rest.len()));
    let (log, index_bytes) = rest.split_at(rest.len() - usize::from(index_len).min(rest.len()));
    let mut segments = if has(recovery_flags::TWO_SEGMENTS) {
        let split = usize::from(u16::from_be_bytes([split_hi, split_lo])) % (log.len() + 1);
        let (first, second) = log.split_at(split);
        let mut first = first.to_vec();
        if has(recovery_flags::FIX_CRCS) {
            fix_crcs(&mut first);
        }
        let next = if has(recovery_flags::CONSISTENT_BASE) {
            valid_prefix_next_offset(&first).max(1)
        } else {
            1 + i64::from(base)
        };
        vec![(0, first), (next, second.to_vec())]
    } else {
        vec![(0, log.to_vec())]
    };
    if has(recovery_flags::FIX_CRCS) {
        let last = segments.len() - 1;
        fix_crcs(&mut segments[last].1);
    }
    let which = if has(recovery_flags::INDEXES_ON_LAST) {
        segments.len() - 1
    } else {
        0
    };
    Some(
        segments
            .into_iter()
            .enumerate()
            .map(|(i, (base, log))| {
                let index =
                    (i == which && has(recovery_flags::INDEX)).then(|| index_bytes.to_vec());
                let time =
                    (i == which && has(recovery_flags::TIME_INDEX)).then(|| time_bytes.to_vec());
                (base, log, index, time)
            })
            .collect(),
    )
}

/// Fixes the CRC of each batch in `log`, walking their headers from the
/// start until one does not frame.
fn fix_crcs(log: &mut [u8]) {
    let mut position = 0;
    while let Ok(header) = BatchHeader::parse(&log[position..]) {
        let end = position + header.total_size();
        if end > log.len() {
            break;
        }
        fix_crc(&mut log[position..end]);
        position = end;
    }
}

/// The offset after the valid batches at the start of a segment based at 0.
fn valid_prefix_next_offset(log: &[u8]) -> i64 {
    let mut position = 0;
    let mut next = 0i64;
    while let Ok(header) = BatchHeader::parse(&log[position..]) {
        let end = position + header.total_size();
        if end > log.len() || batch::validate(&log[position..end]).is_err() {
            break;
        }
        if header.base_offset < next {
            break;
        }
        let Some(after) = header
            .base_offset
            .checked_add(i64::from(header.last_offset_delta) + 1)
        else {
            break;
        };
        next = after;
        position = end;
    }
    next
}

/// What [`recovery`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryOutcome {
    /// Fewer than [`RECOVERY_PREFIX`] bytes.
    TooShort,
    /// `PartitionLog::open` returned an error.
    OpenFailed(String),
    /// The log opened, read back whole and took an append; how many batches
    /// it held.
    Recovered { batches: usize },
}

/// Writes the segment files a [`recovery_files`] input describes into
/// `dir` (which must be empty or absent), opens the partition log there
/// and checks what recovery made of them: log start ≤ log end; reading
/// from the start returns whole batches with strictly increasing offsets,
/// none past the log end, each passing `batch::validate` (except in a
/// sealed segment whose indexes were trusted: recovery does not read those
/// batches, by design, so reads there may fail); reopening gives the same
/// log start and end (recovery is idempotent); and a new batch appends at
/// the old log end.
pub fn recovery(dir: &Path, data: &[u8]) -> RecoveryOutcome {
    let Some(files) = recovery_files(data) else {
        return RecoveryOutcome::TooShort;
    };
    fs::create_dir_all(dir).expect("create the log directory");
    for (base, log, index, time) in &files {
        let stem = dir.join(file_stem(*base));
        fs::write(stem.with_extension(LOG_SUFFIX), log).expect("write the segment");
        if let Some(index) = index {
            fs::write(stem.with_extension(INDEX_SUFFIX), index).expect("write the index");
        }
        if let Some(time) = time {
            fs::write(stem.with_extension(TIME_INDEX_SUFFIX), time).expect("write the time index");
        }
    }
    let config = LogConfig {
        segment_bytes: RECOVERY_SEGMENT_BYTES,
        segment_ms: i64::MAX / 4,
        retention_ms: -1,
        retention_bytes: -1,
        index_interval_bytes: 128,
        ..LogConfig::default()
    };
    let (log, report) = match PartitionLog::open(dir, config.clone(), NOW_MS) {
        Ok(opened) => opened,
        Err(e) => return RecoveryOutcome::OpenFailed(e.to_string()),
    };
    let start = log.log_start_offset();
    let end = log.log_end_offset();
    assert!(start <= end, "log start {start} is past log end {end}");
    assert_eq!(
        (report.log_start_offset, report.log_end_offset),
        (start, end)
    );
    // Offsets below this lie in a sealed segment recovery trusted unread.
    let trusted_below = match files.get(1) {
        Some(&(next_base, ..)) if report.sealed_repairs.is_empty() => next_base,
        _ => i64::MIN,
    };
    let batches = read_back(&log, start, end, trusted_below);
    drop(log);

    let (mut log, _) = PartitionLog::open(dir, config, NOW_MS).expect("a recovered log reopens");
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (start, end),
        "reopening a recovered log changed it"
    );
    let mut produced = ProducedBatch::new(batch::testing::batch(1, NOW_MS, 10), BATCH_LIMIT)
        .expect("the testing batch is valid");
    let appended = log.append(&mut produced, 0, None, NOW_MS);
    if end == i64::MAX {
        // No offset is left for another batch.
        assert!(appended.is_err(), "appended past offset i64::MAX");
        return RecoveryOutcome::Recovered { batches };
    }
    let appended = appended.expect("a recovered log takes an append");
    assert_eq!(
        appended.base_offset, end,
        "the append did not land at the log end"
    );
    assert_eq!(log.log_end_offset(), end + 1);
    let bytes = log
        .read(end, 1 << 20, end + 1, true)
        .expect("the appended batch reads back");
    let header = batch::validate(&bytes).expect("the appended batch is whole and valid");
    assert_eq!(header.base_offset, end);
    RecoveryOutcome::Recovered { batches }
}

/// Reads the log from `start` to `end`, checking every batch; returns how
/// many it read. Below `trusted_below` a failure skips to it instead.
fn read_back(log: &PartitionLog, start: i64, end: i64, trusted_below: i64) -> usize {
    let mut offset = start;
    let mut batches = 0;
    let mut last: Option<i64> = None;
    while offset < end {
        match read_some(log, offset, end, last) {
            Ok(Some((next, n))) => {
                assert!(next > offset, "reading at {offset} did not advance");
                batches += n;
                last = Some(next - 1);
                offset = next;
            }
            Ok(None) => break,
            Err(why) if offset < trusted_below => {
                let _ = why;
                offset = trusted_below;
                last = None;
            }
            Err(why) => panic!("reading the recovered log at {offset}: {why}"),
        }
    }
    batches
}

/// One read at `offset`: the offset after the batches it returned and how
/// many there were; `None` when nothing is there.
fn read_some(
    log: &PartitionLog,
    offset: i64,
    end: i64,
    mut last: Option<i64>,
) -> Result<Option<(i64, usize)>, String> {
    let region = log
        .read_region(offset, 4096, end, true)
        .map_err(|e| format!("read failed: {e}"))?;
    let Some(region) = region else {
        return Ok(None);
    };
    let file_len = region.file().metadata().map_err(|e| e.to_string())?.len();
    if region.position() + region.len() as u64 > file_len {
        return Err(format!(
            "region {}+{} runs past the file's {file_len} bytes",
            region.position(),
            region.len()
        ));
    }
    let bytes = region.to_vec().map_err(|e| e.to_string())?;
    let mut position = 0;
    let mut count = 0;
    while position < bytes.len() {
        let header =
            BatchHeader::parse(&bytes[position..]).map_err(|e| format!("at {position}: {e}"))?;
        let batch_end = position
            .checked_add(header.total_size())
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| format!("batch at {position} is not whole"))?;
        let header = batch::validate(&bytes[position..batch_end])
            .map_err(|e| format!("batch at offset {}: {e}", header.base_offset))?;
        if last.is_some_and(|l| header.base_offset <= l) {
            return Err(format!(
                "batch at offset {} follows offset {last:?}",
                header.base_offset
            ));
        }
        if header.base_offset < offset && count == 0 && header.last_offset() < offset {
            return Err(format!("batch {} ends before {offset}", header.base_offset));
        }
        if header.next_offset() > end {
            return Err(format!(
                "batch {}..={} runs past the log end {end}",
                header.base_offset,
                header.last_offset()
            ));
        }
        last = Some(header.last_offset());
        count += 1;
        position = batch_end;
    }
    Ok(last.map(|l| (l + 1, count)))
}

/// A global allocator for the fuzz targets and the corpus replay tests:
/// `System`, recording the largest single allocation requested on a thread
/// while [`largest_allocation`] runs there, so that each can check the
/// allocation bound its entry point promises. Each binary installs it with
/// `#[global_allocator] static A: LargestAllocation = LargestAllocation;`.
/// Allocations made by the C codecs (zstd, lz4) go to `malloc` directly and
/// are not seen.
pub struct LargestAllocation;

thread_local! {
    static ARMED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static LARGEST: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn record_allocation(size: usize) {
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
        }
    });
}

// SAFETY: every call is forwarded unchanged to `System`; the bookkeeping
// touches only const-initialized thread-locals, which never allocate.
unsafe impl std::alloc::GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        record_allocation(layout.size());
        std::alloc::System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        record_allocation(layout.size());
        std::alloc::System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        record_allocation(new_size);
        std::alloc::System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        std::alloc::System.dealloc(ptr, layout)
    }
}

/// Runs `f`; its result (or its panic's message) and the largest single
/// allocation it requested (seen only where [`LargestAllocation`] is the
/// global allocator).
pub fn largest_allocation<T>(f: impl FnOnce() -> T) -> (Result<T, String>, usize) {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    LARGEST.with(|largest| largest.set(0));
    ARMED.with(|armed| armed.set(true));
    let out = catch_unwind(AssertUnwindSafe(f));
    ARMED.with(|armed| armed.set(false));
    let out = out.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    });
    (out, LARGEST.with(std::cell::Cell::get))
}

/// The files of the corpus directory `fuzz/corpus/<target>` under the
/// repository root `root`, sorted; panics if there are none.
pub fn corpus_files(root: &Path, target: &str) -> Vec<std::path::PathBuf> {
    let dir = root.join("fuzz/corpus").join(target);
    let mut files: Vec<std::path::PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("read the corpus directory").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}
