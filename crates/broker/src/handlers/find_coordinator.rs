//! FindCoordinator: this broker coordinates every group and every
//! transactional id (a cluster of one). Answers for one key (v0-v3) or a
//! batch of keys (v4+), and creates `__consumer_offsets` on first use, as
//! Kafka does (`__transaction_state` is created by the first transactional
//! id's InitProducerId).

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::server::RequestContext;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub fn handle(
    broker: &Broker,
    request: &RequestContext,
    body: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let (host, port) = broker.config.advertised();
    let outcome = match body.key_type {
        KEY_TYPE_GROUP => broker.groups.ensure_offsets_topic(broker),
        KEY_TYPE_TRANSACTION => Ok(()),
        other => Err(BrokerError::InvalidRequest(format!(
            "coordinator key type {other} is not supported (groups and transactions only)"
        ))),
    };
    let answer = |key: StrBytes| {
        let mut c = Coordinator::default();
        c.key = key;
        match &outcome {
            Ok(()) => {
                c.node_id = BrokerId(broker.config.node_id);
                c.host = StrBytes::from_string(host.clone());
                c.port = port;
                c.error_message = None;
            }
            Err(e) => {
                c.node_id = BrokerId(-1);
                c.port = -1;
                c.error_code = e.code();
                c.error_message = e.message();
            }
        }
        c
    };
    let mut response = FindCoordinatorResponse::default();
    if request.version >= 4 {
        response.coordinators = body.coordinator_keys.into_iter().map(answer).collect();
    } else {
        let c = answer(body.key);
        response.error_code = c.error_code;
        response.error_message = c.error_message;
        response.node_id = c.node_id;
        response.host = c.host;
        response.port = c.port;
    }
    response
}
