//! A produced record batch through validation, inflation, the record walk
//! and the timestamp lookup: no panic, and no single allocation above
//! `sluice_storage::fuzzing::batch_allocation_bound`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_storage::fuzzing;

fuzz_target!(|data: &[u8]| {
    let (outcome, largest) = sluice_fuzz::largest_allocation(|| fuzzing::batch(data));
    // A panic is the bug being looked for: let libFuzzer see it.
    let outcome = outcome.unwrap_or_else(|panic| panic!("{panic}"));
    let bound = fuzzing::batch_allocation_bound(data);
    assert!(
        largest <= bound,
        "{outcome:?}: allocated {largest} bytes at once, bound {bound}"
    );
});
