//! SyncGroup: the leader hands in the assignment; every member gets its
//! part once the leader's has arrived.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::error::BrokerError;
use crate::group::Committer;
use crate::server::RequestContext;

pub async fn handle(
    broker: &Broker,
    request: &RequestContext,
    body: SyncGroupRequest,
) -> SyncGroupResponse {
    let member = Committer {
        member_id: body.member_id.to_string(),
        instance_id: body.group_instance_id.map(|s| s.to_string()),
        generation: body.generation_id,
    };
    let protocol_type = body.protocol_type.as_ref().map(|s| s.to_string());
    let protocol_name = body.protocol_name.as_ref().map(|s| s.to_string());
    let assignments = body
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let outcome = match broker.groups.sync(
        &body.group_id.0,
        &member,
        (protocol_type.as_deref(), protocol_name.as_deref()),
        assignments,
        &broker.state(),
    ) {
        Ok(reply) => reply
            .await
            .unwrap_or(Err(BrokerError::CoordinatorNotAvailable)),
        Err(e) => Err(e),
    };
    // A new stable generation is stored before anyone is told about it
    // by a later request (the members already waiting have their answer).
    broker.groups.store_group_changes(broker).await;
    let mut response = SyncGroupResponse::default();
    match outcome {
        Ok(assignment) => {
            response.assignment = assignment;
            if request.version >= 5 {
                match broker.groups.describe(&body.group_id.0) {
                    Some(description) => {
                        response.protocol_type =
                            Some(StrBytes::from_string(description.protocol_type));
                        response.protocol_name = Some(StrBytes::from_string(description.protocol));
                    }
                    // A classic member of a consumer group: the protocol it
                    // named (checked against the one it joined with).
                    None => {
                        response.protocol_type = protocol_type.map(StrBytes::from_string);
                        response.protocol_name = protocol_name.map(StrBytes::from_string);
                    }
                }
            }
        }
        Err(e) => response.error_code = e.code(),
    }
    response
}
