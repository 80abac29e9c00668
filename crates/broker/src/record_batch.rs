//! Record batches the broker writes itself (group records in
//! `__consumer_offsets`, transaction states, records a topic migration
//! forwards, transaction markers): magic 2, uncompressed, offsets numbered
//! from 0 (the log assigns the real ones on append); and the walk over
//! stored batches that reads them back.

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

/// A record of `producer` (id, epoch) in its open transaction, without a
/// sequence (the broker writes it, not the producer), for [`encode`].
pub fn transactional_record(
    timestamp: i64,
    key: Bytes,
    value: Option<Bytes>,
    producer: (i64, i16),
) -> Record {
    Record {
        transactional: true,
        producer_id: producer.0,
        producer_epoch: producer.1,
        ..record(timestamp, Some(key), value, Default::default())
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

/// A transaction marker: the control batch that commits or aborts
/// `producer_id`'s transaction in a partition. Its record's key is the
/// control type, its value Kafka's end-transaction marker (version 0, the
/// coordinator epoch).
pub fn marker(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    timestamp: i64,
) -> Result<Vec<u8>> {
    use sluice_storage::producers::ControlType;
    let kind = if commit {
        ControlType::Commit
    } else {
        ControlType::Abort
    };
    let mut value = vec![0u8, 0];
    value.extend_from_slice(&0i32.to_be_bytes());
    let record = Record {
        transactional: true,
        control: true,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(Bytes::copy_from_slice(&kind.key())),
        value: Some(Bytes::from(value)),
        headers: Default::default(),
        delete_horizon: false,
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| BrokerError::Storage(format!("cannot encode a transaction marker: {e}")))?;
    Ok(buf.to_vec())
}

/// Calls `f` with (offset, record) for every data record at or after
/// `from` in `bytes` (whole stored batches; control batches skipped).
/// Returns the offset after the last batch.
pub fn for_each_record(
    bytes: &[u8],
    from: i64,
    mut f: impl FnMut(i64, StoredRecord<'_>),
) -> Result<i64> {
    use sluice_storage::records::{inflate, Codec, Records};
    let mut rest = bytes;
    let mut end = from;
    while let Ok(header) = sluice_storage::BatchHeader::parse(rest) {
        let Some(batch) = rest.get(..header.total_size()) else {
            break;
        };
        rest = &rest[header.total_size()..];
        end = end.max(header.next_offset());
        if header.is_control() {
            continue;
        }
        let codec = Codec::from_id(header.compression())
            .map_err(|e| BrokerError::Storage(format!("stored batch: {e}")))?;
        let section = inflate(
            codec,
            &batch[sluice_storage::batch::HEADER_SIZE..],
            64 << 20,
        )
        .map_err(|e| BrokerError::Storage(format!("stored batch: {e}")))?;
        for record in Records::new(&section, header.records_count) {
            let record = record.map_err(|e| BrokerError::Storage(format!("stored batch: {e}")))?;
            let offset = header.base_offset + i64::from(record.offset_delta);
            if offset < from {
                continue;
            }
            let timestamp = if header.is_log_append_time() {
                header.max_timestamp
            } else {
                header.base_timestamp + record.timestamp_delta
            };
            f(
                offset,
                StoredRecord {
                    timestamp,
                    key: record.key,
                    value: record.value,
                    headers: record.headers().collect(),
                },
            );
        }
    }
    Ok(end)
}

/// A record as stored, borrowed from the batch that holds it.
pub struct StoredRecord<'a> {
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}
