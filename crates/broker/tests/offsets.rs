//! Committed offsets in the coordinator, in process: simple commits are
//! stored, replayed after a reopen, and expire for empty groups.

use std::sync::Arc;

use sluice_broker::group::{CommittedOffset, Committer, OffsetToCommit};
use sluice_broker::{Broker, BrokerConfig};

const NOW: i64 = 1_700_000_000_000;

fn simple() -> Committer {
    Committer {
        member_id: String::new(),
        instance_id: None,
        generation: -1,
    }
}

fn offset(partition: i32, offset: i64, at: i64) -> OffsetToCommit {
    OffsetToCommit {
        topic: "t".into(),
        partition,
        value: CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: None,
            commit_timestamp_ms: at,
        },
    }
}

fn committed(broker: &Broker, group: &str, partition: i32) -> Option<i64> {
    let found = broker
        .groups
        .fetch_offsets(group, Some(vec![("t".into(), vec![partition])]))
        .expect("fetch");
    found[0].1[0].1.as_ref().map(|c| c.offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_are_replayed_and_expire_only_for_old_commits_of_empty_groups() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = BrokerConfig {
        data_dir: tmp.path().join("data"),
        offsets_topic_partitions: 3,
        ..BrokerConfig::default()
    };
    let broker = Arc::new(Broker::open(config.clone()).expect("open"));
    broker
        .create_topic("t", 2, 1, Default::default())
        .expect("topic");
    for (group, at) in [("old", NOW - 10_000), ("fresh", NOW)] {
        let results = broker
            .groups
            .commit(
                &broker,
                group,
                &simple(),
                vec![offset(0, 5, at), offset(1, 9, at)],
            )
            .await
            .expect("commit");
        assert!(results.iter().all(Result::is_ok));
    }
    drop(broker);

    let broker = Arc::new(Broker::open(config.clone()).expect("reopen"));
    assert_eq!(
        committed(&broker, "old", 1),
        Some(9),
        "replayed after reopen"
    );
    let expired = broker.groups.expire_offsets(&broker, 5_000, NOW).await;
    assert_eq!(expired, 2);
    assert_eq!(committed(&broker, "old", 0), None);
    assert_eq!(committed(&broker, "fresh", 0), Some(5));
    drop(broker);

    let broker = Broker::open(config).expect("reopen again");
    assert_eq!(committed(&broker, "old", 0), None, "the expiry is durable");
    assert_eq!(committed(&broker, "fresh", 1), Some(9));
}

/// Compaction rewrites the live commits and group records, deletes the
/// older segments, and changes nothing a reader or a restart sees — even
/// when the power fails right after it, under `fsync = "never"` (the
/// rewrite is fsynced whatever the policy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_every_live_commit_across_a_power_loss() {
    use sluice_broker::FsyncPolicy;
    use sluice_storage::disk::{DiskRef, PowerLoss, SimDisk};

    let tmp = tempfile::tempdir().expect("tempdir");
    let disk = SimDisk::shared();
    let config = BrokerConfig {
        data_dir: tmp.path().join("data"),
        offsets_topic_partitions: 1,
        offsets_compaction_min_records: 100,
        fsync: FsyncPolicy::Never,
        ..BrokerConfig::default()
    };
    let open = || {
        let disk: DiskRef = disk.clone();
        Arc::new(Broker::open_on(config.clone(), disk).expect("open broker"))
    };
    let broker = open();
    broker
        .create_topic("t", 3, 1, Default::default())
        .expect("topic");
    for round in 0..200i64 {
        for group in ["kept", "deleted"] {
            let offsets = (0..3)
                .map(|p| offset(p, round * 10 + i64::from(p), NOW))
                .collect();
            broker
                .groups
                .commit(&broker, group, &simple(), offsets)
                .await
                .expect("commit");
        }
    }
    broker
        .groups
        .delete_group(&broker, "deleted")
        .await
        .expect("delete group");
    // The log was fsynced only by the rolls so far; make what precedes
    // compaction durable, as the interval policy eventually would.
    broker.sync_all().await;
    let log_size = |broker: &Broker| {
        broker
            .partition("__consumer_offsets", 0)
            .expect("offsets partition")
            .log()
            .size_bytes()
    };
    let before = log_size(&broker);
    assert_eq!(broker.groups.compact_offsets(&broker).await, 1);
    let after = log_size(&broker);
    assert!(after * 20 < before, "{before} bytes before, {after} after");
    assert_eq!(
        broker.groups.compact_offsets(&broker).await,
        0,
        "nothing left to compact"
    );
    for p in 0..3 {
        assert_eq!(committed(&broker, "kept", p), Some(1990 + i64::from(p)));
    }
    drop(broker);
    disk.power_loss(PowerLoss::DropUnsynced)
        .expect("power loss");

    let broker = open();
    for p in 0..3 {
        assert_eq!(
            committed(&broker, "kept", p),
            Some(1990 + i64::from(p)),
            "partition {p} after the power loss"
        );
        assert_eq!(committed(&broker, "deleted", p), None);
    }
}
