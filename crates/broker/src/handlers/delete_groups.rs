//! DeleteGroups: removes empty groups and their committed offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use crate::broker::Broker;
use crate::error::code_of;

pub async fn handle(broker: &Broker, body: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut response = DeleteGroupsResponse::default();
    for group in body.groups_names {
        let outcome = broker.groups.delete_group(broker, &group.0).await;
        let mut result = DeletableGroupResult::default();
        result.error_code = code_of(&outcome);
        result.group_id = group;
        response.results.push(result);
    }
    response
}
