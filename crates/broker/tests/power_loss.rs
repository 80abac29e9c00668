//! The broker's produce path (append, then commit under the fsync policy)
//! on a simulated disk that loses power: under `fsync = "always"` every
//! acknowledged batch survives, with either sync scope (one syncfs per
//! round for all partitions, or an fdatasync per partition), batches of
//! several partitions waiting on the same round; under `never` the same
//! test loses some, which shows the test can tell the two apart.

use std::sync::Arc;

use sluice_broker::{Broker, BrokerConfig, FsyncPolicy, FsyncScope};
use sluice_storage::batch::testing::batch;
use sluice_storage::disk::{DiskRef, PowerLoss, SimDisk};

const NOW: i64 = 1_700_000_000_000;
const PARTITIONS: i32 = 4;

struct Acked {
    partition: i32,
    offset: i64,
    bytes_after_header: Vec<u8>,
}

/// Produces 200 batches through the broker, a batch to each partition at a
/// time, their commits awaited together; cuts the power, restarts, and
/// returns (acknowledged, lost) counts.
async fn produce_and_lose_power(
    policy: FsyncPolicy,
    scope: FsyncScope,
    mode: PowerLoss,
) -> (usize, usize) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let disk = SimDisk::shared();
    let config = BrokerConfig {
        data_dir: tmp.path().join("data"),
        fsync: policy,
        fsync_scope: scope,
        segment_bytes: 4096,
        ..BrokerConfig::default()
    };
    let open = || {
        let disk: DiskRef = disk.clone();
        Arc::new(Broker::open_on(config.clone(), disk).expect("open broker"))
    };
    let broker = open();
    broker
        .create_topic("orders", PARTITIONS, 1, Default::default())
        .expect("create topic");
    let mut acked = Vec::new();
    for step in 0..200 / PARTITIONS {
        let mut appended = Vec::new();
        for index in 0..PARTITIONS {
            let i = step * PARTITIONS + index;
            let partition = broker.partition("orders", index).expect("partition");
            let bytes = batch(1 + (i % 3), NOW + i64::from(i), 10 + (i as usize % 40));
            let info = partition.append(bytes.clone(), NOW).expect("append");
            appended.push((partition, info, bytes));
        }
        let commits = appended
            .iter()
            .map(|(partition, info, _)| broker.commit_append(partition, info.last_offset + 1));
        for committed in futures_util::future::join_all(commits).await {
            committed.expect("commit");
        }
        for (partition, info, bytes) in appended {
            acked.push(Acked {
                partition: partition.index,
                offset: info.base_offset,
                bytes_after_header: bytes[61..].to_vec(),
            });
        }
    }
    drop(broker);
    disk.power_loss(mode).expect("power loss");

    let broker = open();
    let mut lost = 0;
    for a in &acked {
        let partition = broker.partition("orders", a.partition).expect("partition");
        let read = partition
            .log()
            .read(a.offset, 1, i64::MAX, true)
            .unwrap_or_default();
        let intact = read.len() >= 61 && read[61..].starts_with(&a.bytes_after_header);
        if !intact {
            lost += 1;
        }
        // Whatever survived is readable as whole, valid batches.
        if !read.is_empty() {
            let header = sluice_storage::BatchHeader::parse(&read).expect("header");
            sluice_storage::batch::validate(&read[..header.total_size()]).expect("valid batch");
        }
    }
    (acked.len(), lost)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_batch_survives_power_loss_under_always() {
    for scope in [FsyncScope::Filesystem, FsyncScope::Partition] {
        for mode in [PowerLoss::DropUnsynced, PowerLoss::TearLastWrite] {
            let (acked, lost) = produce_and_lose_power(FsyncPolicy::Always, scope, mode).await;
            assert_eq!(acked, 200);
            assert_eq!(
                lost, 0,
                "{scope:?} {mode:?}: acknowledged batches lost under fsync=always"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_test_loses_acknowledged_batches_under_never() {
    let (acked, lost) = produce_and_lose_power(
        FsyncPolicy::Never,
        FsyncScope::Filesystem,
        PowerLoss::DropUnsynced,
    )
    .await;
    assert_eq!(acked, 200);
    assert!(
        lost > 0,
        "fsync=never lost nothing: the test cannot see a missing fsync"
    );
}

/// A failed round of syncs fails every partition it covered: their
/// producers are told (KAFKA_STORAGE_ERROR), and the partitions refuse
/// writes until a restart recovers them, as after a failed fdatasync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_round_fails_the_partitions_it_covered() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let disk = SimDisk::shared();
    let config = BrokerConfig {
        data_dir: tmp.path().join("data"),
        ..BrokerConfig::default()
    };
    let shared: DiskRef = disk.clone();
    let broker = Arc::new(Broker::open_on(config, shared).expect("open broker"));
    broker
        .create_topic("orders", 2, 1, Default::default())
        .expect("create topic");
    let partitions: Vec<_> = (0..2)
        .map(|i| broker.partition("orders", i).expect("partition"))
        .collect();
    // Both partitions' waits may share one round or take two: both fail.
    disk.fail_next_syncs(2);
    let ends: Vec<i64> = partitions
        .iter()
        .map(|p| {
            p.append(batch(1, NOW, 10), NOW)
                .expect("append")
                .last_offset
                + 1
        })
        .collect();
    let commits = partitions
        .iter()
        .zip(&ends)
        .map(|(p, end)| broker.commit_append(p, *end));
    for committed in futures_util::future::join_all(commits).await {
        let error = committed.expect_err("the sync failed");
        assert_eq!(error.code(), 56, "KAFKA_STORAGE_ERROR: {error}");
    }
    for p in &partitions {
        assert!(p.is_failed());
        assert!(p.append(batch(1, NOW, 10), NOW).is_err(), "writes refused");
    }
}
