//! Bytes through the group coordinator's decoders (embedded consumer
//! protocol, stored group values): no panic, round trips hold, and no
//! single allocation above `group_bytes_allocation_bound`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_broker::fuzzing;

fuzz_target!(|data: &[u8]| {
    let (outcome, largest) = sluice_fuzz::largest_allocation(|| fuzzing::group_bytes(data));
    let outcome = outcome.unwrap_or_else(|panic| panic!("{panic}"));
    let bound = fuzzing::group_bytes_allocation_bound(data);
    assert!(
        largest <= bound,
        "{outcome:?}: allocated {largest} bytes at once, bound {bound}"
    );
});
