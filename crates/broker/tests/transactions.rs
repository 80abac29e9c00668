//! The transaction coordinator in process: a transaction whose outcome was
//! stored (PrepareCommit or PrepareAbort) but whose markers were not
//! written, because the broker died between the two, is completed when
//! the broker starts again, so that no partition stays blocked behind it
//! and no transaction ends half committed.

use std::sync::Arc;

use bytes::Bytes;
use sluice_broker::record_batch;
use sluice_broker::txn::state::TxnState;
use sluice_broker::txn::{records, TXN_STATE_TOPIC};
use sluice_broker::{Broker, BrokerConfig};

const NOW: i64 = 1_700_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_stored_before_a_crash_is_completed_on_start() {
    for commit in [true, false] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let broker = Arc::new(Broker::open(config_for(&tmp)).expect("open"));
        broker
            .create_topic("t", 2, 1, Default::default())
            .expect("topic");
        let (pid, epoch) = broker
            .txns
            .init_producer_id(&broker, "mid", 60_000, None)
            .await
            .expect("init");
        let partitions = [("t".to_string(), 0), ("t".to_string(), 1)];
        broker
            .txns
            .add_partitions(&broker, "mid", pid, epoch, &partitions, false)
            .await
            .expect("add partitions");
        for index in 0..2 {
            let partition = broker.partition("t", index).expect("partition");
            let record = record_batch::transactional_record(
                NOW,
                Bytes::from_static(b"key"),
                Some(Bytes::from_static(b"value")),
                (pid, epoch),
            );
            let batch = record_batch::encode(vec![record]).expect("encode");
            let info = partition.append(batch, NOW).expect("append");
            broker
                .commit_append(&partition, info.last_offset + 1)
                .await
                .expect("durable");
            assert_eq!(partition.last_stable_offset(), 0, "the transaction is open");
        }

        // The outcome, stored the way the coordinator stores it; then the
        // broker stops before writing a single marker.
        let decided = broker
            .txns
            .get("mid")
            .expect("state")
            .end(pid, epoch, commit, false, || unreachable!(), NOW)
            .expect("end")
            .expect("a decision");
        let state_partition = broker
            .partition(TXN_STATE_TOPIC, records::partition_for("mid", 1))
            .expect("state partition");
        let record = record_batch::record(
            NOW,
            Some(records::encode_key("mid").into()),
            Some(records::encode_value(&decided).into()),
            Default::default(),
        );
        let info = state_partition
            .append(record_batch::encode(vec![record]).expect("encode"), NOW)
            .expect("append");
        broker
            .commit_append(&state_partition, info.last_offset + 1)
            .await
            .expect("durable");
        drop(broker);

        let broker = Arc::new(Broker::open(config_for(&tmp)).expect("reopen"));
        let (preparing, complete) = if commit {
            (TxnState::PrepareCommit, TxnState::CompleteCommit)
        } else {
            (TxnState::PrepareAbort, TxnState::CompleteAbort)
        };
        assert_eq!(broker.txns.get("mid").expect("replayed").state, preparing);
        broker.txns.tick(&broker).await;
        assert_eq!(broker.txns.get("mid").expect("state").state, complete);
        for index in 0..2 {
            let partition = broker.partition("t", index).expect("partition");
            // The record and its marker; nothing open any more.
            assert_eq!(partition.high_watermark(), 2);
            assert_eq!(partition.last_stable_offset(), 2, "commit={commit}");
            let aborted = partition.aborted_between(0, 2);
            assert_eq!(aborted.len(), usize::from(!commit), "commit={commit}");
        }
        drop(broker);

        // And it stays complete: nothing is done again after a restart.
        let broker = Arc::new(Broker::open(config_for(&tmp)).expect("reopen again"));
        assert_eq!(broker.txns.get("mid").expect("state").state, complete);
    }
}

fn config_for(tmp: &tempfile::TempDir) -> BrokerConfig {
    BrokerConfig {
        data_dir: tmp.path().join("data"),
        transaction_state_topic_partitions: 1,
        ..BrokerConfig::default()
    }
}
