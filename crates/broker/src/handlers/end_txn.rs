//! EndTxn: the producer commits or aborts its open transaction. Answered
//! once the coordinator has stored the decision and written the markers.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};
use tracing::{info, warn};

use crate::broker::Broker;
use crate::server::RequestContext;

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
        )
        .await;
    let mut response = EndTxnResponse::default();
    match outcome {
        Ok(()) => info!(
            transactional_id = %body.transactional_id.0,
            producer_id = body.producer_id.0,
            outcome = if body.committed { "commit" } else { "abort" },
            "transaction ended"
        ),
        Err(e) => {
            warn!(peer = %request.peer, transactional_id = %body.transactional_id.0, error = %e, "EndTxn refused");
            response.error_code = e.code();
        }
    }
    response
}
