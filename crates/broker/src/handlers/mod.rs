//! One module per Kafka API, each readable on its own: it takes the decoded
//! request and returns the response message. This file holds the table of
//! supported versions (the single source of what ApiVersions advertises)
//! and the dispatch from API key to handler.

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Encodable;

use crate::broker::Broker;
use crate::server::{decode_body, encode_body, EncodedBody, RequestContext};

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_topics;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_producers;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sync_group;
pub mod txn_offset_commit;

/// Every API this broker implements, with the versions it implements.
/// Minimums follow what Kafka 4.x still accepts (KIP-896).
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 2, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::ListTransactions, 0, 2),
    (ApiKey::DescribeTransactions, 0, 0),
];

pub fn supported_versions(api_key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == api_key)
        .map(|&(_, min, max)| (min, max))
}

type Reply = Result<Option<EncodedBody>, String>;

fn reply<M: Encodable>(message: M, version: i16) -> Reply {
    encode_body(&message, version).map(Some)
}

/// A produce request after its appends: the rest (waiting for durability,
/// then the encoded response body) runs while the connection reads on.
pub async fn start_produce(
    broker: &Broker,
    request: &RequestContext,
    body: Bytes,
) -> Result<produce::PendingProduce, String> {
    Ok(produce::append_request(broker, request, decode_body(request, body)?).await)
}

/// Decodes the body for the request's API and runs its handler.
pub async fn dispatch(broker: &Broker, request: &RequestContext, body: Bytes) -> Reply {
    let v = request.version;
    match request.api_key {
        ApiKey::ApiVersions => {
            let _: kafka_protocol::messages::ApiVersionsRequest = decode_body(request, body)?;
            reply(api_versions::handle(broker), v)
        }
        ApiKey::Metadata => reply(
            metadata::handle(broker, request, decode_body(request, body)?),
            v,
        ),
        ApiKey::Produce => {
            match produce::handle(broker, request, decode_body(request, body)?).await? {
                Some(response) => reply(response, v),
                None => Ok(None),
            }
        }
        ApiKey::Fetch => {
            let (response, records) =
                fetch::handle(broker, request, decode_body(request, body)?).await;
            Ok(Some(crate::fetch_wire::encode(&response, &records, v)))
        }
        ApiKey::ListOffsets => reply(
            list_offsets::handle(broker, request, decode_body(request, body)?),
            v,
        ),
        ApiKey::CreateTopics => reply(
            create_topics::handle(broker, request, decode_body(request, body)?),
            v,
        ),
        ApiKey::DeleteTopics => reply(
            delete_topics::handle(broker, request, decode_body(request, body)?),
            v,
        ),
        ApiKey::CreatePartitions => reply(
            create_partitions::handle(broker, decode_body(request, body)?),
            v,
        ),
        ApiKey::DescribeConfigs => reply(
            describe_configs::handle(broker, request, decode_body(request, body)?),
            v,
        ),
        ApiKey::IncrementalAlterConfigs => reply(
            incremental_alter_configs::handle(broker, decode_body(request, body)?),
            v,
        ),
        ApiKey::DescribeTopicPartitions => reply(
            describe_topic_partitions::handle(broker, decode_body(request, body)?),
            v,
        ),
        ApiKey::FindCoordinator => reply(
            find_coordinator::handle(broker, request, decode_body(request, body)?),
            v,
        ),
        ApiKey::JoinGroup => reply(
            join_group::handle(broker, request, decode_body(request, body)?).await,
            v,
        ),
        ApiKey::SyncGroup => reply(
            sync_group::handle(broker, request, decode_body(request, body)?).await,
            v,
        ),
        ApiKey::Heartbeat => reply(heartbeat::handle(broker, decode_body(request, body)?), v),
        ApiKey::LeaveGroup => reply(
            leave_group::handle(broker, request, decode_body(request, body)?),
            v,
        ),
        ApiKey::OffsetCommit => reply(
            offset_commit::handle(broker, request, decode_body(request, body)?).await,
            v,
        ),
        ApiKey::OffsetFetch => reply(
            offset_fetch::handle(broker, request, decode_body(request, body)?),
            v,
        ),
        ApiKey::ListGroups => reply(list_groups::handle(broker, decode_body(request, body)?), v),
        ApiKey::DescribeGroups => reply(
            describe_groups::handle(broker, request, decode_body(request, body)?),
            v,
        ),
        ApiKey::DeleteGroups => reply(
            delete_groups::handle(broker, decode_body(request, body)?).await,
            v,
        ),
        ApiKey::OffsetDelete => reply(
            offset_delete::handle(broker, decode_body(request, body)?).await,
            v,
        ),
        ApiKey::ConsumerGroupHeartbeat => reply(
            consumer_group_heartbeat::handle(broker, request, decode_body(request, body)?),
            v,
        ),
        ApiKey::ConsumerGroupDescribe => reply(
            consumer_group_describe::handle(broker, decode_body(request, body)?),
            v,
        ),
        ApiKey::InitProducerId => reply(
            init_producer_id::handle(broker, request, decode_body(request, body)?).await,
            v,
        ),
        ApiKey::AddPartitionsToTxn => reply(
            add_partitions_to_txn::handle(broker, request, decode_body(request, body)?).await,
            v,
        ),
        ApiKey::AddOffsetsToTxn => reply(
            add_offsets_to_txn::handle(broker, request, decode_body(request, body)?).await,
            v,
        ),
        ApiKey::TxnOffsetCommit => reply(
            txn_offset_commit::handle(broker, request, decode_body(request, body)?).await,
            v,
        ),
        ApiKey::ListTransactions => reply(
            list_transactions::handle(broker, decode_body(request, body)?),
            v,
        ),
        ApiKey::DescribeTransactions => reply(
            describe_transactions::handle(broker, decode_body(request, body)?),
            v,
        ),
        ApiKey::EndTxn => reply(
            end_txn::handle(broker, request, decode_body(request, body)?).await,
            v,
        ),
        ApiKey::DescribeProducers => reply(
            describe_producers::handle(broker, decode_body(request, body)?),
            v,
        ),
        other => Err(format!("no handler for {other:?}")),
    }
}
