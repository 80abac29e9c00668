//! Disk work that can block for a long time (fsync, creating, renaming and
//! removing files and directories), called from async code.
//!
//! On the multi-threaded runtime the broker runs on, the work runs with
//! `block_in_place`: the runtime first hands this worker's other tasks to
//! another thread, so connections are not stalled behind a slow disk. Used
//! for rare work (rolls, topic admin); the produce path's fsyncs go to the
//! blocking pool instead (see `Partition::make_durable`).

use tokio::runtime::{Handle, RuntimeFlavor};

pub fn disk_work<T>(work: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        // Outside a runtime (start-up, tools) or on a single-threaded one
        // (some tests), there is no other worker to hand tasks to.
        _ => work(),
    }
}
