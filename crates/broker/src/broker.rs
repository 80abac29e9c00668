//! The broker's shared state: settings, cluster metadata, the partitions it
//! leads, and the topic operations that change them together.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_storage::journal::Journal;
use sluice_storage::recovery_points::{PartitionKey, RecoveryPoint, RecoveryPoints};
use sluice_storage::{BatchHeader, ReplayOutcome};
use tracing::{error, info, warn};
use uuid::Uuid;

use crate::checkpoint::Checkpoints;
use crate::config::{BrokerConfig, FsyncPolicy, FsyncScope};
use crate::error::{BrokerError, Result};
use crate::group::GroupCoordinator;
use crate::journal_rounds::JournalRounds;
use crate::metadata::{ClusterState, MetadataCommand, MetadataStore, PartitionMeta, TopicMeta};
use crate::partition::{partition_dir, LogHome, Partition, PartitionId, PartitionRef};
use crate::segment_writeback::SegmentWriteback;
use crate::topic_config;
use sluice_storage::disk::{self, Disk, DiskRef, RealDisk};

/// Longest topic name Kafka accepts (so that `<topic>-<partition>` fits a file name).
pub const MAX_TOPIC_NAME_LEN: usize = 249;
/// Suffix of a partition directory being deleted.
const DELETING_SUFFIX: &str = ".deleting";

pub struct Broker {
    pub config: BrokerConfig,
    /// Where fsyncs and file creation go: the real disk, or a simulated one
    /// in tests.
    disk: DiskRef,
    pub metadata: MetadataStore,
    partitions: RwLock<HashMap<String, Vec<PartitionRef>>>,
    /// Serializes topic creation, deletion and changes, so that two clients
    /// auto-creating the same topic cannot interleave their directory work.
    admin: Mutex<()>,
    /// Topic migrations forwarding in this process.
    pub migrations: crate::migrate::Forwarders,
    /// Consumer groups and their committed offsets.
    pub groups: GroupCoordinator,
    /// Producer ids for InitProducerId.
    pub producer_ids: crate::producer_ids::ProducerIds,
    /// Transactional ids and their transactions.
    pub txns: crate::txn::TransactionCoordinator,
    /// Group commit over the whole data directory (`fsync_scope`).
    sync_rounds: Arc<crate::sync_rounds::SyncRounds>,
    /// Group commit through the shared journal (`fsync_scope = "journal"`).
    journal_rounds: Option<Arc<JournalRounds>>,
    /// Checkpoints: recovery points, and the journal's forgetting.
    checkpoints: Arc<Checkpoints>,
    /// Paced segment writeback (`segment_writeback_bytes`).
    writeback: Option<Arc<SegmentWriteback>>,
    /// Incremental fetch sessions (KIP-227).
    pub fetch_sessions: crate::fetch_sessions::FetchSessions,
    /// Held open with an exclusive lock so that a second broker cannot use
    /// the same data directory.
    _dir_lock: std::fs::File,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Broker {
    /// Opens the data directory: metadata, then every partition's log.
    pub fn open(config: BrokerConfig) -> Result<Broker> {
        Self::open_on(config, RealDisk::shared())
    }

    /// [`Broker::open`] with the logs' fsyncs and file creation going
    /// through `disk` (a simulated one in power-loss tests).
    pub fn open_on(config: BrokerConfig, disk: DiskRef) -> Result<Broker> {
        disk::create_dir_durably(&*disk, &config.data_dir).map_err(|e| {
            BrokerError::Storage(format!(
                "cannot create data dir {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let dir_lock = lock_data_dir(&config.data_dir)?;
        remove_deleting_dirs(&config.data_dir);
        let metadata = MetadataStore::open(&*disk, &config.data_dir)?;
        let state = metadata.snapshot();
        let (points_file, points) = RecoveryPoints::open(disk.clone(), &config.data_dir)
            .map_err(|e| BrokerError::Storage(format!("cannot read the recovery points: {e}")))?;
        let journal = open_journal(&config, &disk)?;
        let uses_journal =
            config.fsync == FsyncPolicy::Always && config.fsync_scope == FsyncScope::Journal;
        let writeback = (config.fsync != FsyncPolicy::Never && config.segment_writeback_bytes > 0)
            .then(|| Arc::new(SegmentWriteback::new(config.segment_writeback_bytes)));
        let home = LogHome {
            disk: disk.clone(),
            data_dir: &config.data_dir,
            journal: journal.clone().filter(|_| uses_journal),
            writeback: writeback.clone(),
        };
        let partitions = open_partitions(&config, &home, &state, &points)?;
        let checkpoints = Arc::new(
            Checkpoints::new(
                disk.clone(),
                config.data_dir.clone(),
                points_file,
                home.journal.clone(),
            )
            .map_err(|e| BrokerError::Storage(format!("cannot open the data directory: {e}")))?,
        );
        let journal_rounds = match journal {
            Some(journal) => {
                recover_journal(&config, &disk, &journal, &state, &partitions, &checkpoints)?;
                uses_journal.then(|| {
                    Arc::new(JournalRounds::new(
                        journal,
                        config.journal_checkpoint_bytes,
                        Arc::clone(&checkpoints.due),
                    ))
                })
            }
            None => None,
        };
        info!(
            data_dir = %config.data_dir.display(),
            topics = state.topics.len(),
            partitions = partitions.values().map(Vec::len).sum::<usize>(),
            cluster_id = %state.cluster_id,
            "opened data directory"
        );
        let groups = GroupCoordinator::new(&config);
        let txn_limits = crate::txn::TxnLimits {
            state_partitions: config.transaction_state_topic_partitions,
            max_timeout_ms: config.transaction_max_timeout_ms,
            max_transactional_ids: config.max_transactional_ids,
            check_after_ms: i64::try_from(config.transaction_check_after_ms).unwrap_or(i64::MAX),
            check_interval_ms: i64::try_from(config.transaction_check_interval_ms)
                .unwrap_or(i64::MAX),
            check_max: config.transaction_check_max,
            check_default_commit: config.transaction_check_default
                == crate::config::CheckDefault::Commit,
            check_timeout: Duration::from_millis(config.transaction_check_timeout_ms),
        };
        let txn_checkers = config.transaction_checkers.clone();
        let sync_rounds =
            crate::sync_rounds::SyncRounds::open(disk.clone(), config.data_dir.clone()).map_err(
                |e| {
                    BrokerError::Storage(format!(
                        "cannot open data directory {}: {e}",
                        config.data_dir.display()
                    ))
                },
            )?;
        let fetch_sessions = crate::fetch_sessions::FetchSessions::new(
            config.max_fetch_sessions,
            config.max_partitions,
            Duration::from_millis(config.fetch_session_eviction_ms),
        );
        let broker = Broker {
            config,
            disk,
            metadata,
            partitions: RwLock::new(partitions),
            admin: Mutex::new(()),
            migrations: Default::default(),
            producer_ids: Default::default(),
            txns: crate::txn::TransactionCoordinator::new(txn_limits, txn_checkers),
            groups,
            sync_rounds: Arc::new(sync_rounds),
            journal_rounds,
            checkpoints,
            writeback,
            fetch_sessions,
            _dir_lock: dir_lock,
        };
        broker.groups.load(&broker);
        broker.txns.load(&broker);
        Ok(broker)
    }

    fn log_home(&self) -> LogHome<'_> {
        LogHome {
            disk: self.disk.clone(),
            data_dir: &self.config.data_dir,
            journal: self.journal_rounds.as_ref().map(|r| Arc::clone(&r.journal)),
            writeback: self.writeback.clone(),
        }
    }

    pub fn state(&self) -> Arc<ClusterState> {
        self.metadata.snapshot()
    }

    /// Applies a metadata command durably.
    pub(crate) fn apply_metadata(&self, command: MetadataCommand) -> Result<Arc<ClusterState>> {
        crate::blocking::disk_work(|| {
            let _admin = self.admin_lock();
            self.metadata.apply(command)
        })
    }

    /// A topic's metadata, or UNKNOWN_TOPIC_OR_PARTITION.
    pub fn topic(&self, name: &str) -> Result<TopicMeta> {
        self.state()
            .topic(name)
            .cloned()
            .ok_or(BrokerError::UnknownTopicOrPartition)
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<PartitionRef> {
        let map = self.partitions.read().unwrap_or_else(|p| p.into_inner());
        let index = usize::try_from(index).ok()?;
        map.get(topic)?.get(index).cloned()
    }

    pub fn topic_partitions(&self, topic: &str) -> Vec<PartitionRef> {
        let map = self.partitions.read().unwrap_or_else(|p| p.into_inner());
        map.get(topic).cloned().unwrap_or_default()
    }

    /// Calls `f` with (partition index, header, bytes) for every stored
    /// batch of `topic`, oldest first in each partition: what the group and
    /// transaction coordinators replay on start. The log is not locked
    /// while `f` runs.
    pub fn replay_topic(&self, topic: &str, mut f: impl FnMut(i32, &BatchHeader, &[u8])) {
        for partition in self.topic_partitions(topic) {
            let (mut offset, end) = {
                let log = partition.log();
                (log.log_start_offset(), log.log_end_offset())
            };
            while offset < end {
                let read = partition.log().read(offset, 1 << 20, end, true);
                let bytes = match read {
                    Ok(bytes) if !bytes.is_empty() => bytes,
                    Ok(_) => break,
                    Err(e) => {
                        warn!(topic, partition = partition.index, error = %e, "cannot read an internal topic");
                        break;
                    }
                };
                let before = offset;
                let mut rest = &bytes[..];
                while let Ok(header) = BatchHeader::parse(rest) {
                    let Some(batch) = rest.get(..header.total_size()) else {
                        break;
                    };
                    f(partition.index, &header, batch);
                    offset = header.next_offset();
                    rest = &rest[header.total_size()..];
                }
                if offset == before {
                    break;
                }
            }
        }
    }

    fn all_partitions(&self) -> Vec<PartitionRef> {
        let map = self.partitions.read().unwrap_or_else(|p| p.into_inner());
        map.values().flatten().cloned().collect()
    }

    fn admin_lock(&self) -> MutexGuard<'_, ()> {
        self.admin.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replicas for `count` new partitions: this node leads them all.
    fn new_partitions(&self, count: usize) -> Vec<PartitionMeta> {
        let node = self.config.node_id;
        (0..count)
            .map(|_| PartitionMeta {
                leader: node,
                leader_epoch: 0,
                replicas: vec![node],
                isr: vec![node],
            })
            .collect()
    }

    /// Checks a requested replica assignment: every replica must be this node.
    pub fn check_assignment(&self, broker_ids: &[i32]) -> Result<()> {
        if broker_ids.is_empty() {
            return Err(BrokerError::InvalidReplicaAssignment(
                "a partition needs at least one replica".to_string(),
            ));
        }
        if let Some(other) = broker_ids.iter().find(|&&b| b != self.config.node_id) {
            return Err(BrokerError::InvalidReplicaAssignment(format!(
                "broker {other} does not exist; this cluster has only broker {}",
                self.config.node_id
            )));
        }
        if broker_ids.len() > 1 {
            return Err(BrokerError::InvalidReplicationFactor(format!(
                "replication factor {} is larger than the 1 available broker",
                broker_ids.len()
            )));
        }
        Ok(())
    }

    fn check_partition_limit(&self, partitions: i32) -> Result<()> {
        if partitions as usize > self.config.max_partitions_per_topic {
            return Err(BrokerError::InvalidPartitions(format!(
                "{partitions} partitions exceed max_partitions_per_topic ({})",
                self.config.max_partitions_per_topic
            )));
        }
        Ok(())
    }

    /// Checks that `new_topics` more topics with `new_partitions` more
    /// partitions stay within `max_topics` and `max_partitions`.
    fn check_broker_limits(&self, new_topics: usize, new_partitions: i32) -> Result<()> {
        let state = self.state();
        let topics = state.topics.len();
        if topics + new_topics > self.config.max_topics {
            return Err(BrokerError::PolicyViolation(format!(
                "the broker holds {topics} topics; max_topics is {}",
                self.config.max_topics
            )));
        }
        let partitions: usize = state.topics.values().map(|t| t.partitions.len()).sum();
        if partitions + new_partitions.max(0) as usize > self.config.max_partitions {
            return Err(BrokerError::PolicyViolation(format!(
                "the broker holds {partitions} partitions and {new_partitions} more would exceed max_partitions ({})",
                self.config.max_partitions
            )));
        }
        Ok(())
    }

    /// Validates everything about a topic creation without doing it.
    pub fn validate_new_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &BTreeMap<String, String>,
    ) -> Result<()> {
        validate_topic_name(name)?;
        if self.state().topic(name).is_some() {
            return Err(BrokerError::TopicAlreadyExists(name.to_string()));
        }
        if partitions < 1 {
            return Err(BrokerError::InvalidPartitions(format!(
                "number of partitions must be at least 1, got {partitions}"
            )));
        }
        self.check_partition_limit(partitions)?;
        self.check_broker_limits(1, partitions)?;
        if replication_factor != 1 {
            return Err(BrokerError::InvalidReplicationFactor(format!(
                "replication factor {replication_factor} is not possible: this cluster has 1 broker"
            )));
        }
        topic_config::validate_all(configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// Creates a topic: opens its logs, then records it in the metadata.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMeta> {
        crate::blocking::disk_work(|| {
            let _admin = self.admin_lock();
            self.validate_new_topic(name, partitions, replication_factor, &configs)?;
            let settings = topic_config::resolve(&configs, &self.config);
            let now = now_ms();
            let mut opened = Vec::with_capacity(partitions as usize);
            let id = Uuid::new_v4();
            for index in 0..partitions {
                // A directory left by a crash during an earlier delete must not
                // leak old data into the new topic.
                discard_dir(
                    &*self.disk,
                    &self.config.data_dir,
                    &partition_dir(&self.config.data_dir, name, index),
                )?;
                let partition = Partition::open(
                    &self.log_home(),
                    PartitionId {
                        topic: name,
                        topic_id: id,
                        index,
                    },
                    0,
                    settings.clone(),
                    now,
                    None,
                )?;
                opened.push(Arc::new(partition));
            }
            let state = self.metadata.apply(MetadataCommand::CreateTopic {
                name: name.to_string(),
                id,
                partitions: self.new_partitions(partitions as usize),
                configs,
            })?;
            self.partitions
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.to_string(), opened);
            info!(topic = name, partitions, %id, "created topic");
            state
                .topic(name)
                .cloned()
                .ok_or(BrokerError::UnknownTopicOrPartition)
        })
    }

    /// Creates a topic with default settings because a client asked for it,
    /// if auto-creation is on. Another request creating it first is fine.
    pub fn auto_create_topic(&self, name: &str) -> Result<TopicMeta> {
        if !self.config.auto_create_topics {
            return Err(BrokerError::UnknownTopicOrPartition);
        }
        match self.create_topic(name, self.config.default_partitions, 1, BTreeMap::new()) {
            Err(BrokerError::TopicAlreadyExists(_)) => self.topic(name),
            other => other,
        }
    }

    /// Deletes a topic: removes it from the metadata, then its data.
    pub fn delete_topic(&self, name: &str) -> Result<TopicMeta> {
        if crate::group::is_internal_topic(name) {
            return Err(BrokerError::InvalidTopic(format!(
                "'{name}' is internal and cannot be deleted"
            )));
        }
        crate::blocking::disk_work(|| {
            let _admin = self.admin_lock();
            let topic = self.topic(name)?;
            self.metadata.apply(MetadataCommand::DeleteTopic {
                name: name.to_string(),
            })?;
            let removed = self
                .partitions
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name)
                .unwrap_or_default();
            for partition in removed {
                // Handles still held by in-flight requests or the retention task
                // must not write into a re-created topic's directory.
                partition.log().close();
                let dir = partition_dir(&self.config.data_dir, name, partition.index);
                if let Err(e) = discard_dir(&*self.disk, &self.config.data_dir, &dir) {
                    warn!(error = %e, "topic deleted but its data could not be moved aside");
                }
            }
            info!(topic = name, id = %topic.id, "deleted topic");
            Ok(topic)
        })
    }

    /// Grows a topic to `count` partitions.
    pub fn add_partitions(&self, name: &str, count: i32, validate_only: bool) -> Result<()> {
        crate::blocking::disk_work(|| {
            let _admin = self.admin_lock();
            let topic = self.topic(name)?;
            let current = topic.partitions.len() as i32;
            if count == current {
                return Err(BrokerError::InvalidPartitions(format!(
                    "topic already has {current} partitions"
                )));
            }
            if count < current {
                return Err(BrokerError::InvalidPartitions(format!(
                    "topic currently has {current} partitions, which is higher than the requested {count}"
                )));
            }
            self.check_partition_limit(count)?;
            if validate_only {
                return Ok(());
            }
            let settings = topic_config::resolve(&topic.configs, &self.config);
            let now = now_ms();
            let mut opened = Vec::new();
            for index in current..count {
                discard_dir(
                    &*self.disk,
                    &self.config.data_dir,
                    &partition_dir(&self.config.data_dir, name, index),
                )?;
                opened.push(Arc::new(Partition::open(
                    &self.log_home(),
                    PartitionId {
                        topic: name,
                        topic_id: topic.id,
                        index,
                    },
                    0,
                    settings.clone(),
                    now,
                    None,
                )?));
            }
            self.metadata.apply(MetadataCommand::AddPartitions {
                name: name.to_string(),
                partitions: self.new_partitions((count - current) as usize),
            })?;
            self.partitions
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .entry(name.to_string())
                .or_default()
                .extend(opened);
            info!(topic = name, from = current, to = count, "added partitions");
            Ok(())
        })
    }

    /// Changes a topic's config overrides with `change` (given the current
    /// ones) and applies them to its logs; read, change and write happen
    /// under the admin lock so concurrent changes do not overwrite each other.
    pub fn alter_topic_configs(
        &self,
        name: &str,
        validate_only: bool,
        change: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>>,
    ) -> Result<BTreeMap<String, String>> {
        crate::blocking::disk_work(|| {
            let _admin = self.admin_lock();
            let configs = change(&self.topic(name)?.configs)?;
            topic_config::validate_all(configs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
            if !validate_only {
                self.set_topic_configs_locked(name, configs.clone())?;
            }
            Ok(configs)
        })
    }

    fn set_topic_configs_locked(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<()> {
        self.metadata.apply(MetadataCommand::SetTopicConfigs {
            name: name.to_string(),
            configs: configs.clone(),
        })?;
        let settings = topic_config::resolve(&configs, &self.config);
        for partition in self.topic_partitions(name) {
            partition.update_settings(settings.clone());
        }
        Ok(())
    }

    /// Makes an append visible according to the fsync policy, and wakes
    /// waiting fetches.
    pub async fn commit_append(&self, partition: &PartitionRef, up_to: i64) -> Result<()> {
        self.commit_appends(&[(partition, up_to)])
            .await
            .pop()
            .unwrap_or(Ok(()))
    }

    /// Makes the appends of one request (offsets below each `up_to`)
    /// durable according to the fsync policy, then visible together, and
    /// then wakes the fetches waiting for them. Published and woken one by
    /// one, a fetch woken by the first would answer with that partition
    /// alone and come back for each of the others. One result per append,
    /// in order.
    pub async fn commit_appends(&self, appends: &[(&PartitionRef, i64)]) -> Vec<Result<()>> {
        let durable = appends
            .iter()
            .map(|(partition, up_to)| self.make_durable(partition, *up_to));
        let durable = futures_util::future::join_all(durable).await;
        for ((partition, up_to), outcome) in appends.iter().zip(&durable) {
            if outcome.is_ok() {
                partition.publish(*up_to);
            }
        }
        for (partition, _) in appends {
            partition.wake_fetches();
        }
        durable
    }

    async fn make_durable(&self, partition: &PartitionRef, up_to: i64) -> Result<()> {
        if self.config.fsync != FsyncPolicy::Always {
            return Ok(());
        }
        match self.config.fsync_scope {
            FsyncScope::Journal => match &self.journal_rounds {
                Some(rounds) => rounds.make_durable(partition, up_to).await,
                None => partition.make_durable(up_to).await,
            },
            FsyncScope::Filesystem => self.sync_rounds.make_durable(partition, up_to).await,
            FsyncScope::Partition => partition.make_durable(up_to).await,
        }
    }

    /// Applies retention to every partition.
    pub fn apply_retention(&self) {
        let now = now_ms();
        for partition in self.all_partitions() {
            let (result, expired) = {
                let mut log = partition.log();
                (log.apply_retention(now), log.expire_producers(now))
            };
            if expired > 0 {
                info!(
                    topic = %partition.topic,
                    partition = partition.index,
                    producers = expired,
                    "idle producers expired (producer_id_expiration_ms)"
                );
            }
            match result {
                Ok(0) => {}
                Ok(deleted) => info!(
                    topic = %partition.topic,
                    partition = partition.index,
                    segments = deleted,
                    "retention deleted segments"
                ),
                Err(e) => warn!(
                    topic = %partition.topic,
                    partition = partition.index,
                    error = %e,
                    "retention failed"
                ),
            }
        }
    }

    /// fsyncs every partition with unsynced data.
    pub async fn sync_all(&self) {
        for partition in self.all_partitions() {
            if let Err(e) = partition.sync_now().await {
                warn!(topic = %partition.topic, partition = partition.index, error = %e, "fsync failed");
            }
        }
    }

    /// Before a clean exit: every partition synced, and its producers'
    /// state written so that the next start need not scan for it.
    pub async fn shut_down(&self) {
        self.sync_all().await;
        for partition in self.all_partitions() {
            if let Err(e) = partition.log().snapshot_producers() {
                warn!(topic = %partition.topic, partition = partition.index, error = %e, "cannot write a producer snapshot");
            }
        }
        // Under the journal the segments were never synced by a produce:
        // a last checkpoint makes them (and the snapshots just written)
        // durable, and the next start replays and validates nothing.
        self.checkpoint().await;
    }

    /// Checkpoints the data directory now (shutdown, tests; otherwise a
    /// background task does it): see `checkpoint.rs`.
    pub async fn checkpoint(&self) {
        let checkpoints = Arc::clone(&self.checkpoints);
        let partitions = self.all_partitions();
        let _ = tokio::task::spawn_blocking(move || checkpoints.run(&partitions, false)).await;
    }

    /// Runs the periodic work (retention, group deadlines, offset expiry,
    /// and the interval fsync if the policy asks for it) until the broker
    /// is dropped.
    pub fn spawn_background_tasks(self: &Arc<Self>) {
        let config = &self.config;
        every(
            self,
            ms(config.retention_check_interval_ms),
            |broker| async move {
                let _ = tokio::task::spawn_blocking(move || broker.apply_retention()).await;
            },
        );
        // Transaction timeouts, and transactions a crash left decided but
        // without all their markers.
        every(self, Duration::from_millis(200), |broker| async move {
            broker.txns.tick(&broker).await;
        });
        // Group deadlines (sessions, rebalances) are checked this often.
        every(self, Duration::from_millis(50), |broker| async move {
            broker.groups.tick(&broker.state());
            broker.groups.store_group_changes(&broker).await;
        });
        every(
            self,
            ms(config.offsets_retention_check_interval_ms),
            |broker| async move {
                let retention_ms = broker
                    .config
                    .offsets_retention_minutes
                    .saturating_mul(60_000);
                broker
                    .groups
                    .expire_offsets(&broker, retention_ms, now_ms())
                    .await;
            },
        );
        every(self, Duration::from_secs(1), |broker| async move {
            broker.groups.compact_offsets(&broker).await;
        });
        crate::migrate::resume_all(self);
        match (config.fsync, config.fsync_scope) {
            // An fsync of each partition in turn, without checkpoints.
            (FsyncPolicy::Interval, FsyncScope::Partition) => {
                every(self, ms(config.fsync_interval_ms), |broker| async move {
                    broker.sync_all().await;
                });
            }
            // Each partition fsynced in turn (one file's writeback on the
            // disk at a time, not a second's worth of every partition at
            // once), and checkpoints, which then find little left to sync.
            (FsyncPolicy::Interval, _) => {
                every(self, ms(config.fsync_interval_ms), |broker| async move {
                    broker.sync_all().await;
                });
                spawn_checkpoints(self, ms(config.checkpoint_interval_ms));
            }
            (FsyncPolicy::Always, _) => spawn_checkpoints(self, ms(config.checkpoint_interval_ms)),
            (FsyncPolicy::Never, _) => {}
        }
    }
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Checkpoints every `period`, or sooner when the journal asks, while the
/// broker lives; the task holds only a weak reference between runs.
fn spawn_checkpoints(broker: &Arc<Broker>, period: Duration) {
    let weak = Arc::downgrade(broker);
    let due = Arc::clone(&broker.checkpoints.due);
    tokio::spawn(async move {
        loop {
            let _ = tokio::time::timeout(period, due.notified()).await;
            let Some(broker) = weak.upgrade() else { return };
            let started = std::time::Instant::now();
            broker.checkpoint().await;
            tracing::debug!(micros = started.elapsed().as_micros() as u64, "checkpoint");
        }
    });
}

/// Runs `job` every `period` (first after one period) while the broker
/// lives; the task holds only a weak reference between runs.
fn every<F, Fut>(broker: &Arc<Broker>, period: Duration, job: F)
where
    F: Fn(Arc<Broker>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let weak = Arc::downgrade(broker);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(broker) = weak.upgrade() else { return };
            job(broker).await;
        }
    });
}

/// Opens (and after a crash, recovers) every partition's log, on
/// `recovery_threads` threads: recovery reads each active segment in full,
/// and on a machine with several cores the partitions need not wait for
/// each other.
fn open_partitions(
    config: &BrokerConfig,
    home: &LogHome<'_>,
    state: &ClusterState,
    points: &HashMap<PartitionKey, RecoveryPoint>,
) -> Result<HashMap<String, Vec<PartitionRef>>> {
    let now = now_ms();
    let jobs: Vec<(&TopicMeta, usize)> = state
        .topics
        .values()
        .flat_map(|topic| (0..topic.partitions.len()).map(move |index| (topic, index)))
        .collect();
    let next_job = std::sync::atomic::AtomicUsize::new(0);
    let open_job = |(topic, index): (&TopicMeta, usize)| {
        let settings = topic_config::resolve(&topic.configs, config);
        Partition::open(
            home,
            PartitionId {
                topic: &topic.name,
                topic_id: topic.id,
                index: index as i32,
            },
            topic.partitions[index].leader_epoch,
            settings,
            now,
            points.get(&(topic.id.into_bytes(), index as i32)),
        )
    };
    let threads = config.recovery_threads().clamp(1, jobs.len().max(1));
    let mut opened: Vec<(usize, Result<Partition>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next_job.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&job) = jobs.get(i) else { break };
                        done.push((i, open_job(job)));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    opened.sort_by_key(|(i, _)| *i);
    let mut partitions: HashMap<String, Vec<PartitionRef>> = state
        .topics
        .values()
        .map(|topic| {
            (
                topic.name.clone(),
                Vec::with_capacity(topic.partitions.len()),
            )
        })
        .collect();
    for (i, partition) in opened {
        let (topic, _) = jobs[i];
        partitions
            .entry(topic.name.clone())
            .or_default()
            .push(Arc::new(partition?));
    }
    Ok(partitions)
}

/// The journal directory inside the data directory.
fn journal_dir(config: &BrokerConfig) -> std::path::PathBuf {
    config.data_dir.join("journal")
}

/// Opens the journal if the broker uses one, or if an earlier start left
/// one (its entries past the checkpoint must be replayed whatever the
/// policy now).
fn open_journal(config: &BrokerConfig, disk: &DiskRef) -> Result<Option<Arc<Journal>>> {
    let wanted = config.fsync == FsyncPolicy::Always && config.fsync_scope == FsyncScope::Journal;
    let dir = journal_dir(config);
    if !wanted && !dir.exists() {
        return Ok(None);
    }
    let journal = Journal::open(disk.clone(), &dir, config.journal_file_bytes).map_err(|e| {
        BrokerError::Storage(format!("cannot open the journal in {}: {e}", dir.display()))
    })?;
    Ok(Some(Arc::new(journal)))
}

/// Replays the journal past its checkpoint into the partitions just
/// opened and makes that durable with a checkpoint (which also records
/// this start's generation). If the broker no longer uses a journal
/// (`fsync_scope`), it is removed afterwards.
fn recover_journal(
    config: &BrokerConfig,
    disk: &DiskRef,
    journal: &Journal,
    state: &ClusterState,
    partitions: &HashMap<String, Vec<PartitionRef>>,
    checkpoints: &Checkpoints,
) -> Result<()> {
    let now = now_ms();
    let mut replayed: HashMap<(String, i32), PartitionRef> = HashMap::new();
    let mut failure: Option<BrokerError> = None;
    let recovery = journal
        .replay(&mut |entry| {
            if failure.is_some() {
                return;
            }
            let partition = state
                .topic_by_id(Uuid::from_bytes(entry.topic_id))
                .and_then(|topic| partitions.get(&topic.name))
                .and_then(|list| {
                    usize::try_from(entry.partition)
                        .ok()
                        .and_then(|i| list.get(i))
                });
            let Some(partition) = partition else {
                // The topic was deleted after the entry was written.
                return;
            };
            match replay_entry(partition, entry.batch, now) {
                Ok(true) => {
                    replayed.insert(
                        (partition.topic.clone(), partition.index),
                        Arc::clone(partition),
                    );
                }
                Ok(false) => {}
                Err(e) => failure = Some(e),
            }
        })
        .map_err(|e| BrokerError::Storage(format!("cannot replay the journal: {e}")))?;
    if let Some(e) = failure {
        // Nothing is checkpointed: the journal keeps every entry for the
        // next start, once the cause (a full disk, say) is gone.
        return Err(e);
    }
    let all: Vec<PartitionRef> = partitions.values().flatten().cloned().collect();
    checkpoints
        .run(&all, true)
        .map_err(|e| BrokerError::Storage(format!("cannot checkpoint the journal: {e}")))?;
    for partition in replayed.values() {
        let end = partition.log().log_end_offset();
        partition.mark_synced(end);
        partition.publish(end);
    }
    if recovery.entries > 0 {
        info!(
            entries = recovery.entries,
            partitions = replayed.len(),
            "journal recovered"
        );
    }
    if config.fsync == FsyncPolicy::Always && config.fsync_scope == FsyncScope::Journal {
        return Ok(());
    }
    let dir = journal_dir(config);
    std::fs::remove_dir_all(&dir)
        .and_then(|()| {
            disk.removed(&dir);
            disk.sync_dir(&config.data_dir)
        })
        .map_err(|e| BrokerError::Storage(format!("cannot remove the journal: {e}")))?;
    info!("the journal is not in use (fsync_scope); removed it after replay");
    Ok(())
}

/// Puts one journaled batch back into its partition: true if appended.
/// A batch that cannot be written (a full or failing disk) is an error:
/// the broker must not start and let the journal forget it. A batch the
/// log contradicts is damage no restart will mend: it is logged.
fn replay_entry(partition: &PartitionRef, batch: &[u8], now: i64) -> Result<bool> {
    let outcome = partition.log().append_replayed(batch, now);
    Ok(match outcome {
        Ok(ReplayOutcome::Appended) => true,
        Ok(ReplayOutcome::AlreadyPresent) => false,
        Ok(ReplayOutcome::AppendedAfterGap { log_end }) => {
            error!(
                topic = %partition.topic,
                partition = partition.index,
                log_end,
                "journal replay: the segment lost offsets the journal no longer holds; appended after a gap"
            );
            true
        }
        Ok(ReplayOutcome::Overlaps { log_end }) => {
            error!(
                topic = %partition.topic,
                partition = partition.index,
                log_end,
                "journal replay: a batch overlaps the end of the log; skipped"
            );
            false
        }
        Err(e) => {
            return Err(BrokerError::Storage(format!(
                "journal replay: cannot append a journaled batch to {}-{}: {e}",
                partition.topic, partition.index
            )))
        }
    })
}

/// Kafka's topic name rules: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let invalid = |why: String| Err(BrokerError::InvalidTopic(why));
    if name.is_empty() {
        return invalid("topic name is empty".to_string());
    }
    if name == "." || name == ".." {
        return invalid(format!("topic name cannot be '{name}'"));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return invalid(format!(
            "topic name is {} characters long; the limit is {MAX_TOPIC_NAME_LEN}",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return invalid(format!(
            "topic name '{name}' contains '{c}'; only ASCII letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    Ok(())
}

/// Moves a partition directory aside and removes it. The rename is atomic,
/// so the data is gone from its path at once; a crash during the removal is
/// finished at the next start. The aside name is short whatever the topic
/// name's length.
fn discard_dir(disk: &dyn Disk, data_dir: &Path, dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let aside = data_dir.join(format!("{}{DELETING_SUFFIX}", Uuid::new_v4().simple()));
    std::fs::rename(dir, &aside)
        .map_err(|e| BrokerError::Storage(format!("cannot move {} aside: {e}", dir.display())))?;
    disk.removed(dir);
    // The rename must survive a power loss, or a re-created topic could
    // find the old data back under its name.
    disk.sync_dir(data_dir)
        .map_err(|e| BrokerError::Storage(format!("cannot sync {}: {e}", data_dir.display())))?;
    if let Err(e) = std::fs::remove_dir_all(&aside) {
        warn!(dir = %aside.display(), error = %e, "could not remove a deleted partition directory");
    }
    Ok(())
}

/// Takes an exclusive lock on `<data_dir>/.lock`, released when the process
/// exits however it exits.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File> {
    let path = data_dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| BrokerError::Storage(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(BrokerError::Storage(format!(
            "data directory {} is in use by another sluice process",
            data_dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(BrokerError::Storage(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

fn remove_deleting_dirs(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.to_string_lossy().ends_with(DELETING_SUFFIX) {
            if let Err(e) = std::fs::remove_dir_all(&path) {
                warn!(dir = %path.display(), error = %e, "could not remove a deleted partition directory");
            }
        }
    }
}
