//! Sluice's storage layer: the log of a partition as segments of Kafka record
//! batches stored exactly as received, with sparse offset and time indexes,
//! crash recovery that cuts a torn tail, segment rolling and retention.
//!
//! Nothing here knows about networking or the Kafka request types; the
//! broker calls [`PartitionLog`] under its own lock.

pub mod batch;
pub mod be_reader;
pub mod disk;
pub mod error;
pub mod fuzzing;
pub mod index;
pub mod journal;
pub mod log;
pub mod murmur2;
pub mod producers;
pub mod records;
pub mod recovery_points;
pub mod region;
pub mod segment;

pub use batch::{BatchError, BatchHeader, BatchParts, ProducedBatch};
pub use disk::{Disk, DiskRef, PowerLoss, RealDisk, SimDisk};
pub use error::StorageError;
pub use log::{
    AppendInfo, LogConfig, PartitionLog, RecoveryReport, ReplayOutcome, SealedRepair, SyncPoint,
    WritebackRange,
};
pub use region::FileRegion;
