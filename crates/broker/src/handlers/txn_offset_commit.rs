//! TxnOffsetCommit: a transactional producer commits a group's offsets
//! inside its transaction (`send_offsets_to_transaction`), so that the
//! input it consumed and the output it produced are committed together.
//! The group's partition must have been added to the open transaction
//! (AddOffsetsToTxn; from v5 on, Transactions V2, the commit adds it); the
//! offsets stay invisible to OffsetFetch until the
//! transaction commits, and vanish if it aborts.

use kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestTopic;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use tracing::warn;

use crate::broker::{now_ms, Broker};
use crate::error::BrokerError;
use crate::group::{CommittedOffset, Committer, OffsetToCommit, OFFSETS_TOPIC};
use crate::server::RequestContext;

/// TxnOffsetCommit v5 comes from a Transactions V2 producer (KIP-890).
const FIRST_VERSION_OF_TRANSACTIONS_V2: i16 = 5;

pub async fn handle(
    broker: &Broker,
    request: &RequestContext,
    body: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let group = body.group_id.0.to_string();
    let now = now_ms();
    let offsets: Vec<OffsetToCommit> = body
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| OffsetToCommit {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                value: CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    commit_timestamp_ms: now,
                },
            })
        })
        .collect();
    let committer = Committer {
        member_id: body.member_id.to_string(),
        instance_id: body.group_instance_id.as_ref().map(|i| i.to_string()),
        generation: body.generation_id,
    };
    let producer = (body.producer_id.0, body.producer_epoch);
    let partition = (
        OFFSETS_TOPIC.to_string(),
        broker.groups.partition_of(&group),
    );
    // The commit is appended while the transaction's gate is held, so that
    // it cannot land after the transaction's marker.
    // Transactions V2 producers (v5+) skip AddOffsetsToTxn: the commit
    // adds the group's partition to the transaction.
    let implicit_add = request.version >= FIRST_VERSION_OF_TRANSACTIONS_V2
        && broker.config.transaction_version >= 2;
    if implicit_add {
        if let Err(e) = broker.groups.ensure_offsets_topic(broker) {
            return answer(body.topics, e.code());
        }
    }
    let (gate, checked) = broker
        .txns
        .verify_writes(
            broker,
            &body.transactional_id,
            producer,
            &[partition],
            implicit_add,
        )
        .await;
    let outcome = match checked.into_iter().next() {
        Some(Ok(())) => {
            broker
                .groups
                .commit_transactional(broker, &group, &committer, producer, offsets.clone())
                .await
        }
        Some(Err(e)) => Err(e),
        None => Err(BrokerError::CoordinatorNotAvailable),
    };
    drop(gate);
    let results: Vec<i16> = match outcome {
        Ok(results) => results
            .iter()
            .map(|r| r.as_ref().err().map_or(0, |e| e.code()))
            .collect(),
        Err(e) => {
            warn!(peer = %request.peer, group = %group, transactional_id = %body.transactional_id.0, error = %e, "TxnOffsetCommit refused");
            vec![e.code(); offsets.len()]
        }
    };
    let mut codes = results.into_iter();
    answer_each(body.topics, || codes.next().unwrap_or_default())
}

/// The same error for every partition.
fn answer(topics: Vec<TxnOffsetCommitRequestTopic>, code: i16) -> TxnOffsetCommitResponse {
    answer_each(topics, || code)
}

fn answer_each(
    topics: Vec<TxnOffsetCommitRequestTopic>,
    mut code: impl FnMut() -> i16,
) -> TxnOffsetCommitResponse {
    let mut response = TxnOffsetCommitResponse::default();
    for topic in topics {
        let mut t = TxnOffsetCommitResponseTopic::default();
        t.name = topic.name;
        for p in topic.partitions {
            let mut out = TxnOffsetCommitResponsePartition::default();
            out.partition_index = p.partition_index;
            out.error_code = code();
            t.partitions.push(out);
        }
        response.topics.push(t);
    }
    response
}
