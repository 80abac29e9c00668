//! TxnOffsetCommit: a transactional producer commits a group's offsets
//! inside its transaction (`send_offsets_to_transaction`), so that the
//! input it consumed and the output it produced are committed together.
//! The group's partition must have been added to the open transaction
//! (AddOffsetsToTxn); the offsets stay invisible to OffsetFetch until the
//! transaction commits, and vanish if it aborts.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use tracing::warn;

use crate::broker::{now_ms, Broker};
use crate::error::BrokerError;
use crate::group::{CommittedOffset, Committer, OffsetToCommit, OFFSETS_TOPIC};
use crate::server::RequestContext;

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
    let (gate, checked) = broker
        .txns
        .verify_writes(&body.transactional_id, producer.0, producer.1, &[partition])
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
    let mut response = TxnOffsetCommitResponse::default();
    let mut codes = results.into_iter();
    for topic in body.topics {
        let mut t = TxnOffsetCommitResponseTopic::default();
        t.name = topic.name;
        for p in topic.partitions {
            let mut out = TxnOffsetCommitResponsePartition::default();
            out.partition_index = p.partition_index;
            out.error_code = codes.next().unwrap_or_default();
            t.partitions.push(out);
        }
        response.topics.push(t);
    }
    response
}
