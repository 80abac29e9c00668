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
