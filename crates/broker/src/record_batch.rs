//! Record batches the broker writes itself (group records in
//! `__consumer_offsets`, records a topic migration forwards): magic 2,
//! uncompressed, no producer id, offsets numbered from 0 (the log assigns
//! the real ones on append).

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::error::{BrokerError, Result};

/// A plain record (create time, no producer) for [`encode`].
pub fn record(
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: IndexMap<StrBytes, Option<Bytes>>,
) -> Record {
    Record {
        transactional: false,
        control: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key,
        value,
        headers,
        delete_horizon: false,
    }
}

/// One batch holding `records`, in order.
pub fn encode(records: Vec<Record>) -> Result<Vec<u8>> {
    let numbered: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| Record {
            offset: i as i64,
            // The encoder keeps records in one batch only while offset minus
            // sequence stays constant; the first sequence (-1, no producer
            // id) is the batch's base sequence.
            sequence: i as i32 - 1,
            ..r
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &numbered,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| BrokerError::Storage(format!("cannot encode a record batch: {e}")))?;
    Ok(buf.to_vec())
}
