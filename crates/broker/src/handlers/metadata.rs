//! Metadata: the brokers, and the topics asked for with their partitions and
//! leaders. Asking for a missing topic creates it when auto-creation is on.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::broker::{validate_topic_name, Broker};
use crate::error::BrokerError;
use crate::metadata::TopicMeta;
use crate::server::RequestContext;

/// Kafka's value for "authorized operations not requested".
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Without ACLs every operation on a topic is allowed: READ, WRITE, CREATE,
/// DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS (Kafka's
/// AclOperation codes 3 to 8, 10 and 11).
pub const TOPIC_OPERATIONS: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);
/// On the cluster: CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS,
/// ALTER_CONFIGS, IDEMPOTENT_WRITE.
pub const CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

pub fn handle(
    broker: &Broker,
    request: &RequestContext,
    body: MetadataRequest,
) -> MetadataResponse {
    let version = request.version;
    // v0 has no null: an empty list means all topics.
    let wanted = match body.topics {
        Some(topics) if !(version == 0 && topics.is_empty()) => Some(topics),
        _ => None,
    };
    let allow_auto_create = version < 4 || body.allow_auto_topic_creation;
    let topics = match wanted {
        None => broker
            .state()
            .topics
            .values()
            .map(|t| describe_topic(t, body.include_topic_authorized_operations))
            .collect(),
        Some(requested) => requested
            .into_iter()
            .map(|t| match t.name {
                Some(name) => lookup_by_name(
                    broker,
                    name.0.as_str(),
                    allow_auto_create,
                    body.include_topic_authorized_operations,
                ),
                None => lookup_by_id(broker, t.topic_id, body.include_topic_authorized_operations),
            })
            .collect(),
    };

    let mut response = MetadataResponse::default();
    response.brokers = vec![this_broker(broker)];
    response.cluster_id = Some(StrBytes::from_string(broker.state().cluster_id.clone()));
    response.controller_id = BrokerId(broker.config.node_id);
    response.topics = topics;
    response.cluster_authorized_operations = if body.include_cluster_authorized_operations {
        CLUSTER_OPERATIONS
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    response
}

pub fn this_broker(broker: &Broker) -> MetadataResponseBroker {
    let (host, port) = broker.config.advertised();
    let mut node = MetadataResponseBroker::default();
    node.node_id = BrokerId(broker.config.node_id);
    node.host = StrBytes::from_string(host);
    node.port = port;
    node
}

fn lookup_by_name(
    broker: &Broker,
    name: &str,
    allow_auto_create: bool,
    with_operations: bool,
) -> MetadataResponseTopic {
    if let Some(topic) = broker.state().topic(name) {
        return describe_topic(topic, with_operations);
    }
    let result = validate_topic_name(name).and_then(|()| {
        if allow_auto_create {
            broker.auto_create_topic(name)
        } else {
            Err(BrokerError::UnknownTopicOrPartition)
        }
    });
    match result {
        Ok(topic) => describe_topic(&topic, with_operations),
        Err(e) => topic_error(Some(name), Uuid::nil(), e.code()),
    }
}

fn lookup_by_id(broker: &Broker, id: Uuid, with_operations: bool) -> MetadataResponseTopic {
    match broker.state().topic_by_id(id) {
        Some(topic) => describe_topic(topic, with_operations),
        None => topic_error(None, id, BrokerError::UnknownTopicId.code()),
    }
}

fn topic_error(name: Option<&str>, id: Uuid, code: i16) -> MetadataResponseTopic {
    let mut topic = MetadataResponseTopic::default();
    topic.error_code = code;
    topic.name = name.map(|n| TopicName(StrBytes::from_string(n.to_string())));
    topic.topic_id = id;
    topic.topic_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
    topic
}

pub fn describe_topic(topic: &TopicMeta, with_operations: bool) -> MetadataResponseTopic {
    let mut out = MetadataResponseTopic::default();
    out.name = Some(TopicName(StrBytes::from_string(topic.name.clone())));
    out.topic_id = topic.id;
    out.is_internal = crate::group::is_internal_topic(&topic.name);
    out.partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let mut partition = MetadataResponsePartition::default();
            partition.partition_index = index as i32;
            partition.leader_id = BrokerId(p.leader);
            partition.leader_epoch = p.leader_epoch;
            partition.replica_nodes = p.replicas.iter().copied().map(BrokerId).collect();
            partition.isr_nodes = p.isr.iter().copied().map(BrokerId).collect();
            partition
        })
        .collect();
    out.topic_authorized_operations = if with_operations {
        TOPIC_OPERATIONS
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    out
}
