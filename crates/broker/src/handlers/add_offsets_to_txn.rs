//! AddOffsetsToTxn: the group's partition of `__consumer_offsets` joins
//! the transaction, so that offsets committed in it (TxnOffsetCommit)
//! apply or vanish with the transaction.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use tracing::warn;

use crate::broker::Broker;
use crate::group::OFFSETS_TOPIC;
use crate::server::RequestContext;

pub async fn handle(
    broker: &Broker,
    request: &RequestContext,
    body: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let partition = (
        OFFSETS_TOPIC.to_string(),
        broker.groups.partition_of(&body.group_id.0),
    );
    let outcome = match broker.groups.ensure_offsets_topic(broker) {
        Ok(()) => {
            broker
                .txns
                .add_partitions(
                    broker,
                    &body.transactional_id,
                    body.producer_id.0,
                    body.producer_epoch,
                    &[partition],
                    false,
                )
                .await
        }
        Err(e) => Err(e),
    };
    let mut response = AddOffsetsToTxnResponse::default();
    if let Err(e) = outcome {
        warn!(peer = %request.peer, transactional_id = %body.transactional_id.0, error = %e, "AddOffsetsToTxn refused");
        response.error_code = e.code();
    }
    response
}
