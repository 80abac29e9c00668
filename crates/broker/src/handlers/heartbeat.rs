//! Heartbeat: keeps a member's session alive; REBALANCE_IN_PROGRESS tells
//! it to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::broker::Broker;
use crate::error::code_of;
use crate::group::Committer;

pub fn handle(broker: &Broker, body: HeartbeatRequest) -> HeartbeatResponse {
    let member = Committer {
        member_id: body.member_id.to_string(),
        instance_id: body.group_instance_id.map(|s| s.to_string()),
        generation: body.generation_id,
    };
    let mut response = HeartbeatResponse::default();
    response.error_code = code_of(&broker.groups.heartbeat(&body.group_id.0, &member));
    response
}
