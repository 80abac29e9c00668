//! Opening a log from a checkpoint's recovery point: only what the active
//! segment gained after the point is validated, a torn tail after it is
//! still cut, the producers' state comes from the snapshot the point
//! names, and a point the files no longer bear out is ignored (the whole
//! segment is validated, as without one).

use std::path::Path;

use sluice_storage::batch::testing::{batch, idempotent_batch};
use sluice_storage::{LogConfig, PartitionLog, ProducedBatch};

const NOW: i64 = 1_700_000_000_000;

fn open(
    dir: &Path,
    point: Option<&sluice_storage::recovery_points::RecoveryPoint>,
) -> (PartitionLog, sluice_storage::RecoveryReport) {
    PartitionLog::open_from(
        sluice_storage::RealDisk::shared(),
        dir,
        LogConfig {
            index_interval_bytes: 256,
            ..LogConfig::default()
        },
        NOW,
        point,
    )
    .expect("open")
}

fn append(log: &mut PartitionLog, bytes: Vec<u8>) -> sluice_storage::AppendInfo {
    let mut produced = ProducedBatch::new(bytes, 1 << 20).expect("valid");
    log.append(&mut produced, 0, None, NOW).expect("append")
}

fn active_segment(dir: &Path) -> std::path::PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().expect("a segment")
}

#[test]
fn validation_starts_at_the_recovery_point() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("p");
    let (mut log, _) = open(&dir, None);
    for i in 0..50 {
        append(&mut log, idempotent_batch(3, NOW + i, 7, 0, (i * 3) as i32));
    }
    let point = log.recovery_point().expect("a point");
    log.sync().expect("sync");
    for i in 0..20 {
        append(&mut log, batch(2, NOW + 100 + i, 20));
    }
    let end = log.log_end_offset();
    let size = std::fs::metadata(active_segment(&dir)).expect("size").len();
    drop(log);

    let (mut log, report) = open(&dir, Some(&point));
    assert_eq!(report.validated_from, point.position);
    assert!(point.position < size);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(report.truncated_bytes, 0);
    // Every offset reads back, before and after the point.
    for offset in [0, point.next_offset - 1, point.next_offset, end - 1] {
        let read = log.read(offset, 1, i64::MAX, true).expect("read");
        assert!(!read.is_empty(), "offset {offset} unreadable");
    }
    // The producer's state came from the snapshot the point named: its
    // last batch is recognised as a retry.
    let again = append(&mut log, idempotent_batch(3, NOW + 49, 7, 0, 49 * 3));
    assert!(
        again.duplicate,
        "the producer's last batch was stored again"
    );
}

#[test]
fn a_torn_tail_after_the_point_is_cut_and_a_point_past_the_file_is_ignored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("p");
    let (mut log, _) = open(&dir, None);
    for i in 0..30 {
        append(&mut log, batch(2, NOW + i, 30));
    }
    let point = log.recovery_point().expect("a point");
    log.sync().expect("sync");
    append(&mut log, batch(2, NOW + 40, 30));
    drop(log);
    // Tear the last batch.
    let segment = active_segment(&dir);
    let size = std::fs::metadata(&segment).expect("size").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open");
    file.set_len(size - 10).expect("tear");
    drop(file);
    let (log, report) = open(&dir, Some(&point));
    assert_eq!(report.validated_from, point.position);
    assert!(report.truncated_bytes > 0);
    assert_eq!(log.log_end_offset(), point.next_offset);
    drop(log);

    // A point beyond what the file holds (say, from a copy of another
    // directory) is not believed: the whole segment is validated.
    let mut far = point;
    far.position += 1 << 20;
    let (log, report) = open(&dir, Some(&far));
    assert_eq!(report.validated_from, 0);
    assert_eq!(log.log_end_offset(), point.next_offset);
}
