//! The broker's produce path (append, then commit under the fsync policy)
//! on a simulated disk that loses power: under `fsync = "always"` every
//! acknowledged batch survives; under `never` the same test loses some,
//! which shows the test can tell the two apart.

use std::sync::Arc;

use sluice_broker::{Broker, BrokerConfig, FsyncPolicy};
use sluice_storage::batch::testing::batch;
use sluice_storage::disk::{DiskRef, PowerLoss, SimDisk};

const NOW: i64 = 1_700_000_000_000;
const PARTITIONS: i32 = 4;

struct Acked {
    partition: i32,
    offset: i64,
    bytes_after_header: Vec<u8>,
}

/// Produces through the broker until `n` batches are acknowledged, cuts
/// the power, restarts, and returns (acknowledged, lost) counts.
async fn produce_and_lose_power(policy: FsyncPolicy, mode: PowerLoss) -> (usize, usize) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let disk = SimDisk::shared();
    let config = BrokerConfig {
        data_dir: tmp.path().join("data"),
        fsync: policy,
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
    for i in 0..200 {
        let index = i % PARTITIONS;
        let partition = broker.partition("orders", index).expect("partition");
        let bytes = batch(1 + (i % 3), NOW + i64::from(i), 10 + (i as usize % 40));
        let info = partition.append(bytes.clone(), NOW).expect("append");
        broker
            .commit_append(&partition, info.last_offset + 1)
            .await
            .expect("commit");
        acked.push(Acked {
            partition: index,
            offset: info.base_offset,
            bytes_after_header: bytes[61..].to_vec(),
        });
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
    for mode in [PowerLoss::DropUnsynced, PowerLoss::TearLastWrite] {
        let (acked, lost) = produce_and_lose_power(FsyncPolicy::Always, mode).await;
        assert_eq!(acked, 200);
        assert_eq!(
            lost, 0,
            "{mode:?}: acknowledged batches lost under fsync=always"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_test_loses_acknowledged_batches_under_never() {
    let (acked, lost) = produce_and_lose_power(FsyncPolicy::Never, PowerLoss::DropUnsynced).await;
    assert_eq!(acked, 200);
    assert!(
        lost > 0,
        "fsync=never lost nothing: the test cannot see a missing fsync"
    );
}
