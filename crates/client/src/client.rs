//! A cluster-aware client: bootstrap, metadata, leaders, and the handful of
//! operations the command-line tools need (topics, produce, fetch, offsets).
//! It works against any Kafka broker, Apache Kafka included.

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ParseResponseErrorCode;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, FetchRequest,
    ListOffsetsRequest, MetadataRequest, MetadataResponse, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use sluice_storage::{records, BatchHeader};

use crate::connection::Connection;

/// Newest versions whose fields this code fills in. Later versions name
/// topics by id (Produce 13, Fetch 13, DeleteTopics 6).
const METADATA_MAX: i16 = 12;
const PRODUCE_MAX: i16 = 12;
const FETCH_MAX: i16 = 12;
const LIST_OFFSETS_MAX: i16 = 8;
const CREATE_TOPICS_MAX: i16 = 7;
const DELETE_TOPICS_MAX: i16 = 5;

/// ListOffsets' special timestamps.
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;

#[derive(Debug, Clone)]
pub struct PartitionInfo {
    pub index: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: String,
    pub id: String,
    pub partitions: Vec<PartitionInfo>,
}

/// A record as the command-line tools see it.
#[derive(Debug, Clone)]
pub struct ConsumedRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

pub struct Client {
    pub(crate) bootstrap: String,
    client_id: String,
    /// Broker id → host:port, from the last metadata.
    brokers: HashMap<i32, String>,
    connections: HashMap<String, Connection>,
    /// Partition leaders learned from metadata, until an error says otherwise.
    leaders: HashMap<(String, i32), i32>,
    /// Ask brokers to create missing topics named in metadata requests.
    auto_create_topics: bool,
}

impl Client {
    pub async fn connect(bootstrap: &str) -> Result<Client> {
        let mut client = Client {
            bootstrap: bootstrap.to_string(),
            client_id: "sluice-cli".to_string(),
            brokers: HashMap::new(),
            connections: HashMap::new(),
            leaders: HashMap::new(),
            auto_create_topics: false,
        };
        client.connection(bootstrap).await?;
        Ok(client)
    }

    /// Lets metadata lookups create missing topics where the broker allows
    /// it, as Kafka's console producer does.
    pub fn set_auto_create_topics(&mut self, on: bool) {
        self.auto_create_topics = on;
    }

    pub(crate) async fn connection(&mut self, address: &str) -> Result<&mut Connection> {
        if !self.connections.contains_key(address) {
            let connection = Connection::connect(address, &self.client_id).await?;
            self.connections.insert(address.to_string(), connection);
        }
        self.connections
            .get_mut(address)
            .ok_or_else(|| anyhow!("connection to {address} vanished"))
    }

    pub(crate) async fn any_broker(&mut self) -> Result<&mut Connection> {
        let address = self.bootstrap.clone();
        self.connection(&address).await
    }

    async fn broker(&mut self, node: i32) -> Result<&mut Connection> {
        let address = self
            .brokers
            .get(&node)
            .cloned()
            .ok_or_else(|| anyhow!("broker {node} is not in the cluster metadata"))?;
        self.connection(&address).await
    }

    /// Metadata for `topics` (all topics if `None`).
    pub async fn metadata(&mut self, topics: Option<&[String]>) -> Result<MetadataResponse> {
        let mut request = MetadataRequest::default();
        request.topics = topics.map(|names| {
            names
                .iter()
                .map(|n| {
                    let mut t = MetadataRequestTopic::default();
                    t.name = Some(topic_name(n));
                    t
                })
                .collect()
        });
        request.allow_auto_topic_creation = self.auto_create_topics;
        let response = self
            .any_broker()
            .await?
            .send(&request, METADATA_MAX)
            .await?;
        for broker in &response.brokers {
            self.brokers.insert(
                broker.node_id.0,
                format!("{}:{}", broker.host.as_str(), broker.port),
            );
        }
        Ok(response)
    }

    pub async fn list_topics(&mut self) -> Result<Vec<TopicInfo>> {
        let response = self.metadata(None).await?;
        let mut topics: Vec<TopicInfo> = response
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .map(topic_info)
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    pub async fn describe_topic(&mut self, name: &str) -> Result<TopicInfo> {
        let response = self.metadata(Some(&[name.to_string()])).await?;
        let topic = response
            .topics
            .first()
            .ok_or_else(|| anyhow!("no metadata for topic '{name}'"))?;
        check(topic.error_code, &format!("topic '{name}'"))?;
        Ok(topic_info(topic))
    }

    pub async fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
    ) -> Result<()> {
        let mut topic = CreatableTopic::default();
        topic.name = topic_name(name);
        topic.num_partitions = partitions;
        topic.replication_factor = replication_factor;
        topic.configs = configs
            .iter()
            .map(|(k, v)| {
                let mut c = CreatableTopicConfig::default();
                c.name = StrBytes::from_string(k.clone());
                c.value = Some(StrBytes::from_string(v.clone()));
                c
            })
            .collect();
        let mut request = CreateTopicsRequest::default();
        request.topics = vec![topic];
        request.timeout_ms = 30_000;
        let response = self
            .any_broker()
            .await?
            .send(&request, CREATE_TOPICS_MAX)
            .await?;
        let result = response
            .topics
            .first()
            .ok_or_else(|| anyhow!("empty CreateTopics response"))?;
        check_with_message(
            result.error_code,
            result.error_message.as_deref(),
            &format!("creating topic '{name}'"),
        )
    }

    pub async fn delete_topic(&mut self, name: &str) -> Result<()> {
        let mut request = DeleteTopicsRequest::default();
        request.topic_names = vec![topic_name(name)];
        request.timeout_ms = 30_000;
        let response = self
            .any_broker()
            .await?
            .send(&request, DELETE_TOPICS_MAX)
            .await?;
        let result = response
            .responses
            .first()
            .ok_or_else(|| anyhow!("empty DeleteTopics response"))?;
        check_with_message(
            result.error_code,
            result.error_message.as_deref(),
            &format!("deleting topic '{name}'"),
        )
    }

    /// Grows a topic to `count` partitions (CreatePartitions).
    pub async fn add_partitions(&mut self, name: &str, count: i32) -> Result<()> {
        let mut topic = CreatePartitionsTopic::default();
        topic.name = topic_name(name);
        topic.count = count;
        topic.assignments = None;
        let mut request = CreatePartitionsRequest::default();
        request.topics = vec![topic];
        request.timeout_ms = 30_000;
        let response = self.any_broker().await?.send(&request, 3).await?;
        let result = response
            .results
            .first()
            .ok_or_else(|| anyhow!("empty CreatePartitions response"))?;
        // Forget leaders: the topic has new partitions.
        self.leaders.retain(|(t, _), _| t != name);
        check_with_message(
            result.error_code,
            result.error_message.as_deref(),
            &format!("growing topic '{name}' to {count} partitions"),
        )
    }

    async fn leader(&mut self, topic: &str, partition: i32) -> Result<i32> {
        if let Some(&leader) = self.leaders.get(&(topic.to_string(), partition)) {
            return Ok(leader);
        }
        let info = self.describe_topic(topic).await?;
        let p = info
            .partitions
            .iter()
            .find(|p| p.index == partition)
            .ok_or_else(|| anyhow!("topic '{topic}' has no partition {partition}"))?;
        if p.leader < 0 {
            bail!("partition {partition} of '{topic}' has no leader right now");
        }
        self.leaders
            .insert((topic.to_string(), partition), p.leader);
        Ok(p.leader)
    }

    /// Sends one batch of `(key, value)` records to a partition's leader and
    /// returns the base offset assigned (`None` with acks=0).
    pub async fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        records: &[(Option<Bytes>, Bytes)],
        acks: i16,
        compression: Compression,
    ) -> Result<Option<i64>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder starts a new batch wherever offset minus
                // sequence changes; this keeps one batch whose base
                // sequence is -1 (no idempotence).
                sequence: i as i32 - 1,
                timestamp: now,
                key: key.clone(),
                value: Some(value.clone()),
                headers: Default::default(),
            })
            .collect();
        let mut batch = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut batch,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )?;
        let mut data = PartitionProduceData::default();
        data.index = partition;
        data.records = Some(batch.freeze());
        let mut topic_data = TopicProduceData::default();
        topic_data.name = topic_name(topic);
        topic_data.partition_data = vec![data];
        let mut request = ProduceRequest::default();
        request.acks = acks;
        request.timeout_ms = 30_000;
        request.topic_data = vec![topic_data];

        let leader = self.leader(topic, partition).await?;
        let connection = self.broker(leader).await?;
        if acks == 0 {
            connection.send_oneway(&request, PRODUCE_MAX).await?;
            return Ok(None);
        }
        let response = connection.send(&request, PRODUCE_MAX).await?;
        let result = response
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .ok_or_else(|| anyhow!("empty Produce response"))?;
        check_with_message(
            result.error_code,
            result.error_message.as_deref(),
            &format!("producing to '{topic}' partition {partition}"),
        )?;
        Ok(Some(result.base_offset))
    }

    /// The earliest (`EARLIEST`), latest (`LATEST`) or first offset at a
    /// timestamp of a partition.
    pub async fn list_offset(
        &mut self,
        topic: &str,
        partition: i32,
        timestamp: i64,
    ) -> Result<i64> {
        let mut query = ListOffsetsPartition::default();
        query.partition_index = partition;
        query.timestamp = timestamp;
        query.current_leader_epoch = -1;
        let mut t = ListOffsetsTopic::default();
        t.name = topic_name(topic);
        t.partitions = vec![query];
        let mut request = ListOffsetsRequest::default();
        request.replica_id = BrokerId(-1);
        request.topics = vec![t];
        let leader = self.leader(topic, partition).await?;
        let response = self
            .broker(leader)
            .await?
            .send(&request, LIST_OFFSETS_MAX)
            .await?;
        let result = response
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| anyhow!("empty ListOffsets response"))?;
        check(
            result.error_code,
            &format!("offsets of '{topic}' partition {partition}"),
        )?;
        Ok(result.offset)
    }

    /// Fetches records from `offset`, waiting up to `max_wait_ms` for some.
    /// Returns the records at or after `offset` and the high watermark.
    pub async fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
    ) -> Result<(Vec<ConsumedRecord>, i64)> {
        let leader = self.leader(topic, partition).await?;
        let result = self
            .fetch_from(leader, topic, partition, offset, max_wait_ms)
            .await;
        if result.is_err() {
            // Leadership may have moved; look it up again next time.
            self.leaders.remove(&(topic.to_string(), partition));
        }
        result
    }

    async fn fetch_from(
        &mut self,
        leader: i32,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
    ) -> Result<(Vec<ConsumedRecord>, i64)> {
        let mut p = FetchPartition::default();
        p.partition = partition;
        p.fetch_offset = offset;
        p.partition_max_bytes = 1024 * 1024;
        p.current_leader_epoch = -1;
        p.log_start_offset = -1;
        let mut t = FetchTopic::default();
        t.topic = topic_name(topic);
        t.partitions = vec![p];
        let mut request = FetchRequest::default();
        request.replica_id = BrokerId(-1);
        request.max_wait_ms = max_wait_ms;
        request.min_bytes = 1;
        request.max_bytes = 50 * 1024 * 1024;
        request.session_epoch = -1;
        request.topics = vec![t];
        let response = self.broker(leader).await?.send(&request, FETCH_MAX).await?;
        check(response.error_code, "fetch")?;
        let data = response
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| anyhow!("empty Fetch response"))?;
        check(
            data.error_code,
            &format!("fetching '{topic}' partition {partition}"),
        )?;
        let mut records = Vec::new();
        if let Some(bytes) = data.records.clone() {
            let mut rest = &bytes[..];
            while let Ok(header) = BatchHeader::parse(rest) {
                // A batch cut off at the end of the response is skipped; the
                // next fetch starts at it.
                let Some(whole) = rest.get(..header.total_size()) else {
                    break;
                };
                decode_batch(whole, partition, offset, &mut records)?;
                rest = &rest[header.total_size()..];
            }
        }
        Ok((records, data.high_watermark))
    }
}

/// Largest size a fetched batch may inflate to in this client.
const MAX_INFLATED_BATCH: usize = 256 * 1024 * 1024;

/// Appends the data records of one whole batch at or after `from` to `out`,
/// with the same bounded decoding the broker uses: a hostile or damaged
/// batch is an error, never an allocation sized by a count it claims.
fn decode_batch(
    batch: &[u8],
    partition: i32,
    from: i64,
    out: &mut Vec<ConsumedRecord>,
) -> Result<()> {
    let header = sluice_storage::batch::validate(batch).context("invalid fetched batch")?;
    if header.is_control() {
        return Ok(());
    }
    let codec = records::Codec::from_id(header.compression())?;
    let section = records::inflate(
        codec,
        &batch[sluice_storage::batch::HEADER_SIZE..],
        MAX_INFLATED_BATCH,
    )?;
    for record in records::Records::new(&section, header.records_count) {
        let record = record.context("cannot decode a fetched record")?;
        let offset = header.base_offset + i64::from(record.offset_delta);
        if offset < from {
            continue;
        }
        let timestamp = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp.saturating_add(record.timestamp_delta)
        };
        out.push(ConsumedRecord {
            partition,
            offset,
            timestamp,
            key: record.key.map(Bytes::copy_from_slice),
            value: record.value.map(Bytes::copy_from_slice),
        });
    }
    Ok(())
}

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

fn topic_info(
    topic: &kafka_protocol::messages::metadata_response::MetadataResponseTopic,
) -> TopicInfo {
    let mut partitions: Vec<PartitionInfo> = topic
        .partitions
        .iter()
        .map(|p| PartitionInfo {
            index: p.partition_index,
            leader: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
            isr: p.isr_nodes.iter().map(|b| b.0).collect(),
        })
        .collect();
    partitions.sort_by_key(|p| p.index);
    TopicInfo {
        name: topic
            .name
            .as_ref()
            .map(|n| n.0.to_string())
            .unwrap_or_default(),
        id: topic.topic_id.to_string(),
        partitions,
    }
}

pub(crate) fn check(code: i16, what: &str) -> Result<()> {
    check_with_message(code, None, what)
}

fn check_with_message(code: i16, message: Option<&str>, what: &str) -> Result<()> {
    match code.err() {
        None => Ok(()),
        Some(error) => match message {
            Some(m) if !m.is_empty() => bail!("{what}: {error:?} ({m})"),
            _ => bail!("{what}: {error:?}"),
        },
    }
}
