//! Replays the `batch` and `recovery` fuzz corpora (`fuzz/corpus/…`, see
//! `fuzz/README.md`) through the entry points the fuzz targets call,
//! `sluice_storage::fuzzing::{batch, recovery}`: no input may panic, and no
//! batch may make a single allocation above `batch_allocation_bound`.
//! Runs on stable with `cargo test`.

use std::path::{Path, PathBuf};

use sluice_storage::fuzzing::{
    self, corpus_files, largest_allocation, LargestAllocation, RecoveryOutcome,
};

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

fn corpus(target: &str) -> Vec<PathBuf> {
    corpus_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."), target)
}

fn name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// The inputs that once found a bug (`regression-…` files) must stay in
/// the corpus: losing them in a corpus minimization would lose the check.
fn assert_has_regressions(files: &[PathBuf]) {
    assert!(
        files.iter().any(|f| name(f).starts_with("regression-")),
        "the corpus has lost its regression-… inputs"
    );
}

#[test]
fn batch_corpus_replays_without_panics_or_large_allocations() {
    let mut failures = Vec::new();
    let mut valid = 0;
    let files = corpus("batch");
    for path in &files {
        let data = std::fs::read(path).expect("read a corpus file");
        let (outcome, largest) = largest_allocation(|| fuzzing::batch(&data));
        let bound = fuzzing::batch_allocation_bound(&data);
        match outcome {
            Err(panic) => failures.push(format!("{}: panicked: {panic}", name(path))),
            Ok(_) if largest > bound => failures.push(format!(
                "{}: allocated {largest} bytes at once, bound {bound}",
                name(path)
            )),
            Ok(outcome) => valid += usize::from(outcome.valid || outcome.valid_once_fixed),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!("{} inputs: {valid} valid batches", files.len());
    assert!(valid > 0, "no input of the batch corpus is a valid batch");
    assert_has_regressions(&files);
}

#[test]
fn recovery_corpus_replays_without_panics() {
    // tmpfs when there is one: recovery fsyncs.
    let shm = Path::new("/dev/shm");
    let parent = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let mut failures = Vec::new();
    let (mut recovered, mut open_failed) = (0, 0);
    let files = corpus("recovery");
    for path in &files {
        let data = std::fs::read(path).expect("read a corpus file");
        let dir = tempfile::Builder::new()
            .prefix("sluice-recovery-corpus-")
            .tempdir_in(&parent)
            .expect("a temporary directory");
        let (outcome, _) = largest_allocation(|| fuzzing::recovery(dir.path(), &data));
        match outcome {
            Err(panic) => failures.push(format!("{}: panicked: {panic}", name(path))),
            Ok(RecoveryOutcome::Recovered { batches }) => recovered += usize::from(batches > 0),
            Ok(RecoveryOutcome::OpenFailed(_)) => open_failed += 1,
            Ok(RecoveryOutcome::TooShort) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!(
        "{} inputs: {recovered} recovered at least one batch, {open_failed} failed to open",
        files.len()
    );
    assert!(
        recovered > 0,
        "no input of the recovery corpus recovers a batch"
    );
    assert_has_regressions(&files);
}
