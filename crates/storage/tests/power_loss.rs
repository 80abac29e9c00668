//! The partition log on a simulated disk that loses power, tears the last
//! write and fails fsyncs on command: what was fsynced survives, nothing
//! that was never written appears, and a failed fsync stops the log.

use std::path::Path;
use std::sync::Arc;

use sluice_storage::batch::testing::batch;
use sluice_storage::batch::validate;
use sluice_storage::disk::{DiskRef, PowerLoss, SimDisk};
use sluice_storage::BatchHeader;
use sluice_storage::{LogConfig, PartitionLog, ProducedBatch, StorageError};

const NOW: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

fn open(disk: &Arc<SimDisk>, dir: &Path) -> PartitionLog {
    let disk: DiskRef = disk.clone();
    PartitionLog::open_on(disk, dir, config(), NOW)
        .expect("open log")
        .0
}

/// Appends a batch of `records` records; returns its bytes as stored.
fn append(log: &mut PartitionLog, records: i32, seed: usize) -> Vec<u8> {
    let mut produced =
        ProducedBatch::new(batch(records, NOW + seed as i64, 20 + seed % 17), 1 << 20)
            .expect("valid batch");
    log.append(&mut produced, 0, None, NOW).expect("append");
    produced.parts().to_vec()
}

/// Every batch in the log, in order, as stored bytes.
fn read_all(log: &PartitionLog) -> Vec<Vec<u8>> {
    let mut batches = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let bytes = log.read(offset, usize::MAX, i64::MAX, true).expect("read");
        assert!(!bytes.is_empty(), "nothing readable at {offset}");
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let size = BatchHeader::parse(rest).expect("header").total_size();
            let header = validate(&rest[..size]).expect("every batch read back is valid");
            batches.push(rest[..size].to_vec());
            offset = header.next_offset();
            rest = &rest[size..];
        }
    }
    batches
}

#[test]
fn what_was_fsynced_survives_power_loss_and_nothing_else_appears() {
    for mode in PowerLoss::every_kind(1) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("p-0");
        let disk = SimDisk::shared();
        let mut log = open(&disk, &dir);
        let mut written = Vec::new();
        let mut durable = 0;
        for i in 0..120 {
            written.push(append(&mut log, 1 + (i % 3) as i32, i));
            if i % 7 == 6 {
                log.sync().expect("sync");
                durable = written.len();
            }
        }
        assert!(log.segment_count() > 3, "the test must cross rolls");
        assert!(durable < written.len(), "some writes must be unsynced");
        drop(log);
        disk.power_loss(mode).expect("power loss");

        let log = open(&disk, &dir);
        let recovered = read_all(&log);
        assert!(
            recovered.len() >= durable,
            "{mode:?}: {} batches recovered, {durable} were fsynced",
            recovered.len()
        );
        assert_eq!(
            recovered[..],
            written[..recovered.len()],
            "{mode:?}: the recovered log is not a prefix of what was written"
        );
        assert!(
            recovered.len() < written.len(),
            "{mode:?}: unsynced writes survived"
        );
    }
}

#[test]
fn recovery_fsyncs_what_it_publishes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("p-0");
    let disk = SimDisk::shared();
    let mut log = open(&disk, &dir);
    let written: Vec<_> = (0..10).map(|i| append(&mut log, 1, i)).collect();
    // kill -9: the process dies, the page cache keeps the writes.
    drop(log);
    let log = open(&disk, &dir);
    assert_eq!(read_all(&log), written, "kill -9 loses nothing");
    drop(log);
    // Recovery published those batches as durable, so they must survive
    // the power loss that follows.
    disk.power_loss(PowerLoss::DropUnsynced)
        .expect("power loss");
    let log = open(&disk, &dir);
    assert_eq!(read_all(&log), written);
}

#[test]
fn a_failed_fsync_stops_the_log_until_it_is_reopened() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("p-0");
    let disk = SimDisk::shared();
    let mut log = open(&disk, &dir);
    let first = append(&mut log, 1, 0);
    log.sync().expect("sync");
    append(&mut log, 1, 1);
    disk.fail_next_syncs(1);
    assert!(log.sync().is_err());
    assert!(log.is_failed());
    // A later fsync might succeed without the pages the kernel dropped: the
    // log must not try.
    assert!(matches!(log.sync(), Err(StorageError::LogFailed)));
    let mut more = ProducedBatch::new(batch(1, NOW, 5), 1 << 20).expect("valid");
    assert!(matches!(
        log.append(&mut more, 0, None, NOW),
        Err(StorageError::LogFailed)
    ));
    drop(log);
    disk.power_loss(PowerLoss::DropUnsynced)
        .expect("power loss");
    let mut log = open(&disk, &dir);
    assert_eq!(read_all(&log), vec![first]);
    // Reopened from what is really on disk, it takes writes again.
    append(&mut log, 1, 2);
    log.sync().expect("sync after restart");
}

#[test]
fn a_failed_fsync_while_rolling_stops_the_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("p-0");
    let disk = SimDisk::shared();
    let mut log = open(&disk, &dir);
    // Fill the first segment up to just below its limit.
    let mut seed = 0;
    while log.size_bytes() + 200 < config().segment_bytes {
        append(&mut log, 1, seed);
        seed += 1;
    }
    assert_eq!(log.segment_count(), 1);
    disk.fail_next_syncs(1);
    let mut rolling = ProducedBatch::new(batch(3, NOW, 50), 1 << 20).expect("valid");
    assert!(log.append(&mut rolling, 0, None, NOW).is_err());
    assert!(
        log.is_failed(),
        "a failed fsync of the sealed segment must stop the log"
    );
    let mut next = ProducedBatch::new(batch(1, NOW, 5), 1 << 20).expect("valid");
    assert!(matches!(
        log.append(&mut next, 0, None, NOW),
        Err(StorageError::LogFailed)
    ));
}

/// An idempotent producer's batches across rolls (snapshots) and a power
/// loss: after reopening, a retry of any batch that survived is answered
/// with its stored offsets and not written again, and the producer goes on
/// from the last sequence that survived.
#[test]
fn idempotent_producers_are_recognised_after_power_loss() {
    use sluice_storage::batch::testing::idempotent_batch;
    for mode in PowerLoss::every_kind(1) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("p");
        let disk = SimDisk::shared();
        let mut log = open(&disk, &dir);
        let append = |log: &mut PartitionLog, seq: i32| {
            let mut produced =
                ProducedBatch::new(idempotent_batch(4, NOW, 42, 3, seq), 1 << 20).expect("valid");
            log.append(&mut produced, 0, None, NOW).expect("append")
        };
        // Enough batches to roll segments (and write snapshots) several times.
        let mut stored = Vec::new();
        for i in 0..60 {
            stored.push(append(&mut log, i * 4));
            if i == 40 {
                log.sync().expect("fsync");
            }
        }
        assert!(log.segment_count() > 2, "no roll happened");
        drop(log);
        disk.power_loss(mode).expect("power loss");

        let mut log = open(&disk, &dir);
        let end = log.log_end_offset();
        assert!(end > stored[40].last_offset, "fsynced data lost");
        let survived: Vec<_> = stored.iter().filter(|s| s.last_offset < end).collect();
        // The last five that survived are recognised as retries.
        for info in survived.iter().rev().take(5) {
            let seq = (info.base_offset / 4) as i32 * 4;
            let again = append(&mut log, seq);
            assert!(again.duplicate, "{mode:?}: retry of {info:?} stored again");
            assert_eq!(again.base_offset, info.base_offset);
        }
        assert_eq!(log.log_end_offset(), end, "{mode:?}: a retry was written");
        // The next sequence is accepted, a gap is not.
        let next = (end / 4) as i32 * 4;
        let mut gap =
            ProducedBatch::new(idempotent_batch(4, NOW, 42, 3, next + 4), 1 << 20).expect("valid");
        assert!(matches!(
            log.append(&mut gap, 0, None, NOW),
            Err(StorageError::Producer(_))
        ));
        assert!(!append(&mut log, next).duplicate);
    }
}
