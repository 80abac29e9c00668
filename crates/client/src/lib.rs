//! A small Kafka protocol client for Sluice's command-line tools and tests:
//! connections with version negotiation, cluster metadata, topic admin,
//! produce, fetch and offsets, plus Kafka's key partitioner. It speaks to
//! any Kafka-compatible broker.

pub mod client;
pub mod connection;
pub mod group_consumer;
pub mod groups;
pub use sluice_storage::murmur2;

pub use client::{Client, ConsumedRecord, PartitionInfo, TopicInfo, EARLIEST, LATEST};
pub use connection::Connection;
pub use group_consumer::GroupConsumer;
pub use groups::{GroupInfo, GroupMemberInfo, GroupSummary};
pub use kafka_protocol::records::Compression;
pub use sluice_storage::murmur2::partition_for_key;
