//! Checkpoints of the data directory: the segments that grew are written
//! out one at a time, then one sync of the filesystem makes them and every
//! index and producer snapshot written so far durable, and then two
//! records say so. The recovery points (`sluice_storage::
//! recovery_points`) let a restart validate only what each active segment
//! gained since; the journal's checkpoint lets it forget (and a restart
//! skip) every entry before the position noted. Run in the background
//! (every `checkpoint_interval_ms`, or as soon as the journal has grown
//! by `journal_checkpoint_bytes`), on start after a journal replay, and at a
//! clean shutdown.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sluice_storage::disk::DiskRef;
use sluice_storage::journal::Journal;
use sluice_storage::recovery_points::{PartitionKey, RecoveryPoint, RecoveryPoints};
use tokio::sync::Notify;
use tracing::error;

use crate::partition::PartitionRef;

pub struct Checkpoints {
    disk: DiskRef,
    data_dir: PathBuf,
    /// The data directory, opened once: syncfs reports through it every
    /// writeback error since the previous checkpoint.
    handle: File,
    points: RecoveryPoints,
    journal: Option<Arc<Journal>>,
    /// Wakes the background checkpoints early.
    pub due: Arc<Notify>,
    /// The points last written; an unchanged directory is not synced again.
    last: Mutex<Vec<(PartitionKey, RecoveryPoint)>>,
}

impl Checkpoints {
    pub fn new(
        disk: DiskRef,
        data_dir: PathBuf,
        points: RecoveryPoints,
        journal: Option<Arc<Journal>>,
    ) -> io::Result<Checkpoints> {
        let handle = File::open(&data_dir)?;
        Ok(Checkpoints {
            disk,
            data_dir,
            handle,
            points,
            journal,
            due: Arc::new(Notify::new()),
            last: Mutex::new(Vec::new()),
        })
    }

    /// Checkpoints `partitions` (all of the broker's) now; unless `force`,
    /// not if nothing changed since the last one. Blocks; one at a time. A
    /// failure stops the journal, if there is one: segments whose sync
    /// failed may have lost pages it no longer holds.
    pub fn run(&self, partitions: &[PartitionRef], force: bool) -> io::Result<()> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        // The journal's end first: every entry before it has its batch in
        // a segment already, so the sync below covers it.
        let journal_position = self.journal.as_ref().map(|j| j.appended_end());
        let captured: Vec<(&PartitionRef, PartitionKey, RecoveryPoint)> = partitions
            .iter()
            .filter_map(|p| {
                let point = p.recovery_point()?;
                Some((p, (p.topic_id().into_bytes(), p.index), point))
            })
            .collect();
        let points: Vec<(PartitionKey, RecoveryPoint)> =
            captured.iter().map(|(_, k, p)| (*k, *p)).collect();
        let journal_due = match (&self.journal, journal_position) {
            (Some(journal), Some(position)) => journal.checkpoint_due(position),
            _ => false,
        };
        if !force && !journal_due && *last == points {
            return Ok(());
        }
        // The segments that grew are written out one at a time (most of
        // their bytes are on the disk already: `segment_writeback`), and
        // then one syncfs makes them durable, with indexes, snapshots and
        // directories, in one flush of the disk's cache. A syncfs alone
        // would put every segment's writeback on the disk at once, and an
        // fdatasync per segment would flush the cache once per segment;
        // the journal's rounds queue behind either.
        let before: HashMap<&PartitionKey, &RecoveryPoint> =
            last.iter().map(|(k, p)| (k, p)).collect();
        let grown: Vec<&&PartitionRef> = captured
            .iter()
            .filter(|(_, key, point)| before.get(key) != Some(&point))
            .map(|(partition, _, _)| partition)
            .collect();
        let started = std::time::Instant::now();
        let grown_count = grown.len();
        let result = grown
            .into_iter()
            .try_for_each(|partition| {
                // Taken under the log's lock, written out without it.
                let point = partition.log().segment_sync_point();
                point.map_or(Ok(()), |p| p.write_out())
            })
            .and_then(|()| self.disk.sync_filesystem(&self.handle, &self.data_dir))
            .and_then(|()| self.points.write(&points))
            .and_then(|()| match (&self.journal, journal_position) {
                (Some(journal), Some(position)) if journal_due => {
                    journal.write_checkpoint(position)
                }
                _ => Ok(()),
            });
        if let (Ok(()), Some(journal)) = (&result, &self.journal) {
            // Only spares the next round a file creation: a failure here
            // costs that round the time, not the journal its safety.
            if let Err(e) = journal.prepare_next_file() {
                tracing::warn!(error = %e, "cannot prepare the next journal file");
            }
        }
        tracing::debug!(
            micros = started.elapsed().as_micros() as u64,
            segments = grown_count,
            journal_due,
            "checkpoint"
        );
        match &result {
            Ok(()) => *last = points,
            Err(e) => {
                let why = format!("checkpoint failed: {e}");
                match &self.journal {
                    Some(journal) => {
                        error!("{why}; every partition stops accepting writes until restart");
                        journal.fail(&why);
                    }
                    None => error!("{why}"),
                }
            }
        }
        result
    }
}
