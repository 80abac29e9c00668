//! Segment writeback paced with the appends (`segment_writeback_bytes`).
//!
//! Under `always` the journal makes a batch durable and the segment's copy
//! waits in the page cache for the next checkpoint; under `interval` it
//! waits for the next periodic fsync. Left there, a checkpoint's (or the
//! kernel's) writeback puts megabytes of every partition on the disk at
//! once, and the journal's next flush waits until they are written: on
//! this kind of machine, rounds of 0.4 ms became rounds of 5 to 24 ms
//! during checkpoints. So each partition hands its segment's new bytes to
//! the disk every `segment_writeback_bytes` (sync_file_range, no waiting,
//! no flush), from a thread of its own so that no appender waits for the
//! submission; by the time a checkpoint syncs the segment, little is left
//! to write. Nothing here makes anything durable.

use std::sync::Mutex;

use sluice_storage::WritebackRange;
use tracing::warn;

use crate::rounds::{Round, Rounds};

pub struct SegmentWriteback {
    /// Bytes a segment gains before its writeback is started.
    pub min_bytes: u64,
    rounds: Rounds<StartWriteback>,
}

/// One round: start the writeback of every range handed in since the last.
struct StartWriteback {
    queued: Mutex<Vec<WritebackRange>>,
}

impl SegmentWriteback {
    pub fn new(min_bytes: u64) -> SegmentWriteback {
        let round = StartWriteback {
            queued: Mutex::new(Vec::new()),
        };
        SegmentWriteback {
            min_bytes,
            rounds: Rounds::new("segment writeback", round),
        }
    }

    /// Queues `range` for the writeback thread; does not wait.
    pub fn submit(&self, range: WritebackRange) {
        self.rounds.round().queued().push(range);
        if let Err(e) = self.rounds.want_round() {
            warn!(error = %e, "cannot start segment writeback");
        }
    }
}

impl StartWriteback {
    fn queued(&self) -> std::sync::MutexGuard<'_, Vec<WritebackRange>> {
        self.queued.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Round for StartWriteback {
    fn run_round(&self) -> bool {
        let ranges = std::mem::take(&mut *self.queued());
        if ranges.is_empty() {
            return false;
        }
        for range in ranges {
            // A failed start leaves the bytes for the next fsync, which
            // reports any write error itself.
            if let Err(e) = range.start() {
                warn!(error = %e, "cannot start a segment's writeback");
            }
        }
        true
    }
}
