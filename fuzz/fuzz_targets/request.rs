//! A request body through the schema walk and, if the walk accepts it, the
//! `kafka-protocol` decoder: no panic, no abort, and no single allocation
//! above `sluice_broker::fuzzing::request_allocation_bound`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_broker::fuzzing;

fuzz_target!(|data: &[u8]| {
    let (outcome, largest) = sluice_fuzz::largest_allocation(|| fuzzing::request(data));
    // A panic is the bug being looked for: let libFuzzer see it.
    let outcome = outcome.unwrap_or_else(|panic| panic!("{panic}"));
    let bound = fuzzing::request_allocation_bound(data);
    assert!(
        largest <= bound,
        "{outcome:?}: allocated {largest} bytes at once, bound {bound}"
    );
});
