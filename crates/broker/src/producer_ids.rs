//! Producer ids for idempotent producers (InitProducerId). Each id is
//! handed out once, ever: the broker reserves them in blocks through the
//! cluster metadata (durable before any id of a block is given), and hands
//! them out from memory. A restart abandons the rest of its block, as
//! Kafka's brokers do with the blocks their controller gives them.

use std::sync::Mutex;

use crate::broker::Broker;
use crate::error::Result;
use crate::metadata::MetadataCommand;

/// Ids reserved per metadata write.
const BLOCK: i64 = 1000;

/// The ids reserved and not yet handed out: `[next, end)`.
#[derive(Debug, Default)]
pub struct ProducerIds {
    block: Mutex<(i64, i64)>,
}

impl ProducerIds {
    /// A producer id no one has had before.
    pub fn next(&self, broker: &Broker) -> Result<i64> {
        let mut block = self.block.lock().unwrap_or_else(|p| p.into_inner());
        if block.0 >= block.1 {
            let state =
                broker.apply_metadata(MetadataCommand::ReserveProducerIds { count: BLOCK })?;
            *block = (state.next_producer_id - BLOCK, state.next_producer_id);
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}
