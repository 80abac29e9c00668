//! Sluice's broker: the Kafka protocol server, one handler per API, the
//! cluster metadata state machine, and the partitions this node leads.
//!
//! Data flows one way: `server` (socket, frame, header) → `handlers` (one
//! module per API) → `broker` (topics and partitions) → `partition`
//! (`sluice_storage::PartitionLog` under a lock) → response.

pub mod admin;
pub mod blocking;
pub mod broker;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod fetch_sessions;
pub mod fetch_watchers;
pub mod fetch_wire;
pub mod fuzzing;
pub mod group;
pub mod handlers;
pub mod journal_rounds;
pub mod metadata;
pub mod migrate;
pub mod partition;
pub mod producer_ids;
pub mod record_batch;
pub mod rounds;
pub mod segment_writeback;
pub mod server;
pub mod sync_rounds;
pub mod topic_config;
pub mod txn;
pub mod wire;

pub use broker::Broker;
pub use config::{BrokerConfig, FsyncPolicy, FsyncScope};
