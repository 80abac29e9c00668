//! Broker settings: defaults, a TOML file, `SLUICE_*` environment variables
//! and command-line flags, in increasing order of precedence. Every limit the
//! broker enforces is one of these fields.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// When appended data is forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// fsync before acknowledging a produce request (concurrent requests
    /// share one fsync). A power failure loses nothing acknowledged.
    Always,
    /// fsync every `fsync_interval_ms`. A power failure can lose up to that
    /// interval of acknowledged data; a broker crash loses nothing.
    Interval,
    /// Never fsync; the OS writes back when it wants (Kafka's default). A
    /// power failure can lose whatever the page cache held; a broker crash
    /// loses nothing.
    Never,
}

/// What one round of syncs under `fsync = "always"` covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncScope {
    /// Every batch is also copied to a write-ahead journal shared by all
    /// partitions, and one fdatasync of the journal makes every batch
    /// appended by then durable (`sluice_storage::journal`); the segments
    /// are synced in the background at each checkpoint. A round's cost
    /// does not grow with the partitions written.
    Journal,
    /// One syncfs of the data directory's filesystem makes every partition
    /// written since the last round durable (`sync_rounds.rs`): its cost
    /// hardly grows with the partitions written. It also flushes whatever
    /// else is dirty on that filesystem.
    Filesystem,
    /// An fdatasync per partition written (concurrent producers of one
    /// partition share it): for a data directory on a filesystem other
    /// busy writers share.
    Partition,
}

/// Where the broker asks what became of a producer's local transaction
/// (the transaction check-back): for transactional ids starting with
/// `transactional_id_prefix`, an HTTP POST to `url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionChecker {
    pub transactional_id_prefix: String,
    pub url: String,
}

/// What the broker does with a transaction whose checks ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckDefault {
    Abort,
    Commit,
}

/// All broker settings. Field names are the TOML keys; the environment
/// variable for a field is `SLUICE_` followed by its name in capitals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Address the Kafka listener binds.
    pub listen: String,
    /// host:port that clients are told to connect to (Metadata). Defaults to
    /// `listen`; set it when clients reach the broker by another address.
    pub advertised_listener: Option<String>,
    /// Directory holding topic metadata and partition logs.
    pub data_dir: PathBuf,
    /// This broker's node id in Metadata responses.
    pub node_id: i32,
    /// Connections accepted at once; further ones are closed on accept.
    pub max_connections: usize,
    /// A connection with no request for this long is closed (Kafka's
    /// connections.max.idle.ms); so is one that takes this long to send a
    /// frame it has started.
    pub connection_idle_timeout_ms: u64,
    /// Largest request frame accepted (Kafka's socket.request.max.bytes);
    /// a larger length prefix closes the connection.
    pub max_request_bytes: usize,
    /// Default largest record batch a topic accepts (topic config
    /// max.message.bytes); larger batches get MESSAGE_TOO_LARGE.
    pub max_message_bytes: usize,
    /// Create a topic when a client asks Metadata for it or produces to it.
    pub auto_create_topics: bool,
    /// Most partitions one topic may have (CreateTopics, CreatePartitions).
    pub max_partitions_per_topic: usize,
    /// Partitions of an auto-created topic, and of CreateTopics asking for -1.
    pub default_partitions: i32,
    /// When appended data is fsynced: "always", "interval" or "never".
    pub fsync: FsyncPolicy,
    /// Period of the fsync under the "interval" policy.
    pub fsync_interval_ms: u64,
    /// Under "always": "journal" (one fdatasync of a shared write-ahead
    /// journal per round), "filesystem" (one syncfs per round for every
    /// partition) or "partition" (an fdatasync per partition).
    pub fsync_scope: FsyncScope,
    /// Size of each journal file (`fsync_scope = "journal"`), a multiple of
    /// the journal's 4096-byte block; files wholly before the last
    /// checkpoint are reused or deleted.
    pub journal_file_bytes: u64,
    /// Journal bytes written since the last checkpoint that start the next
    /// one: bounds the journal's size on disk and what a restart replays.
    pub journal_checkpoint_bytes: u64,
    /// Longest time between two checkpoints under `always` and `interval`:
    /// the segments synced, after which a restart validates only what each
    /// partition gained since, and the journal forgets what came before.
    pub checkpoint_interval_ms: u64,
    /// Under `always` and `interval`: bytes a partition's active segment
    /// gains before their writeback to the disk is started (without
    /// waiting, and without making them durable), so that segments reach
    /// the disk steadily instead of all at the next checkpoint or fsync,
    /// where the journal's flush would wait behind them. 0 leaves the
    /// writeback to the kernel.
    pub segment_writeback_bytes: u64,
    /// Default segment.bytes: a segment file is rolled before this size.
    pub segment_bytes: u64,
    /// Default segment.ms: a segment is rolled when its first batch is this old.
    pub segment_ms: i64,
    /// Default retention.ms: segments older than this are deleted; -1 keeps forever.
    pub retention_ms: i64,
    /// Default retention.bytes: per-partition size above which old segments
    /// are deleted; -1 is no limit.
    pub retention_bytes: i64,
    /// How often retention is applied.
    pub retention_check_interval_ms: u64,
    /// Default index.interval.bytes: log bytes between two index entries.
    pub index_interval_bytes: u64,
    /// Threads that open and recover partition logs at start; 0 is one per
    /// CPU core. Recovery after a crash reads every active segment, so this
    /// bounds how long a restart takes.
    pub recovery_threads: usize,
    /// Largest size a compressed batch may inflate to when it is validated
    /// (on produce) or read back (ListOffsets by timestamp); a batch that
    /// inflates further gets MESSAGE_TOO_LARGE. Bounds the memory a small
    /// compressed batch can make the broker take.
    pub max_uncompressed_batch_bytes: usize,
    /// Most topics the broker holds; creating more (CreateTopics or
    /// auto-creation) fails with a policy violation.
    pub max_topics: usize,
    /// Most partitions the broker holds across all topics. Each partition
    /// keeps files open and memory for its indexes.
    pub max_partitions: usize,
    /// Bytes of request frames all connections together may hold in memory
    /// at once (Kafka's queued.max.request.bytes). A frame's share is taken
    /// when its size is read; a connection whose next frame does not fit
    /// waits for others to finish, and never allocates past the budget. A
    /// produce request keeps its share until its response is ready (under
    /// fsync = "always", until its batches are durable), so the budget also
    /// bounds the journal's copies of bytes not yet written.
    /// At least max_request_bytes.
    pub max_inflight_request_bytes: usize,
    /// Produce requests of one connection appended and waiting for their
    /// sync at once; the connection reads no further request beyond this.
    pub max_pipelined_requests: usize,
    /// Incremental fetch sessions the broker keeps (Kafka's
    /// max.incremental.fetch.session.cache.slots); 0 turns them off and
    /// every fetch is a full one.
    pub max_fetch_sessions: usize,
    /// A session unused for this long may give its place to a new one when
    /// the cache is full (Kafka's min.incremental.fetch.session.eviction.ms).
    pub fetch_session_eviction_ms: u64,
    /// A response that a client does not read within this long closes its
    /// connection, so a stalled reader cannot hold memory or file regions.
    pub connection_write_timeout_ms: u64,
    /// File descriptors the broker asks for at start (its soft
    /// RLIMIT_NOFILE); 0 raises it to the hard limit. Every connection and
    /// every segment's three files take one each.
    pub max_open_files: u64,
    /// Shortest session timeout a group member may ask for.
    pub group_min_session_timeout_ms: u64,
    /// Longest session timeout a group member may ask for.
    pub group_max_session_timeout_ms: u64,
    /// A new group waits this long after its first member joins (extended
    /// by each member that joins meanwhile) before its first rebalance
    /// completes, so that members started together land in one generation.
    /// Kafka's default is 3000 ms; 300 ms settles a group of three members
    /// started together in well under a second.
    pub group_initial_rebalance_delay_ms: u64,
    /// Most members a group may have (GROUP_MAX_SIZE_REACHED above).
    pub group_max_size: usize,
    /// A member of a consumer group (KIP-848 protocol) that sends no
    /// heartbeat for this long is removed and its partitions reassigned
    /// (Kafka's group.consumer.session.timeout.ms, 45 s).
    pub group_consumer_session_timeout_ms: u64,
    /// How often a member of a settled consumer group heartbeats (Kafka's
    /// group.consumer.heartbeat.interval.ms is 5000). A member learns of a
    /// rebalance on its next heartbeat, so this bounds how long a new
    /// member waits for its first partitions.
    pub group_consumer_heartbeat_interval_ms: u64,
    /// How often members heartbeat while their group moves partitions, so
    /// a handover takes round trips rather than heartbeat intervals.
    pub group_consumer_reconcile_heartbeat_interval_ms: u64,
    /// Most groups the coordinator holds; a new one beyond gets
    /// POLICY_VIOLATION.
    pub max_groups: usize,
    /// Partitions of the internal `__consumer_offsets` topic, created on
    /// first use; a group lives on one of them.
    pub offsets_topic_partitions: i32,
    /// A partition of `__consumer_offsets` is compacted (its live records
    /// rewritten, older segments deleted) once it took at least this many
    /// records since the last time, and more than it holds live.
    pub offsets_compaction_min_records: usize,
    /// Longest metadata string a committed offset may carry.
    pub offset_metadata_max_bytes: usize,
    /// Committed offsets of a group with no members expire this long after
    /// their last commit (Kafka's offsets.retention.minutes, 7 days).
    pub offsets_retention_minutes: i64,
    /// How often expired offsets are looked for.
    pub offsets_retention_check_interval_ms: u64,
    /// An idempotent producer that wrote nothing to a partition for this
    /// long is forgotten there (Kafka's producer.id.expiration.ms, 1 day).
    pub producer_id_expiration_ms: i64,
    /// Partitions of `__transaction_state`; a transactional id lives on
    /// one, chosen as Kafka does.
    pub transaction_state_topic_partitions: i32,
    /// Longest transaction timeout a producer may ask for (Kafka's
    /// transaction.max.timeout.ms, 15 minutes).
    pub transaction_max_timeout_ms: i32,
    /// Most transactional ids the coordinator holds.
    pub max_transactional_ids: usize,
    /// The transaction protocol offered to clients, as Kafka's finalized
    /// `transaction.version` feature: 2 (Transactions V2, KIP-890: an epoch
    /// bump per transaction, partitions added by the first write) or 1
    /// (the original protocol only; EndTxn stays below v5).
    pub transaction_version: i16,
    /// Check-back endpoints, by transactional id prefix (the longest
    /// matching prefix wins). A transaction with one is decided by its
    /// answers rather than aborted at its timeout.
    pub transaction_checkers: Vec<TransactionChecker>,
    /// How long a transaction may stay open before its first check
    /// (RocketMQ's transactionTimeOut).
    pub transaction_check_after_ms: u64,
    /// Time between checks of one transaction.
    pub transaction_check_interval_ms: u64,
    /// Checks before `transaction_check_default` applies.
    pub transaction_check_max: u32,
    /// What happens to a transaction whose checks ran out: abort or commit.
    pub transaction_check_default: CheckDefault,
    /// How long one check may take before it counts as "unknown".
    pub transaction_check_timeout_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: "127.0.0.1:9092".to_string(),
            advertised_listener: None,
            data_dir: PathBuf::from("./data"),
            node_id: 1,
            max_connections: 4096,
            connection_idle_timeout_ms: 10 * 60 * 1000,
            max_request_bytes: 100 * 1024 * 1024,
            max_message_bytes: 1_048_588,
            auto_create_topics: true,
            max_partitions_per_topic: 10_000,
            default_partitions: 1,
            fsync: FsyncPolicy::Always,
            fsync_interval_ms: 1000,
            fsync_scope: FsyncScope::Journal,
            journal_file_bytes: 64 * 1024 * 1024,
            journal_checkpoint_bytes: 16 * 1024 * 1024,
            checkpoint_interval_ms: 2000,
            segment_writeback_bytes: 256 * 1024,
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            retention_check_interval_ms: 5 * 60 * 1000,
            index_interval_bytes: 4096,
            recovery_threads: 0,
            max_uncompressed_batch_bytes: 64 * 1024 * 1024,
            max_topics: 10_000,
            max_partitions: 20_000,
            max_inflight_request_bytes: 256 * 1024 * 1024,
            max_pipelined_requests: 256,
            max_fetch_sessions: 1000,
            fetch_session_eviction_ms: 120_000,
            connection_write_timeout_ms: 60_000,
            max_open_files: 0,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_initial_rebalance_delay_ms: 300,
            group_max_size: 1000,
            offsets_compaction_min_records: 100_000,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_heartbeat_interval_ms: 1000,
            group_consumer_reconcile_heartbeat_interval_ms: 100,
            max_groups: 100_000,
            offsets_topic_partitions: 50,
            offset_metadata_max_bytes: 4096,
            offsets_retention_minutes: 7 * 24 * 60,
            producer_id_expiration_ms: 24 * 60 * 60 * 1000,
            transaction_state_topic_partitions: 50,
            transaction_max_timeout_ms: 15 * 60 * 1000,
            max_transactional_ids: 100_000,
            transaction_version: 2,
            transaction_checkers: Vec::new(),
            transaction_check_after_ms: 6_000,
            transaction_check_interval_ms: 30_000,
            transaction_check_max: 15,
            transaction_check_default: CheckDefault::Abort,
            transaction_check_timeout_ms: 5_000,
            offsets_retention_check_interval_ms: 600_000,
        }
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("invalid setting {name}: {message}")]
    Invalid { name: &'static str, message: String },
}

impl BrokerConfig {
    /// The number of recovery threads to use: the setting, or one per core.
    pub fn recovery_threads(&self) -> usize {
        if self.recovery_threads > 0 {
            return self.recovery_threads;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// Defaults, overlaid by the TOML file if given, then by `SLUICE_*`
    /// environment variables.
    pub fn load(file: Option<&Path>) -> Result<BrokerConfig, ConfigError> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str::<toml::Table>(&text).map_err(|e| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?
            }
            None => toml::Table::new(),
        };
        for key in Self::keys() {
            let name = format!("SLUICE_{}", key.to_uppercase());
            if let Ok(raw) = std::env::var(&name) {
                table.insert(key, env_value(&raw));
            }
        }
        let config: BrokerConfig = table.try_into().map_err(|e: toml::de::Error| match file {
            Some(path) => ConfigError::Parse {
                path: path.to_path_buf(),
                message: e.message().to_string(),
            },
            None => ConfigError::Env {
                name: "SLUICE_*".to_string(),
                message: e.message().to_string(),
            },
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Every setting's name.
    pub fn keys() -> Vec<String> {
        let mut keys: Vec<String> = toml::Table::try_from(BrokerConfig::default())
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        // Optional settings are absent from a serialized default.
        keys.push("advertised_listener".to_string());
        keys
    }

    /// Checks values that the types alone do not constrain.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |name, message: &str| {
            Err(ConfigError::Invalid {
                name,
                message: message.to_string(),
            })
        };
        if self.listen.parse::<SocketAddr>().is_err() {
            return invalid("listen", "expected HOST:PORT with a numeric IP address");
        }
        if let Some(adv) = &self.advertised_listener {
            if split_host_port(adv).is_none() {
                return invalid("advertised_listener", "expected HOST:PORT");
            }
        }
        if self.max_connections == 0 {
            return invalid("max_connections", "must be at least 1");
        }
        if self.connection_idle_timeout_ms == 0 {
            return invalid("connection_idle_timeout_ms", "must be at least 1");
        }
        if self.max_request_bytes < 1024 || self.max_request_bytes > i32::MAX as usize {
            return invalid("max_request_bytes", "must be between 1024 and 2147483647");
        }
        if self.max_message_bytes == 0 || self.max_message_bytes > self.max_request_bytes {
            return invalid(
                "max_message_bytes",
                "must be between 1 and max_request_bytes",
            );
        }
        if self.max_partitions_per_topic == 0 || self.max_partitions_per_topic > i32::MAX as usize {
            return invalid(
                "max_partitions_per_topic",
                "must be between 1 and 2147483647",
            );
        }
        if self.default_partitions < 1
            || self.default_partitions as usize > self.max_partitions_per_topic
        {
            return invalid(
                "default_partitions",
                "must be between 1 and max_partitions_per_topic",
            );
        }
        if self.fsync_interval_ms == 0 {
            return invalid("fsync_interval_ms", "must be at least 1");
        }
        if self.segment_bytes < 1024 || self.segment_bytes > i32::MAX as u64 {
            return invalid("segment_bytes", "must be between 1024 and 2147483647");
        }
        if self.retention_check_interval_ms == 0 {
            return invalid("retention_check_interval_ms", "must be at least 1");
        }
        if self.max_uncompressed_batch_bytes < self.max_message_bytes {
            return invalid(
                "max_uncompressed_batch_bytes",
                "must be at least max_message_bytes",
            );
        }
        if self.max_topics == 0 {
            return invalid("max_topics", "must be at least 1");
        }
        if self.max_partitions == 0 {
            return invalid("max_partitions", "must be at least 1");
        }
        if self.journal_file_bytes < 64 * 1024 {
            return invalid("journal_file_bytes", "must be at least 65536");
        }
        if !self
            .journal_file_bytes
            .is_multiple_of(sluice_storage::journal::BLOCK as u64)
        {
            return invalid("journal_file_bytes", "must be a multiple of 4096");
        }
        if self.journal_checkpoint_bytes == 0 {
            return invalid("journal_checkpoint_bytes", "must be at least 1");
        }
        if self.checkpoint_interval_ms == 0 {
            return invalid("checkpoint_interval_ms", "must be at least 1");
        }
        if self.max_pipelined_requests == 0 {
            return invalid("max_pipelined_requests", "must be at least 1");
        }
        if self.max_inflight_request_bytes < self.max_request_bytes {
            return invalid(
                "max_inflight_request_bytes",
                "must be at least max_request_bytes, or no large frame could ever be read",
            );
        }
        if self.connection_write_timeout_ms == 0 {
            return invalid("connection_write_timeout_ms", "must be at least 1");
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return invalid(
                "group_min_session_timeout_ms",
                "must not exceed group_max_session_timeout_ms",
            );
        }
        if self.group_max_size == 0 {
            return invalid("group_max_size", "must be at least 1");
        }
        if self.group_consumer_heartbeat_interval_ms == 0
            || self.group_consumer_reconcile_heartbeat_interval_ms == 0
        {
            return invalid(
                "group_consumer_heartbeat_interval_ms",
                "heartbeat intervals must be at least 1",
            );
        }
        if self.group_consumer_heartbeat_interval_ms >= self.group_consumer_session_timeout_ms {
            return invalid(
                "group_consumer_heartbeat_interval_ms",
                "must be below group_consumer_session_timeout_ms",
            );
        }
        if self.transaction_state_topic_partitions < 1 {
            return invalid("transaction_state_topic_partitions", "must be at least 1");
        }
        if self.transaction_max_timeout_ms < 1 {
            return invalid("transaction_max_timeout_ms", "must be at least 1");
        }
        if !(1..=2).contains(&self.transaction_version) {
            return invalid("transaction_version", "must be 1 or 2");
        }
        if self.max_transactional_ids == 0 {
            return invalid("max_transactional_ids", "must be at least 1");
        }
        for checker in &self.transaction_checkers {
            if !checker.url.starts_with("http://") {
                return invalid(
                    "transaction_checkers",
                    "each url must start with http:// (https is not supported)",
                );
            }
        }
        if self.transaction_check_interval_ms == 0 || self.transaction_check_timeout_ms == 0 {
            return invalid(
                "transaction_check_interval_ms",
                "the check interval and timeout must be at least 1 ms",
            );
        }
        if self.producer_id_expiration_ms < 1 {
            return invalid("producer_id_expiration_ms", "must be at least 1");
        }
        if self.offsets_retention_minutes < 1 {
            return invalid("offsets_retention_minutes", "must be at least 1");
        }
        if self.offsets_retention_check_interval_ms == 0 {
            return invalid("offsets_retention_check_interval_ms", "must be at least 1");
        }
        if self.max_groups == 0 {
            return invalid("max_groups", "must be at least 1");
        }
        if self.offsets_topic_partitions < 1
            || self.offsets_topic_partitions as usize > self.max_partitions_per_topic
        {
            return invalid(
                "offsets_topic_partitions",
                "must be between 1 and max_partitions_per_topic",
            );
        }
        Ok(())
    }

    /// The host and port clients are told to use.
    pub fn advertised(&self) -> (String, i32) {
        let addr = self.advertised_listener.as_deref().unwrap_or(&self.listen);
        split_host_port(addr).unwrap_or_else(|| ("127.0.0.1".to_string(), 9092))
    }

    /// The whole configuration as TOML, every setting with its value.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

/// A broker setting under the name Kafka tools know it by, for
/// DescribeConfigs on the BROKER resource.
pub struct NamedSetting {
    pub name: &'static str,
    pub value: String,
    /// Differs from Sluice's default.
    pub is_set: bool,
}

impl BrokerConfig {
    pub fn kafka_named_settings(&self) -> Vec<NamedSetting> {
        let d = BrokerConfig::default();
        let (host, port) = self.advertised();
        let fsync = |p: FsyncPolicy| format!("{p:?}").to_lowercase();
        let setting = |name, value: String, default: String| NamedSetting {
            name,
            is_set: value != default,
            value,
        };
        vec![
            setting("node.id", self.node_id.to_string(), d.node_id.to_string()),
            setting(
                "advertised.listeners",
                format!("PLAINTEXT://{host}:{port}"),
                format!("PLAINTEXT://{}", d.listen),
            ),
            setting(
                "listeners",
                format!("PLAINTEXT://{}", self.listen),
                format!("PLAINTEXT://{}", d.listen),
            ),
            setting(
                "log.dirs",
                self.data_dir.display().to_string(),
                d.data_dir.display().to_string(),
            ),
            setting(
                "auto.create.topics.enable",
                self.auto_create_topics.to_string(),
                d.auto_create_topics.to_string(),
            ),
            setting(
                "num.partitions",
                self.default_partitions.to_string(),
                d.default_partitions.to_string(),
            ),
            setting("default.replication.factor", "1".into(), "1".into()),
            setting(
                "max.connections",
                self.max_connections.to_string(),
                d.max_connections.to_string(),
            ),
            setting(
                "connections.max.idle.ms",
                self.connection_idle_timeout_ms.to_string(),
                d.connection_idle_timeout_ms.to_string(),
            ),
            setting(
                "socket.request.max.bytes",
                self.max_request_bytes.to_string(),
                d.max_request_bytes.to_string(),
            ),
            setting(
                "message.max.bytes",
                self.max_message_bytes.to_string(),
                d.max_message_bytes.to_string(),
            ),
            setting("sluice.fsync", fsync(self.fsync), fsync(d.fsync)),
            setting(
                "sluice.fsync.scope",
                format!("{:?}", self.fsync_scope).to_lowercase(),
                format!("{:?}", d.fsync_scope).to_lowercase(),
            ),
            setting(
                "log.flush.interval.ms",
                self.fsync_interval_ms.to_string(),
                d.fsync_interval_ms.to_string(),
            ),
            setting(
                "log.segment.bytes",
                self.segment_bytes.to_string(),
                d.segment_bytes.to_string(),
            ),
            setting(
                "log.roll.ms",
                self.segment_ms.to_string(),
                d.segment_ms.to_string(),
            ),
            setting(
                "log.retention.ms",
                self.retention_ms.to_string(),
                d.retention_ms.to_string(),
            ),
            setting(
                "log.retention.bytes",
                self.retention_bytes.to_string(),
                d.retention_bytes.to_string(),
            ),
            setting(
                "log.retention.check.interval.ms",
                self.retention_check_interval_ms.to_string(),
                d.retention_check_interval_ms.to_string(),
            ),
            setting(
                "log.index.interval.bytes",
                self.index_interval_bytes.to_string(),
                d.index_interval_bytes.to_string(),
            ),
            setting(
                "queued.max.request.bytes",
                self.max_inflight_request_bytes.to_string(),
                d.max_inflight_request_bytes.to_string(),
            ),
            setting(
                "group.initial.rebalance.delay.ms",
                self.group_initial_rebalance_delay_ms.to_string(),
                d.group_initial_rebalance_delay_ms.to_string(),
            ),
            setting(
                "group.min.session.timeout.ms",
                self.group_min_session_timeout_ms.to_string(),
                d.group_min_session_timeout_ms.to_string(),
            ),
            setting(
                "group.max.session.timeout.ms",
                self.group_max_session_timeout_ms.to_string(),
                d.group_max_session_timeout_ms.to_string(),
            ),
            setting(
                "group.max.size",
                self.group_max_size.to_string(),
                d.group_max_size.to_string(),
            ),
            setting(
                "group.consumer.session.timeout.ms",
                self.group_consumer_session_timeout_ms.to_string(),
                d.group_consumer_session_timeout_ms.to_string(),
            ),
            setting(
                "group.consumer.heartbeat.interval.ms",
                self.group_consumer_heartbeat_interval_ms.to_string(),
                d.group_consumer_heartbeat_interval_ms.to_string(),
            ),
            setting(
                "offsets.topic.num.partitions",
                self.offsets_topic_partitions.to_string(),
                d.offsets_topic_partitions.to_string(),
            ),
            setting(
                "transaction.state.log.num.partitions",
                self.transaction_state_topic_partitions.to_string(),
                d.transaction_state_topic_partitions.to_string(),
            ),
            setting(
                "transaction.max.timeout.ms",
                self.transaction_max_timeout_ms.to_string(),
                d.transaction_max_timeout_ms.to_string(),
            ),
            setting(
                "transaction.version",
                self.transaction_version.to_string(),
                d.transaction_version.to_string(),
            ),
            setting(
                "producer.id.expiration.ms",
                self.producer_id_expiration_ms.to_string(),
                d.producer_id_expiration_ms.to_string(),
            ),
            setting(
                "offsets.retention.minutes",
                self.offsets_retention_minutes.to_string(),
                d.offsets_retention_minutes.to_string(),
            ),
            setting(
                "offset.metadata.max.bytes",
                self.offset_metadata_max_bytes.to_string(),
                d.offset_metadata_max_bytes.to_string(),
            ),
            setting(
                "num.recovery.threads.per.data.dir",
                self.recovery_threads.to_string(),
                d.recovery_threads.to_string(),
            ),
        ]
    }
}

/// An environment variable's text as a TOML value: a number or boolean if it
/// reads as one, a string otherwise.
fn env_value(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(b) = raw.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    toml::Value::String(raw.to_string())
}

fn split_host_port(addr: &str) -> Option<(String, i32)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse::<u16>().ok()?;
    if host.is_empty() {
        return None;
    }
    Some((host.trim_matches(['[', ']']).to_string(), i32::from(port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_listed() {
        let config = BrokerConfig::default();
        config.validate().expect("defaults valid");
        let keys = BrokerConfig::keys();
        assert!(keys.contains(&"fsync".to_string()));
        assert!(keys.contains(&"advertised_listener".to_string()));
        assert_eq!(config.advertised(), ("127.0.0.1".to_string(), 9092));
    }

    #[test]
    fn file_values_override_defaults_and_typos_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, "fsync = \"interval\"\ndefault_partitions = 6\n").expect("write");
        let config = BrokerConfig::load(Some(&path)).expect("load");
        assert_eq!(config.fsync, FsyncPolicy::Interval);
        assert_eq!(config.default_partitions, 6);
        std::fs::write(&path, "fsnyc = \"interval\"\n").expect("write");
        assert!(BrokerConfig::load(Some(&path)).is_err());
    }

    #[test]
    fn limits_that_could_never_be_met_are_refused() {
        let too_small_budget = BrokerConfig {
            max_inflight_request_bytes: 1024,
            ..BrokerConfig::default()
        };
        assert!(too_small_budget.validate().is_err());
        let inflation_below_batches = BrokerConfig {
            max_uncompressed_batch_bytes: 10,
            ..BrokerConfig::default()
        };
        assert!(inflation_below_batches.validate().is_err());
        let no_topics = BrokerConfig {
            max_topics: 0,
            ..BrokerConfig::default()
        };
        assert!(no_topics.validate().is_err());
    }
}
