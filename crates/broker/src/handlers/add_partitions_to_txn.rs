//! AddPartitionsToTxn (client versions 0-3): partitions join a
//! transactional id's open transaction, which they must before the
//! producer writes to them. A partition that does not exist fails the
//! request: it gets UNKNOWN_TOPIC_OR_PARTITION and the others
//! OPERATION_NOT_ATTEMPTED, as Kafka answers.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use kafka_protocol::ResponseError;
use tracing::warn;

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::server::RequestContext;

pub async fn handle(
    broker: &Broker,
    request: &RequestContext,
    body: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let wanted: Vec<(String, i32)> = body
        .v3_and_below_topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect();
    let missing = |(topic, partition): &(String, i32)| {
        crate::group::is_internal_topic(topic) || broker.partition(topic, *partition).is_none()
    };
    let codes: Vec<i16> = if wanted.iter().any(missing) {
        wanted
            .iter()
            .map(|p| {
                if missing(p) {
                    BrokerError::UnknownTopicOrPartition.code()
                } else {
                    ResponseError::OperationNotAttempted.code()
                }
            })
            .collect()
    } else {
        let outcome = broker
            .txns
            .add_partitions(
                broker,
                &body.v3_and_below_transactional_id,
                body.v3_and_below_producer_id.0,
                body.v3_and_below_producer_epoch,
                &wanted,
                false,
            )
            .await;
        if let Err(e) = &outcome {
            warn!(peer = %request.peer, transactional_id = %body.v3_and_below_transactional_id.0, error = %e, "AddPartitionsToTxn refused");
        }
        let code = outcome.err().map_or(0, |e| e.code());
        vec![code; wanted.len()]
    };
    let mut response = AddPartitionsToTxnResponse::default();
    let mut codes = codes.into_iter();
    for topic in body.v3_and_below_topics {
        let mut result = AddPartitionsToTxnTopicResult::default();
        result.name = topic.name;
        for index in topic.partitions {
            let mut partition = AddPartitionsToTxnPartitionResult::default();
            partition.partition_index = index;
            partition.partition_error_code = codes.next().unwrap_or_default();
            result.results_by_partition.push(partition);
        }
        response.results_by_topic_v3_and_below.push(result);
    }
    response
}
