//! The partition log on its own: appends, reads, rolls, retention, and the
//! crash cases recovery must handle (torn tail, garbage tail, bad indexes).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use sluice_storage::batch::{self, testing::batch};
use sluice_storage::{BatchHeader, LogConfig, PartitionLog, ProducedBatch, StorageError};

const NOW: i64 = 1_700_000_000_000;

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

/// Inflation limit for validating test batches.
const LIMIT: usize = 1 << 20;

fn produced(bytes: Vec<u8>) -> ProducedBatch {
    ProducedBatch::new(bytes, LIMIT).expect("valid batch")
}

fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config, NOW).expect("open log").0
}

/// Appends `n` batches of `records` records each, timestamps NOW + i.
fn fill(log: &mut PartitionLog, n: usize, records: i32) {
    for i in 0..n {
        let mut bytes = produced(batch(records, NOW + i as i64, 20));
        log.append(&mut bytes, 3, None, NOW).expect("append");
    }
}

/// Every batch readable from offset 0, as headers.
fn read_all(log: &PartitionLog) -> Vec<BatchHeader> {
    let mut headers = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let bytes = log
            .read(offset, 64 * 1024, log.log_end_offset(), true)
            .expect("read");
        assert!(!bytes.is_empty(), "no data at offset {offset}");
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let header = BatchHeader::parse(rest).expect("header");
            batch::validate(&rest[..header.total_size()]).expect("valid stored batch");
            offset = header.next_offset();
            headers.push(header);
            rest = &rest[header.total_size()..];
        }
    }
    headers
}

fn active_segment_file(dir: &Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().expect("a segment")
}

#[test]
fn appends_get_dense_offsets_and_read_back_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), LogConfig::default());
    fill(&mut log, 10, 3);
    assert_eq!(log.log_end_offset(), 30);
    let headers = read_all(&log);
    assert_eq!(headers.len(), 10);
    for (i, h) in headers.iter().enumerate() {
        assert_eq!(h.base_offset, i as i64 * 3);
        assert_eq!(h.partition_leader_epoch, 3);
    }
}

#[test]
fn reading_from_the_middle_of_a_batch_returns_that_whole_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), small_segments());
    fill(&mut log, 40, 5);
    let bytes = log.read(101, 1, log.log_end_offset(), true).expect("read");
    let header = BatchHeader::parse(&bytes).expect("header");
    assert_eq!(header.base_offset, 100);
    assert_eq!(
        bytes.len(),
        header.total_size(),
        "min_one returns exactly one batch"
    );
    let none = log.read(101, 1, log.log_end_offset(), false).expect("read");
    assert!(none.is_empty(), "without min_one nothing fits in one byte");
}

#[test]
fn reads_stop_at_the_high_watermark_and_the_byte_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), LogConfig::default());
    fill(&mut log, 10, 1);
    let bytes = log.read(0, 1 << 20, 4, true).expect("read");
    let mut count = 0;
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let h = BatchHeader::parse(rest).expect("header");
        assert!(h.base_offset < 4);
        rest = &rest[h.total_size()..];
        count += 1;
    }
    assert_eq!(count, 4);
    let one_size = batch(1, 0, 20).len();
    let limited = log.read(0, one_size * 2 + 1, 10, true).expect("read");
    assert_eq!(limited.len(), one_size * 2);
}

/// The active segment answers reads near its tail from the batches it
/// remembers; a reopened log has to read headers from the file. Both
/// must return the same bytes for every offset, byte limit and high
/// watermark, including offsets older than what is remembered.
#[test]
fn reads_from_remembered_batches_match_reads_from_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        index_interval_bytes: 512,
        ..LogConfig::default()
    };
    let mut log = open(tmp.path(), config.clone());
    fill(&mut log, 50, 3);
    let end = log.log_end_offset();
    let cases: Vec<(i64, usize, i64, bool)> = (0..end)
        .flat_map(|offset| {
            [
                (10_000, end, true),
                (200, end, true),
                (1, end, true),
                (1, end, false),
            ]
            .into_iter()
            .chain([(10_000, offset + 4, true), (10_000, offset, true)])
            .map(move |(bytes, watermark, min_one)| (offset, bytes, watermark, min_one))
        })
        .collect();
    let read = |log: &PartitionLog| -> Vec<Vec<u8>> {
        cases
            .iter()
            .map(|&(offset, bytes, watermark, min_one)| {
                log.read(offset, bytes, watermark, min_one).expect("read")
            })
            .collect()
    };
    let remembered = read(&log);
    drop(log);
    let reopened = read(&open(tmp.path(), config));
    assert_eq!(remembered.len(), reopened.len());
    for (case, (a, b)) in cases.iter().zip(remembered.iter().zip(&reopened)) {
        assert_eq!(a, b, "read {case:?}");
    }
    assert!(
        remembered.iter().any(|r| r.len() > 1000),
        "some reads span batches"
    );
}

#[test]
fn a_batch_too_big_for_the_budget_is_not_skipped_at_a_segment_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), small_segments());
    // Alternate large and small batches so that some segments end with a
    // large batch and the next one starts with a small one.
    let mut bases = Vec::new();
    for i in 0..60 {
        let records = if i % 2 == 1 { 3 } else { 1 };
        let mut bytes = produced(batch(records, NOW, 30));
        bases.push(
            log.append(&mut bytes, 0, None, NOW)
                .expect("append")
                .base_offset,
        );
    }
    assert!(log.segment_count() > 3);
    let small = batch(1, NOW, 30).len();
    let end = log.log_end_offset();
    for base in bases {
        let bytes = log.read(base, small, end, false).expect("read");
        if !bytes.is_empty() {
            let first = BatchHeader::parse(&bytes).expect("header");
            assert_eq!(first.base_offset, base, "offset {base} skipped ahead");
        }
    }
}

#[test]
fn old_producer_timestamps_do_not_roll_every_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config);
    let long_ago = NOW - 30 * 24 * 60 * 60 * 1000;
    for i in 0..20 {
        let mut bytes = produced(batch(1, long_ago + i, 10));
        log.append(&mut bytes, 0, None, NOW).expect("append");
    }
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn out_of_range_offsets_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), LogConfig::default());
    fill(&mut log, 2, 1);
    assert!(matches!(
        log.read(3, 100, 2, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert!(log.read(2, 100, 2, true).expect("at the end").is_empty());
}

#[test]
fn segments_roll_by_size_and_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut log = open(dir.path(), small_segments());
        fill(&mut log, 50, 2);
        assert!(log.segment_count() >= 5, "{} segments", log.segment_count());
    }
    let log = open(dir.path(), small_segments());
    assert_eq!(log.log_end_offset(), 100);
    let headers = read_all(&log);
    assert_eq!(headers.len(), 50);
    assert!(headers
        .windows(2)
        .all(|w| w[1].base_offset == w[0].next_offset()));
}

#[test]
fn segments_roll_by_age() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config);
    let mut first = produced(batch(1, NOW, 10));
    log.append(&mut first, 0, None, NOW).expect("append");
    let mut second = produced(batch(1, NOW + 10, 10));
    log.append(&mut second, 0, None, NOW + 10).expect("append");
    assert_eq!(log.segment_count(), 1);
    let mut late = produced(batch(1, NOW + 2000, 10));
    log.append(&mut late, 0, None, NOW + 2000).expect("append");
    assert_eq!(log.segment_count(), 2);
}

#[test]
fn torn_tail_is_truncated_on_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut log = open(dir.path(), LogConfig::default());
        fill(&mut log, 5, 2);
    }
    // A crash in the middle of writing the sixth batch: half of it on disk.
    let partial = batch(2, NOW, 20);
    let mut file = OpenOptions::new()
        .append(true)
        .open(active_segment_file(dir.path()))
        .expect("segment");
    file.write_all(&partial[..partial.len() / 2])
        .expect("write");
    drop(file);

    let (log, report) = PartitionLog::open(dir.path(), LogConfig::default(), NOW).expect("open");
    assert_eq!(report.truncated_bytes as usize, partial.len() / 2);
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(read_all(&log).len(), 5);
}

#[test]
fn zeroed_and_corrupt_tails_are_truncated_on_reopen() {
    for garbage in [vec![0u8; 300], {
        // A whole batch whose payload was damaged: its CRC no longer holds.
        let mut b = batch(1, NOW, 40);
        let last = b.len() - 1;
        b[last] ^= 1;
        b
    }] {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut log = open(dir.path(), LogConfig::default());
            fill(&mut log, 3, 1);
        }
        let mut file = OpenOptions::new()
            .append(true)
            .open(active_segment_file(dir.path()))
            .expect("segment");
        file.write_all(&garbage).expect("write");
        drop(file);
        let (mut log, report) =
            PartitionLog::open(dir.path(), LogConfig::default(), NOW).expect("open");
        assert_eq!(report.truncated_bytes as usize, garbage.len());
        assert_eq!(log.log_end_offset(), 3);
        // Appends continue at the right offset after recovery.
        let mut next = produced(batch(1, NOW, 5));
        let info = log.append(&mut next, 0, None, NOW).expect("append");
        assert_eq!(info.base_offset, 3);
        assert_eq!(read_all(&log).len(), 4);
    }
}

#[test]
fn corrupt_indexes_are_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut log = open(dir.path(), small_segments());
        fill(&mut log, 60, 1);
    }
    // Damage every index: garbage into each sealed one, the active one emptied.
    let mut indexes: Vec<_> = fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "index" || e == "timeindex")
        })
        .collect();
    indexes.sort();
    for path in &indexes {
        fs::write(path, [0xffu8; 24]).expect("overwrite index");
    }
    let log = open(dir.path(), small_segments());
    let headers = read_all(&log);
    assert_eq!(headers.len(), 60);
    for (i, h) in headers.iter().enumerate() {
        assert_eq!(h.base_offset, i as i64);
    }
    // Lookups through the rebuilt index land on the right batch.
    for target in [0i64, 17, 33, 59] {
        let bytes = log.read(target, 1, 60, true).expect("read");
        assert_eq!(
            BatchHeader::parse(&bytes).expect("header").base_offset,
            target
        );
    }
}

#[test]
fn lost_index_files_are_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut log = open(dir.path(), small_segments());
        fill(&mut log, 60, 1);
    }
    for entry in fs::read_dir(dir.path()).expect("dir") {
        let path = entry.expect("entry").path();
        if path
            .extension()
            .is_some_and(|e| e == "index" || e == "timeindex")
        {
            fs::remove_file(path).expect("remove index");
        }
    }
    let mut log = open(dir.path(), small_segments());
    assert_eq!(read_all(&log).len(), 60);
    let bytes = log
        .find_by_timestamp(NOW + 42, 60)
        .expect("lookup")
        .expect("found");
    assert_eq!(BatchHeader::parse(&bytes).expect("header").base_offset, 42);
    // Rebuilt time indexes let retention by time see the old segments.
    log.set_config(LogConfig {
        retention_ms: 1000,
        ..small_segments()
    });
    assert!(log.apply_retention(NOW + 1_000_000).expect("retention") > 0);
}

#[test]
fn rejected_batches_leave_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), LogConfig::default());
    fill(&mut log, 1, 1);
    let mut bad = batch(2, NOW, 10);
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    assert!(ProducedBatch::new(bad, LIMIT).is_err());
    let mut truncated = batch(2, NOW, 10);
    truncated.truncate(truncated.len() - 3);
    assert!(ProducedBatch::new(truncated, LIMIT).is_err());
    assert_eq!(log.log_end_offset(), 1);
    drop(log);
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(read_all(&log).len(), 1);
}

#[test]
fn retention_by_size_and_time_deletes_whole_old_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        retention_bytes: 2048,
        ..small_segments()
    };
    let mut log = open(dir.path(), config.clone());
    fill(&mut log, 80, 1);
    let before = log.segment_count();
    let deleted = log.apply_retention(NOW).expect("retention");
    assert!(deleted > 0);
    assert_eq!(log.segment_count(), before - deleted);
    assert!(log.size_bytes() <= 2048 + 1024);
    assert!(log.log_start_offset() > 0);
    let start = log.log_start_offset();
    assert!(matches!(
        log.read(0, 100, 80, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log).first().expect("data").base_offset, start);

    let by_time = LogConfig {
        retention_ms: 1000,
        retention_bytes: -1,
        ..small_segments()
    };
    log.set_config(by_time);
    let deleted = log.apply_retention(NOW + 1_000_000).expect("retention");
    assert!(deleted > 0);
    assert_eq!(log.segment_count(), 1, "only the active segment stays");
    drop(log);
    let log = open(dir.path(), small_segments());
    assert_eq!(log.log_end_offset(), 80);
}

#[test]
fn segments_wholly_below_an_offset_are_deleted_and_stay_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), small_segments());
    fill(&mut log, 80, 1);
    let before = log.segment_count();
    assert!(before > 3);
    // An offset inside a segment keeps that segment.
    let middle = 40;
    log.delete_segments_before(middle).expect("delete");
    let start = log.log_start_offset();
    assert!(start <= middle && start > 0, "start {start}");
    // Rolling at the end and deleting below it leaves only the new segment.
    log.roll(NOW).expect("roll");
    log.delete_segments_before(80).expect("delete");
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), 80);
    drop(log);
    let log = open(dir.path(), small_segments());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (80, 80));
}

#[test]
fn timestamp_lookup_finds_the_first_batch_at_or_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), small_segments());
    fill(&mut log, 50, 1);
    for target in [NOW, NOW + 7, NOW + 31, NOW + 49] {
        let bytes = log
            .find_by_timestamp(target, 50)
            .expect("lookup")
            .expect("found");
        let header = BatchHeader::parse(&bytes).expect("header");
        assert_eq!(header.max_timestamp, target);
        assert_eq!(header.base_offset, target - NOW);
    }
    assert!(log
        .find_by_timestamp(NOW + 50, 50)
        .expect("lookup")
        .is_none());
    assert_eq!(log.max_timestamp(), Some(NOW + 49));
}

#[test]
fn sync_points_track_what_is_durable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), LogConfig::default());
    assert!(log.sync_point().is_none());
    fill(&mut log, 3, 1);
    let point = log.sync_point().expect("something to sync");
    assert_eq!(point.up_to, 3);
    point.sync().expect("fsync");
    log.mark_durable(point.up_to);
    assert_eq!(log.durable_offset(), 3);
    assert!(log.sync_point().is_none());
}

/// Writeback is handed out in whole pages once enough has gathered, each
/// byte once, from where the last range ended; starting it changes nothing
/// a reader sees.
#[test]
fn segment_writeback_is_handed_out_in_whole_pages_each_byte_once() {
    const PAGE: u64 = 4096;
    const MIN: u64 = 2 * PAGE;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), LogConfig::default());
    assert!(log.writeback_due(MIN).is_none(), "an empty segment");
    let mut end = 0;
    let mut ranges = 0;
    while fs::metadata(active_segment_file(dir.path()))
        .expect("file")
        .len()
        < 16 * PAGE
    {
        fill(&mut log, 1, 10);
        let size = fs::metadata(active_segment_file(dir.path()))
            .expect("file")
            .len();
        if let Some(range) = log.writeback_due(MIN) {
            let (from, len) = range.range();
            assert_eq!(from, end, "ranges follow each other");
            assert_eq!(len % PAGE, 0, "whole pages");
            assert!(len >= MIN && from + len <= size);
            range.start().expect("start writeback");
            end = from + len;
            ranges += 1;
        }
        assert!(size - end < MIN + PAGE, "{} bytes waited", size - end);
    }
    assert!(ranges >= 6, "{ranges} ranges");
    assert_eq!(read_all(&log).len() as i64, log.log_end_offset() / 10);
}

/// A fetch holds a region while retention may delete its segment: the
/// region keeps the file open, so its bytes can still be sent whole.
#[test]
fn a_region_stays_readable_after_retention_deletes_its_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), small_segments());
    fill(&mut log, 80, 1);
    let region = log
        .read_region(0, 64 * 1024, log.log_end_offset(), true)
        .expect("read")
        .expect("a region at offset 0");
    let before = region.to_vec().expect("bytes");
    log.set_config(LogConfig {
        retention_bytes: 1024,
        ..small_segments()
    });
    assert!(log.apply_retention(NOW).expect("retention") > 0);
    assert!(log.log_start_offset() > 0, "offset 0's segment is gone");
    assert_eq!(region.to_vec().expect("bytes after deletion"), before);
    let first = BatchHeader::parse(&before).expect("header");
    assert_eq!(first.base_offset, 0);
    batch::validate(&before[..first.total_size()]).expect("a whole, valid batch");
}

/// A sealed segment damaged in the middle (bit rot, a bad disk) is cut at
/// the damage when its indexes no longer match; the repair is reported
/// with the offsets lost, and reads skip the gap to the next segment.
#[test]
fn a_damaged_sealed_segment_is_repaired_and_the_gap_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut log = open(dir.path(), small_segments());
        fill(&mut log, 60, 1);
        assert!(log.segment_count() > 2);
    }
    let first = dir.path().join("00000000000000000000.log");
    let mut bytes = fs::read(&first).expect("first segment");
    let size = bytes.len();
    // Damage the last batch of the first segment and truncate its index
    // entries' target, so the index check fails and the scan cuts there.
    bytes[size - 3] ^= 0xff;
    bytes.truncate(size - 1);
    fs::write(&first, &bytes).expect("damage");
    let (log, report) = PartitionLog::open(dir.path(), small_segments(), NOW).expect("reopen");
    assert_eq!(report.sealed_repairs.len(), 1, "{report:?}");
    let repair = &report.sealed_repairs[0];
    assert_eq!(repair.base_offset, 0);
    assert!(repair.truncated_bytes > 0);
    let (lost_from, lost_to) = repair.lost_offsets;
    assert!(lost_from < lost_to, "{repair:?}");
    // Everything outside the gap is still readable, in order.
    let headers = read_all(&log);
    let offsets: Vec<i64> = headers.iter().map(|h| h.base_offset).collect();
    let expected: Vec<i64> = (0..60)
        .filter(|o| *o < lost_from || *o >= lost_to)
        .collect();
    assert_eq!(offsets, expected);
}

/// Index entries are written to their files per checkpoint, roll or close,
/// not per batch: a crash that loses the ones still in memory (the process
/// gone, nothing dropped) leaves recovery to rebuild them from the log,
/// and every offset is found again.
#[test]
fn index_entries_lost_in_a_crash_are_rebuilt_from_the_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("p");
    let config = LogConfig {
        index_interval_bytes: 128,
        ..LogConfig::default()
    };
    let mut log = open(&dir, config.clone());
    fill(&mut log, 200, 3);
    let end = log.log_end_offset();
    // A crash: nothing flushed, nothing dropped.
    std::mem::forget(log);
    let index = fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "index"))
        .expect("an offset index");
    assert_eq!(
        fs::metadata(&index).expect("index").len(),
        0,
        "entries were written per batch"
    );
    let (log, report) = PartitionLog::open(&dir, config, NOW).expect("reopen");
    assert!(report.indexes_rebuilt);
    assert_eq!(log.log_end_offset(), end);
    for offset in (0..end).step_by(37) {
        let read = log.read(offset, 1, end, true).expect("read");
        let header = BatchHeader::parse(&read).expect("a batch");
        assert!(header.base_offset <= offset && offset <= header.last_offset());
    }
}
