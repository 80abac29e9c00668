//! What the fuzz targets share: the allocator that records the largest
//! single allocation (`sluice_storage::fuzzing::LargestAllocation`),
//! installed here for every target, so that each can check the allocation
//! bound its entry point promises.
//!
//! The entry points themselves live in the crates
//! (`sluice_broker::fuzzing`, `sluice_storage::fuzzing`), where the corpus
//! replay tests call them too.

use sluice_storage::fuzzing::LargestAllocation;

pub use sluice_storage::fuzzing::largest_allocation;

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;
