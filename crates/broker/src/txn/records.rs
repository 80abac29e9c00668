//! The records of `__transaction_state`: one per state change of a
//! transactional id, keyed by the id, so that the latest record of each key
//! is its state (a null value deletes it). A transactional id lives on the
//! partition Kafka would choose for it, by the same hash as groups.
//!
//! ```text
//! key:   version u8 (0), transactional id (u16 length, UTF-8)
//! value: version u8 (1), producer id i64, previous producer id i64,
//!        epoch i16, timeout ms i32, state u8, start ms i64,
//!        last update ms i64, partition count u32,
//!        each: topic (u16 length, UTF-8), partition i32,
//!        then (version 1) next producer id i64, flags u8 (bit 0: V2)
//! ```
//!
//! Version 0 values (before Transactions V2) are read as no next producer
//! id and not V2.

use std::collections::BTreeSet;

use sluice_storage::be_reader::BeReader;

use super::state::{TxnMetadata, TxnState};

const KEY_VERSION: u8 = 0;
const VALUE_VERSION: u8 = 1;

pub use crate::group::records::partition_for;

pub fn encode_key(transactional_id: &str) -> Vec<u8> {
    let mut out = vec![KEY_VERSION];
    put_string(&mut out, transactional_id);
    out
}

pub fn decode_key(bytes: &[u8]) -> Option<String> {
    let mut r = BeReader(bytes);
    if r.u8()? != KEY_VERSION {
        return None;
    }
    let id = r.short_string()?;
    r.is_empty().then_some(id)
}

pub fn encode_value(meta: &TxnMetadata) -> Vec<u8> {
    let mut out = vec![VALUE_VERSION];
    out.extend_from_slice(&meta.producer_id.to_be_bytes());
    out.extend_from_slice(&meta.previous_producer_id.to_be_bytes());
    out.extend_from_slice(&meta.producer_epoch.to_be_bytes());
    out.extend_from_slice(&meta.timeout_ms.to_be_bytes());
    out.push(meta.state.code());
    out.extend_from_slice(&meta.start_ms.to_be_bytes());
    out.extend_from_slice(&meta.last_update_ms.to_be_bytes());
    out.extend_from_slice(&(meta.partitions.len() as u32).to_be_bytes());
    for (topic, partition) in &meta.partitions {
        put_string(&mut out, topic);
        out.extend_from_slice(&partition.to_be_bytes());
    }
    out.extend_from_slice(&meta.next_producer_id.to_be_bytes());
    out.push(u8::from(meta.v2));
    out
}

pub fn decode_value(transactional_id: &str, bytes: &[u8]) -> Option<TxnMetadata> {
    let mut r = BeReader(bytes);
    let version = r.u8()?;
    if version > VALUE_VERSION {
        return None;
    }
    let producer_id = r.i64()?;
    let previous_producer_id = r.i64()?;
    let producer_epoch = i16::from_be_bytes(r.take()?);
    let timeout_ms = i32::from_be_bytes(r.take()?);
    let state = TxnState::from_code(r.u8()?)?;
    let start_ms = r.i64()?;
    let last_update_ms = r.i64()?;
    let count = u32::from_be_bytes(r.take()?);
    let mut partitions = BTreeSet::new();
    for _ in 0..count {
        let topic = r.short_string()?;
        let partition = i32::from_be_bytes(r.take()?);
        partitions.insert((topic, partition));
    }
    let (next_producer_id, v2) = if version >= 1 {
        let next = r.i64()?;
        let flags = r.u8()?;
        (next, flags & 1 != 0)
    } else {
        (-1, false)
    };
    r.is_empty().then(|| TxnMetadata {
        transactional_id: transactional_id.to_string(),
        producer_id,
        previous_producer_id,
        producer_epoch,
        next_producer_id,
        v2,
        timeout_ms,
        state,
        partitions,
        start_ms,
        last_update_ms,
    })
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_refused() {
        let mut meta = TxnMetadata::new("orders-1", 42, 60_000, 1000);
        meta.state = TxnState::Ongoing;
        meta.start_ms = 900;
        meta.partitions.insert(("orders".into(), 3));
        meta.partitions.insert(("audit".into(), 0));
        meta.next_producer_id = 43;
        meta.v2 = true;
        let key = encode_key("orders-1");
        assert_eq!(decode_key(&key).as_deref(), Some("orders-1"));
        let value = encode_value(&meta);
        assert_eq!(decode_value("orders-1", &value), Some(meta));
        for cut in 0..value.len() {
            assert_eq!(
                decode_value("orders-1", &value[..cut]),
                None,
                "cut at {cut}"
            );
        }
        for cut in 0..key.len() {
            assert_eq!(decode_key(&key[..cut]), None);
        }
    }

    #[test]
    fn version_0_values_still_load() {
        let mut meta = TxnMetadata::new("orders-1", 42, 60_000, 1000);
        meta.partitions.insert(("orders".into(), 3));
        let mut value = encode_value(&meta);
        // A version 0 value is the version 1 value without its tail.
        value[0] = 0;
        value.truncate(value.len() - 9);
        assert_eq!(decode_value("orders-1", &value), Some(meta));
    }
}
