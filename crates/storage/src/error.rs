//! Errors of the storage layer. The broker maps each to a Kafka error code in
//! one place (`sluice_broker::error`).

use thiserror::Error;

use crate::batch::BatchError;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("offset {requested} is outside the log [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        requested: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error(
        "an earlier write failed and could not be undone; the log refuses writes until restart"
    )]
    LogFailed,
    #[error("the partition has been deleted")]
    LogClosed,
    #[error(transparent)]
    Producer(#[from] crate::producers::ProducerError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
