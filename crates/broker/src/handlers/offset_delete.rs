//! OffsetDelete: removes a group's committed offsets for topics it does not
//! subscribe to (all of them once the group is empty).

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use crate::broker::Broker;

pub async fn handle(broker: &Broker, body: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let wanted: Vec<(String, i32)> = body
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let mut response = OffsetDeleteResponse::default();
    let results = match broker
        .groups
        .delete_offsets(broker, &body.group_id.0, wanted)
        .await
    {
        Ok(results) => results,
        Err(e) => {
            response.error_code = e.code();
            return response;
        }
    };
    let mut codes = results.into_iter().map(|r| r.err().map_or(0, |e| e.code()));
    for topic in body.topics {
        let mut out = OffsetDeleteResponseTopic::default();
        out.name = topic.name;
        for p in topic.partitions {
            let mut partition = OffsetDeleteResponsePartition::default();
            partition.partition_index = p.partition_index;
            partition.error_code = codes.next().unwrap_or(0);
            out.partitions.push(partition);
        }
        response.topics.push(out);
    }
    response
}
