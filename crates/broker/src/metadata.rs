//! Cluster metadata as a state machine: topics, their ids, partitions,
//! leaders, epochs and configs change only by applying a [`MetadataCommand`].
//! Today a single node applies commands locally and keeps the state durable
//! as an atomically replaced JSON file; replication will put a consensus log
//! in front of the same `apply`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use sluice_storage::disk::Disk;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{BrokerError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionMeta {
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionMeta>,
    /// Topic config overrides; absent names take broker defaults.
    pub configs: BTreeMap<String, String>,
}

/// The whole cluster metadata at one version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    pub cluster_id: String,
    /// Incremented by every applied command.
    pub version: u64,
    pub topics: BTreeMap<String, TopicMeta>,
    /// Running topic migrations (`sluice topic migrate`), by source topic.
    #[serde(default)]
    pub migrations: BTreeMap<String, Migration>,
    /// Producer ids below this have been handed out (in blocks, see
    /// `producer_ids.rs`); none is ever given twice.
    #[serde(default)]
    pub next_producer_id: i64,
    /// Check-back endpoints set at run time (`sluice txn checker set`), by
    /// transactional id prefix; they override the settings' for a prefix.
    #[serde(default)]
    pub transaction_checkers: BTreeMap<String, String>,
}

/// A forwarder moving a group's backlog from one topic to a wider one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    pub group: String,
    pub from: String,
    pub to: String,
    pub started_ms: i64,
    /// Per partition of `to`: where a restarted forwarder starts looking
    /// for what it already forwarded (every source offset forwarded before
    /// these positions is covered by the group's committed offsets).
    pub checkpoint: BTreeMap<i32, i64>,
}

impl ClusterState {
    pub fn topic(&self, name: &str) -> Option<&TopicMeta> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&TopicMeta> {
        self.topics.values().find(|t| t.id == id)
    }
}

/// A change to the cluster metadata. Handlers validate requests first; a
/// command that still does not apply is refused without any change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetadataCommand {
    CreateTopic {
        name: String,
        id: Uuid,
        partitions: Vec<PartitionMeta>,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    AddPartitions {
        name: String,
        partitions: Vec<PartitionMeta>,
    },
    SetTopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    StartMigration {
        migration: Migration,
    },
    CheckpointMigration {
        from: String,
        checkpoint: BTreeMap<i32, i64>,
    },
    StopMigration {
        from: String,
    },
    /// Takes the next `count` producer ids for this broker to hand out.
    ReserveProducerIds {
        count: i64,
    },
    SetTransactionChecker {
        prefix: String,
        url: String,
    },
    RemoveTransactionChecker {
        prefix: String,
    },
}

impl ClusterState {
    /// Applies a command to a copy of the state.
    fn apply(&self, command: &MetadataCommand) -> Result<ClusterState> {
        let mut next = self.clone();
        match command {
            MetadataCommand::CreateTopic {
                name,
                id,
                partitions,
                configs,
            } => {
                if next.topics.contains_key(name) {
                    return Err(BrokerError::TopicAlreadyExists(name.clone()));
                }
                next.topics.insert(
                    name.clone(),
                    TopicMeta {
                        name: name.clone(),
                        id: *id,
                        partitions: partitions.clone(),
                        configs: configs.clone(),
                    },
                );
            }
            MetadataCommand::DeleteTopic { name } => {
                next.topics
                    .remove(name)
                    .ok_or(BrokerError::UnknownTopicOrPartition)?;
            }
            MetadataCommand::AddPartitions { name, partitions } => {
                let topic = next
                    .topics
                    .get_mut(name)
                    .ok_or(BrokerError::UnknownTopicOrPartition)?;
                topic.partitions.extend(partitions.iter().cloned());
            }
            MetadataCommand::SetTopicConfigs { name, configs } => {
                let topic = next
                    .topics
                    .get_mut(name)
                    .ok_or(BrokerError::UnknownTopicOrPartition)?;
                topic.configs = configs.clone();
            }
            MetadataCommand::StartMigration { migration } => {
                if next.migrations.contains_key(&migration.from) {
                    return Err(BrokerError::InvalidRequest(format!(
                        "topic '{}' is already being migrated",
                        migration.from
                    )));
                }
                next.migrations
                    .insert(migration.from.clone(), migration.clone());
            }
            MetadataCommand::CheckpointMigration { from, checkpoint } => {
                let migration = next.migrations.get_mut(from).ok_or_else(|| {
                    BrokerError::InvalidRequest(format!("no migration of topic '{from}'"))
                })?;
                migration.checkpoint = checkpoint.clone();
            }
            MetadataCommand::StopMigration { from } => {
                next.migrations.remove(from).ok_or_else(|| {
                    BrokerError::InvalidRequest(format!("no migration of topic '{from}'"))
                })?;
            }
            MetadataCommand::SetTransactionChecker { prefix, url } => {
                next.transaction_checkers
                    .insert(prefix.clone(), url.clone());
            }
            MetadataCommand::RemoveTransactionChecker { prefix } => {
                next.transaction_checkers.remove(prefix).ok_or_else(|| {
                    BrokerError::InvalidRequest(format!(
                        "no checker was set at run time for prefix '{prefix}'"
                    ))
                })?;
            }
            MetadataCommand::ReserveProducerIds { count } => {
                next.next_producer_id = next
                    .next_producer_id
                    .checked_add(*count)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| BrokerError::Metadata("producer ids exhausted".into()))?;
            }
        }
        next.version += 1;
        Ok(next)
    }
}

/// The metadata state, durable under `<data_dir>/meta/cluster.json`.
pub struct MetadataStore {
    path: PathBuf,
    current: RwLock<Arc<ClusterState>>,
    /// Serializes writers so that each applies to the latest state.
    write: Mutex<()>,
}

impl MetadataStore {
    /// Loads the state, or starts a new cluster with a fresh id.
    /// The directory goes through `disk`; the file's own writes, fsync
    /// and rename do not (a simulated disk treats it as always durable).
    pub fn open(disk: &dyn Disk, data_dir: &Path) -> Result<MetadataStore> {
        let dir = data_dir.join("meta");
        sluice_storage::disk::create_dir_durably(disk, &dir).map_err(meta_err)?;
        let path = dir.join("cluster.json");
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<ClusterState>(&bytes).map_err(|e| {
                BrokerError::Metadata(format!("{} is unreadable: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let state = ClusterState {
                    cluster_id: new_cluster_id(),
                    ..ClusterState::default()
                };
                persist(&path, &state)?;
                state
            }
            Err(e) => return Err(meta_err(e)),
        };
        Ok(MetadataStore {
            path,
            current: RwLock::new(Arc::new(state)),
            write: Mutex::new(()),
        })
    }

    /// The current state; cheap, and unaffected by later changes.
    pub fn snapshot(&self) -> Arc<ClusterState> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Applies a command durably: the new state is on disk before anyone
    /// sees it.
    pub fn apply(&self, command: MetadataCommand) -> Result<Arc<ClusterState>> {
        let _writer = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let next = Arc::new(self.snapshot().apply(&command)?);
        persist(&self.path, &next)?;
        match self.current.write() {
            Ok(mut guard) => *guard = Arc::clone(&next),
            Err(poisoned) => *poisoned.into_inner() = Arc::clone(&next),
        }
        Ok(next)
    }
}

/// Writes the state to a temporary file, fsyncs it, renames it over the old
/// one and fsyncs the directory: a crash leaves either the old or the new.
fn persist(path: &Path, state: &ClusterState) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let bytes =
        serde_json::to_vec_pretty(state).map_err(|e| BrokerError::Metadata(e.to_string()))?;
    let mut file = std::fs::File::create(&tmp).map_err(meta_err)?;
    file.write_all(&bytes).map_err(meta_err)?;
    file.sync_all().map_err(meta_err)?;
    std::fs::rename(&tmp, path).map_err(meta_err)?;
    if let Some(dir) = path.parent() {
        sluice_storage::log::sync_dir(dir).map_err(meta_err)?;
    }
    Ok(())
}

fn meta_err(e: std::io::Error) -> BrokerError {
    BrokerError::Metadata(e.to_string())
}

/// A cluster id in Kafka's form: 16 random bytes, URL-safe base64 unpadded.
fn new_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = String::with_capacity(22);
    for byte in bytes {
        bits = (bits << 8) | u32::from(byte);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 63) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 63) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition() -> PartitionMeta {
        PartitionMeta {
            leader: 1,
            leader_epoch: 0,
            replicas: vec![1],
            isr: vec![1],
        }
    }

    #[test]
    fn applied_commands_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = Uuid::new_v4();
        let cluster_id = {
            let store = MetadataStore::open(&sluice_storage::RealDisk, dir.path()).expect("open");
            store
                .apply(MetadataCommand::CreateTopic {
                    name: "t".into(),
                    id,
                    partitions: vec![partition()],
                    configs: BTreeMap::new(),
                })
                .expect("create");
            store
                .apply(MetadataCommand::AddPartitions {
                    name: "t".into(),
                    partitions: vec![partition()],
                })
                .expect("add");
            store.snapshot().cluster_id.clone()
        };
        let store = MetadataStore::open(&sluice_storage::RealDisk, dir.path()).expect("reopen");
        let state = store.snapshot();
        assert_eq!(state.cluster_id, cluster_id);
        assert_eq!(state.cluster_id.len(), 22);
        assert_eq!(state.topic("t").expect("topic").partitions.len(), 2);
        assert_eq!(state.topic_by_id(id).expect("by id").name, "t");
        assert_eq!(state.version, 2);
    }

    #[test]
    fn refused_commands_change_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MetadataStore::open(&sluice_storage::RealDisk, dir.path()).expect("open");
        assert!(store
            .apply(MetadataCommand::DeleteTopic { name: "x".into() })
            .is_err());
        assert_eq!(store.snapshot().version, 0);
    }
}
