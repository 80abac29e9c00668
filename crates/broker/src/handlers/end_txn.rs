//! EndTxn: the producer commits or aborts its open transaction. Answered
//! once the coordinator has stored the decision and written the markers.
//! From v5 on (Transactions V2) the epoch is bumped by every EndTxn and the
//! answer carries the producer id and epoch for the next transaction.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};
use tracing::{info, warn};

use crate::broker::Broker;
use crate::server::RequestContext;

/// EndTxn v5 bumps the epoch and answers with it (KIP-890).
const FIRST_VERSION_WITH_EPOCH_BUMP: i16 = 5;

pub async fn handle(
    broker: &Broker,
    request: &RequestContext,
    body: EndTxnRequest,
) -> EndTxnResponse {
    let outcome = broker
        .txns
        .end(
            broker,
            &body.transactional_id,
            body.producer_id.0,
            body.producer_epoch,
            body.committed,
            request.version >= FIRST_VERSION_WITH_EPOCH_BUMP,
        )
        .await;
    let mut response = EndTxnResponse::default();
    match outcome {
        Ok((producer_id, producer_epoch)) => {
            if request.version >= FIRST_VERSION_WITH_EPOCH_BUMP {
                response.producer_id = ProducerId(producer_id);
                response.producer_epoch = producer_epoch;
            }
            info!(
            transactional_id = %body.transactional_id.0,
            producer_id = body.producer_id.0,
            outcome = if body.committed { "commit" } else { "abort" },
            "transaction ended"
            )
        }
        Err(e) => {
            warn!(peer = %request.peer, transactional_id = %body.transactional_id.0, error = %e, "EndTxn refused");
            response.error_code = e.code();
        }
    }
    response
}
