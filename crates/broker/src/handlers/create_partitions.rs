//! CreatePartitions: grow a topic to a larger partition count.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use crate::broker::Broker;
use crate::error::{BrokerError, Result};

pub fn handle(broker: &Broker, body: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let mut response = CreatePartitionsResponse::default();
    for topic in &body.topics {
        let name = topic.name.0.as_str();
        let outcome: Result<()> = (|| {
            if let Some(assignments) = &topic.assignments {
                let current = broker
                    .state()
                    .topic(name)
                    .map_or(0, |t| t.partitions.len() as i32);
                if assignments.len() as i32 != topic.count - current {
                    return Err(BrokerError::InvalidReplicaAssignment(format!(
                        "{} assignments given for {} new partitions",
                        assignments.len(),
                        topic.count - current
                    )));
                }
                for assignment in assignments {
                    let ids: Vec<i32> = assignment.broker_ids.iter().map(|b| b.0).collect();
                    broker.check_assignment(&ids)?;
                }
            }
            broker.add_partitions(name, topic.count, body.validate_only)
        })();
        let mut result = CreatePartitionsTopicResult::default();
        // Kafka sends a null message on success.
        result.error_message = None;
        result.name = topic.name.clone();
        if let Err(e) = outcome {
            result.error_code = e.code();
            result.error_message = e.message();
        }
        response.results.push(result);
    }
    response
}
