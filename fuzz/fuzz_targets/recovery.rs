//! Segment files written from the input, then `PartitionLog::open`: no
//! panic, and the recovered log is consistent (see
//! `sluice_storage::fuzzing::recovery`).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sluice_storage::fuzzing;

fuzz_target!(|data: &[u8]| {
    // tmpfs when there is one: recovery fsyncs, and every run writes files.
    let shm = Path::new("/dev/shm");
    let parent = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::Builder::new()
        .prefix("sluice-fuzz-recovery-")
        .tempdir_in(parent)
        .expect("a temporary directory");
    fuzzing::recovery(dir.path(), data);
});
