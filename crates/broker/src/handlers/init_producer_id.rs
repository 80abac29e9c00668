//! InitProducerId: gives a producer its producer id and epoch.
//!
//! Without a transactional id every call gets a new producer id at epoch
//! 0, as Kafka answers (a producer that asks again with its old id and
//! epoch, KIP-360, starts over with a fresh id, whose sequences start at
//! 0). With one, the transaction coordinator keeps the id's producer id
//! and bumps its epoch, fencing older instances of the producer and
//! aborting a transaction they left open.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use tracing::{info, warn};

use crate::broker::Broker;
use crate::server::RequestContext;

pub async fn handle(
    broker: &Broker,
    request: &RequestContext,
    body: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    let outcome = match body.transactional_id.as_ref() {
        Some(id) => {
            // v3+: the producer's current id and epoch, when it has them.
            let expected = (body.producer_id.0 >= 0).then_some((body.producer_id.0, body.producer_epoch));
            broker
                .txns
                .init_producer_id(broker, id, body.transaction_timeout_ms, expected)
                .await
        }
        None => broker.producer_ids.next(broker).map(|id| {
            info!(peer = %request.peer, client = %request.client_id(), producer_id = id, "new idempotent producer");
            (id, 0)
        }),
    };
    match outcome {
        Ok((id, epoch)) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = epoch;
        }
        Err(e) => {
            warn!(peer = %request.peer, error = %e, "InitProducerId refused");
            response.error_code = e.code();
        }
    }
    response
}
