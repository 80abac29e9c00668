//! Replays the `request` and `group_bytes` fuzz corpora
//! (`fuzz/corpus/<target>`, see `fuzz/README.md`) through the entry points
//! the fuzz targets call (`sluice_broker::fuzzing::request`,
//! `group_bytes`), with the same allocation bounds: no input may panic,
//! and none may make a single allocation above the bound. Runs on stable
//! with `cargo test`.

use std::path::{Path, PathBuf};

use sluice_broker::fuzzing::{
    group_bytes, group_bytes_allocation_bound, request, request_allocation_bound, RequestOutcome,
};
use sluice_storage::fuzzing::{corpus_files, largest_allocation, LargestAllocation};

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

fn corpus(target: &str) -> Vec<PathBuf> {
    corpus_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."), target)
}

#[test]
fn request_corpus_replays_without_panics_or_large_allocations() {
    let mut failures = Vec::new();
    let (mut refused, mut decoded, mut regressions) = (0, 0, 0);
    let files = corpus("request");
    for path in &files {
        let data = std::fs::read(path).expect("read a corpus file");
        let (outcome, largest) = largest_allocation(|| request(&data));
        let bound = request_allocation_bound(&data);
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("regression-") {
            // The huge-count requests that once aborted the broker: the
            // walk must keep refusing them before any decoder runs.
            regressions += 1;
            if !matches!(outcome, Ok(RequestOutcome::Refused)) {
                failures.push(format!("{name}: not refused by the walk: {outcome:?}"));
            }
        }
        match outcome {
            Err(panic) => failures.push(format!("{name}: panicked: {panic}")),
            Ok(_) if largest > bound => failures.push(format!(
                "{name}: allocated {largest} bytes at once, bound {bound}"
            )),
            Ok(RequestOutcome::Refused) => refused += 1,
            Ok(RequestOutcome::Decoded) => decoded += 1,
            Ok(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    println!(
        "{} inputs: {refused} refused by the walk, {decoded} decoded",
        files.len()
    );
    // The corpus reaches both sides of the walk, and keeps the known
    // killers (`cargo run --example seed -- --regressions` in fuzz/).
    assert!(
        refused > 0 && decoded > 0,
        "refused {refused}, decoded {decoded}"
    );
    assert!(regressions >= 2, "the regression-… inputs are missing");
}

/// The `group_bytes` corpus: embedded consumer protocol and stored group
/// values, through the same entry point as the fuzz target.
#[test]
fn group_bytes_corpus_replays_without_panics_or_large_allocations() {
    let mut failures = Vec::new();
    let (mut subscriptions, mut assignments, mut stored) = (0, 0, 0);
    let files = corpus("group_bytes");
    for path in &files {
        let data = std::fs::read(path).expect("read a corpus file");
        let (outcome, largest) = largest_allocation(|| group_bytes(&data));
        let bound = group_bytes_allocation_bound(&data);
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        match outcome {
            Err(panic) => failures.push(format!("{name}: panicked: {panic}")),
            Ok(_) if largest > bound => failures.push(format!(
                "{name}: allocated {largest} bytes at once, bound {bound}"
            )),
            Ok(o) => {
                subscriptions += usize::from(o.subscription);
                assignments += usize::from(o.assignment);
                stored += usize::from(o.stored_group);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        subscriptions > 0 && assignments > 0 && stored > 0,
        "the corpus reaches every decoder: {subscriptions} subscriptions, \
         {assignments} assignments, {stored} stored groups of {} inputs",
        files.len()
    );
}
