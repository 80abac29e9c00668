//! The broker's produce path (append, then commit under the fsync policy)
//! on a simulated disk that loses power: under `fsync = "always"` every
//! acknowledged batch survives, with every sync scope (the shared journal,
//! one syncfs per round for all partitions, or an fdatasync per
//! partition), batches of several partitions waiting on the same round;
//! under `never` the same test loses some, which shows the test can tell
//! them apart. With the journal, the power also goes out after every
//! number of syncs in turn: in the middle of journal rounds, of
//! checkpoints (the filesystem sync, the checkpoint slot, deleting old
//! journal files) and of segment rolls.

use std::sync::Arc;

use sluice_broker::{Broker, BrokerConfig, FsyncPolicy, FsyncScope};
use sluice_storage::batch::testing::batch;
use sluice_storage::disk::{DiskRef, PowerLoss, SimDisk};

const NOW: i64 = 1_700_000_000_000;
const PARTITIONS: i32 = 4;
const BATCHES: i32 = 200;

struct Acked {
    partition: i32,
    offset: i64,
    bytes_after_header: Vec<u8>,
}

struct Run {
    policy: FsyncPolicy,
    scope: FsyncScope,
    mode: PowerLoss,
    /// A journal checkpoint after every this many rounds of batches.
    checkpoint_every: Option<i32>,
    /// Every sync after this many (counted once the topic exists) fails:
    /// the power went out there.
    syncs_before_power_loss: Option<u64>,
}

struct Outcome {
    acked: usize,
    lost: usize,
    /// Syncs the run made after the topic was created.
    syncs: u64,
}

fn config(dir: &std::path::Path, policy: FsyncPolicy, scope: FsyncScope) -> BrokerConfig {
    BrokerConfig {
        data_dir: dir.join("data"),
        fsync: policy,
        fsync_scope: scope,
        segment_bytes: 16 * 1024,
        // Small files, so that a run spans several and deletes some; no
        // background checkpoints (the test asks for them).
        journal_file_bytes: 64 * 1024,
        journal_checkpoint_bytes: u64::MAX,
        checkpoint_interval_ms: u64::MAX / 2,
        ..BrokerConfig::default()
    }
}

/// Produces `steps` rounds of batches from `first_step` on, a batch to each
/// partition at a time, their commits awaited together (with a checkpoint
/// running beside them every `checkpoint_every` steps), until all are
/// written or a sync fails. Returns the acknowledged batches.
async fn produce(
    broker: &Broker,
    first_step: i32,
    steps: i32,
    checkpoint_every: Option<i32>,
) -> Vec<Acked> {
    let mut acked = Vec::new();
    for step in first_step..first_step + steps {
        let mut appended = Vec::new();
        for index in 0..PARTITIONS {
            let i = step * PARTITIONS + index;
            let partition = broker.partition("orders", index).expect("partition");
            let bytes = batch(1 + (i % 60), NOW + i64::from(i), 10 + (i as usize % 40));
            let Ok(info) = partition.append(bytes.clone(), NOW) else {
                return acked;
            };
            appended.push((partition, info, bytes));
        }
        let commits = futures_util::future::join_all(
            appended
                .iter()
                .map(|(partition, info, _)| broker.commit_append(partition, info.last_offset + 1)),
        );
        // The checkpoint runs while the rounds of these commits do: it may
        // note a journal end no round has made durable yet.
        let checkpoint = async {
            if checkpoint_every.is_some_and(|every| step % every == every - 1) {
                broker.checkpoint().await;
            }
        };
        let (results, ()) = futures_util::future::join(commits, checkpoint).await;
        let mut failed = false;
        for ((partition, info, bytes), committed) in appended.into_iter().zip(results) {
            if committed.is_err() {
                failed = true;
                continue;
            }
            acked.push(Acked {
                partition: partition.index,
                offset: info.base_offset,
                bytes_after_header: bytes[61..].to_vec(),
            });
        }
        if failed {
            return acked;
        }
    }
    acked
}

/// How many of `acked` are not stored as sent and visible to readers.
fn count_lost(broker: &Broker, acked: &[Acked]) -> usize {
    let mut lost = 0;
    for a in acked {
        let partition = broker.partition("orders", a.partition).expect("partition");
        let read = partition
            .log()
            .read(a.offset, 1, i64::MAX, true)
            .unwrap_or_default();
        let intact = read.len() >= 61
            && read[61..].starts_with(&a.bytes_after_header)
            && partition.high_watermark() > a.offset;
        if !intact {
            lost += 1;
        }
        // Whatever survived is readable as whole, valid batches.
        if !read.is_empty() {
            let header = sluice_storage::BatchHeader::parse(&read).expect("header");
            sluice_storage::batch::validate(&read[..header.total_size()]).expect("valid batch");
        }
    }
    lost
}

/// A broker's data directory on a simulated disk, reopened after each
/// power loss.
struct SimBroker {
    _tmp: tempfile::TempDir,
    disk: Arc<SimDisk>,
    config: BrokerConfig,
}

impl SimBroker {
    fn new(policy: FsyncPolicy, scope: FsyncScope) -> SimBroker {
        let tmp = tempfile::tempdir().expect("tempdir");
        let config = config(tmp.path(), policy, scope);
        SimBroker {
            _tmp: tmp,
            disk: SimDisk::shared(),
            config,
        }
    }

    fn open(&self) -> Arc<Broker> {
        let disk: DiskRef = self.disk.clone();
        Arc::new(Broker::open_on(self.config.clone(), disk).expect("open broker"))
    }
}

/// Produces until all batches are written or a sync fails, cuts the power,
/// restarts, and counts the acknowledged batches that did not survive.
async fn produce_and_lose_power(run: Run) -> Outcome {
    let sim = SimBroker::new(run.policy, run.scope);
    let (disk, open) = (&sim.disk, || sim.open());
    let broker = open();
    broker
        .create_topic("orders", PARTITIONS, 1, Default::default())
        .expect("create topic");
    let syncs_at_start = disk.syncs();
    if let Some(n) = run.syncs_before_power_loss {
        disk.fail_syncs_after(n);
    }
    let acked = produce(&broker, 0, BATCHES / PARTITIONS, run.checkpoint_every).await;
    let syncs = disk.syncs() - syncs_at_start;
    drop(broker);
    disk.power_loss(run.mode).expect("power loss");
    let broker = open();
    Outcome {
        acked: acked.len(),
        lost: count_lost(&broker, &acked),
        syncs,
    }
}

/// Power goes out, the broker restarts and takes more writes, and the
/// power goes out again: what both starts acknowledged survives (the
/// second start's journal entries carry its own generation, and its
/// replay of the first start's entries was made durable before them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_batches_survive_two_power_losses_in_a_row() {
    for mode in PowerLoss::every_kind(1) {
        let sim = SimBroker::new(FsyncPolicy::Always, FsyncScope::Journal);
        let (disk, open) = (&sim.disk, || sim.open());
        let broker = open();
        broker
            .create_topic("orders", PARTITIONS, 1, Default::default())
            .expect("create topic");
        let mut acked = produce(&broker, 0, 25, Some(7)).await;
        drop(broker);
        disk.power_loss(mode).expect("first power loss");
        let broker = open();
        acked.extend(produce(&broker, 25, 25, Some(5)).await);
        assert_eq!(acked.len(), BATCHES as usize);
        drop(broker);
        disk.power_loss(mode).expect("second power loss");
        let broker = open();
        assert_eq!(count_lost(&broker, &acked), 0, "{mode:?}");
    }
}

/// On a filesystem that refuses direct I/O, at open or at the first write,
/// the journal goes through the page cache, and acknowledged batches still
/// survive a power loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_direct_io_acknowledged_batches_survive_power_loss() {
    let refusals: [fn(&SimDisk); 2] = [SimDisk::refuse_direct_io, SimDisk::refuse_direct_writes];
    let runs = PowerLoss::every_kind(1)
        .into_iter()
        .flat_map(|mode| refusals.map(|refuse| (mode, refuse)));
    for (mode, refuse) in runs {
        let sim = SimBroker::new(FsyncPolicy::Always, FsyncScope::Journal);
        refuse(&sim.disk);
        let broker = sim.open();
        broker
            .create_topic("orders", PARTITIONS, 1, Default::default())
            .expect("create topic");
        let acked = produce(&broker, 0, BATCHES / PARTITIONS, Some(7)).await;
        assert_eq!(acked.len(), BATCHES as usize);
        assert!(
            sim.disk.direct_io_refused() > 0,
            "no journal file was opened"
        );
        drop(broker);
        sim.disk.power_loss(mode).expect("power loss");
        let broker = sim.open();
        assert_eq!(count_lost(&broker, &acked), 0, "{mode:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_batch_survives_power_loss_under_always() {
    let scopes = [
        FsyncScope::Journal,
        FsyncScope::Filesystem,
        FsyncScope::Partition,
    ];
    for scope in scopes {
        for mode in PowerLoss::every_kind(1) {
            for checkpoint_every in [None, Some(7)] {
                let outcome = produce_and_lose_power(Run {
                    policy: FsyncPolicy::Always,
                    scope,
                    mode,
                    checkpoint_every,
                    syncs_before_power_loss: None,
                })
                .await;
                assert_eq!(outcome.acked, BATCHES as usize);
                assert_eq!(
                    outcome.lost, 0,
                    "{scope:?} {mode:?}: acknowledged batches lost under fsync=always"
                );
            }
        }
    }
}

/// The power goes out after the first sync, the second, and so on through
/// the whole run (journal rounds, checkpoints, rolls): whatever was
/// acknowledged before that point survives, and the broker restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_keeps_every_acknowledged_batch_whenever_the_power_goes() {
    let full = produce_and_lose_power(Run {
        policy: FsyncPolicy::Always,
        scope: FsyncScope::Journal,
        mode: PowerLoss::TearLastWrite,
        checkpoint_every: Some(5),
        syncs_before_power_loss: None,
    })
    .await;
    assert_eq!(full.lost, 0);
    assert!(full.syncs > 50, "only {} syncs in a full run", full.syncs);
    for n in 0..=full.syncs {
        for mode in PowerLoss::every_kind(n) {
            let outcome = produce_and_lose_power(Run {
                policy: FsyncPolicy::Always,
                scope: FsyncScope::Journal,
                mode,
                checkpoint_every: Some(5),
                syncs_before_power_loss: Some(n),
            })
            .await;
            assert_eq!(
                outcome.lost, 0,
                "power lost after sync {n} of {} ({mode:?}): {} of {} acknowledged batches lost",
                full.syncs, outcome.lost, outcome.acked
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_test_loses_acknowledged_batches_under_never() {
    let outcome = produce_and_lose_power(Run {
        policy: FsyncPolicy::Never,
        scope: FsyncScope::Journal,
        mode: PowerLoss::DropUnsynced,
        checkpoint_every: None,
        syncs_before_power_loss: None,
    })
    .await;
    assert_eq!(outcome.acked, BATCHES as usize);
    assert!(
        outcome.lost > 0,
        "fsync=never lost nothing: the test cannot see a missing fsync"
    );
}

/// A failed round of syncs fails every partition it covered: their
/// producers are told (KAFKA_STORAGE_ERROR), and the partitions refuse
/// writes until a restart recovers them, as after a failed fdatasync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_round_fails_the_partitions_it_covered() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let disk = SimDisk::shared();
    let config = BrokerConfig {
        data_dir: tmp.path().join("data"),
        ..BrokerConfig::default()
    };
    let shared: DiskRef = disk.clone();
    let broker = Arc::new(Broker::open_on(config, shared).expect("open broker"));
    broker
        .create_topic("orders", 2, 1, Default::default())
        .expect("create topic");
    let partitions: Vec<_> = (0..2)
        .map(|i| broker.partition("orders", i).expect("partition"))
        .collect();
    // Both partitions' waits may share one round or take two: both fail.
    disk.fail_next_syncs(2);
    let ends: Vec<i64> = partitions
        .iter()
        .map(|p| {
            p.append(batch(1, NOW, 10), NOW)
                .expect("append")
                .last_offset
                + 1
        })
        .collect();
    let commits = partitions
        .iter()
        .zip(&ends)
        .map(|(p, end)| broker.commit_append(p, *end));
    for committed in futures_util::future::join_all(commits).await {
        let error = committed.expect_err("the sync failed");
        assert_eq!(error.code(), 56, "KAFKA_STORAGE_ERROR: {error}");
    }
    for p in &partitions {
        assert!(p.is_failed());
        assert!(p.append(batch(1, NOW, 10), NOW).is_err(), "writes refused");
    }
}
