//! InitProducerId: gives an idempotent producer its producer id and epoch.
//!
//! Without a transactional id every call gets a new producer id at epoch
//! 0, as Kafka answers (a producer that asks again with its old id and
//! epoch, KIP-360, starts over with a fresh id, whose sequences start at
//! 0). Transactional ids need the transaction coordinator, which this
//! broker does not have yet: they are refused.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use tracing::{info, warn};

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::server::RequestContext;

pub fn handle(
    broker: &Broker,
    request: &RequestContext,
    body: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    if let Some(id) = body.transactional_id.as_ref().filter(|id| !id.is_empty()) {
        let e = BrokerError::TransactionalIdNotSupported(id.to_string());
        warn!(peer = %request.peer, error = %e, "InitProducerId refused");
        response.error_code = e.code();
        return response;
    }
    match broker.producer_ids.next(broker) {
        Ok(id) => {
            info!(peer = %request.peer, client = %request.client_id(), producer_id = id, "new idempotent producer");
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Err(e) => {
            warn!(peer = %request.peer, error = %e, "cannot give a producer id");
            response.error_code = e.code();
        }
    }
    response
}
