//! The broker's errors and the one place where each becomes a Kafka error
//! code. Handlers return these; they never pick codes themselves.

use kafka_protocol::ResponseError;
use sluice_storage::producers::ProducerError;
use sluice_storage::{BatchError, StorageError};
use thiserror::Error;

#[derive(Debug, Clone, Error)]
pub enum BrokerError {
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("unknown topic id")]
    UnknownTopicId,
    #[error("{0}")]
    InvalidTopic(String),
    #[error("topic '{0}' already exists")]
    TopicAlreadyExists(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("acks must be -1, 0 or 1, not {0}")]
    InvalidRequiredAcks(i16),
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge { size: usize, max: usize },
    #[error("record batch inflates past {limit} bytes (max_uncompressed_batch_bytes)")]
    InflatedTooLarge { limit: usize },
    #[error("{0}")]
    InvalidRecord(String),
    #[error("{0}")]
    UnsupportedCompression(String),
    #[error("{0}")]
    PolicyViolation(String),
    #[error("corrupt record batch: {0}")]
    CorruptBatch(BatchError),
    #[error("{0}")]
    UnsupportedMessageFormat(String),
    #[error("offset {requested} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        requested: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("the client's leader epoch is older than the partition's")]
    FencedLeaderEpoch,
    #[error("the client's leader epoch is newer than the partition's")]
    UnknownLeaderEpoch,
    #[error("this broker cannot serve the request: {0}")]
    UnsupportedVersion(String),
    #[error("{0}")]
    InvalidGroupId(String),
    #[error("the coordinator does not know this member")]
    UnknownMemberId,
    #[error("generation {0} is not the group's generation {1}")]
    IllegalGeneration(i32, i32),
    #[error("the group is rebalancing; rejoin")]
    RebalanceInProgress,
    #[error("join again with member id {0}")]
    MemberIdRequired(String),
    #[error("another member holds group.instance.id '{0}'")]
    FencedInstanceId(String),
    #[error("{0}")]
    InconsistentGroupProtocol(String),
    #[error("{0}")]
    InvalidSessionTimeout(String),
    #[error("the group has reached group_max_size ({0})")]
    GroupMaxSizeReached(usize),
    #[error("the group has members")]
    NonEmptyGroup,
    #[error("the group does not exist")]
    GroupIdNotFound,
    #[error("the group is subscribed to topic '{0}'")]
    GroupSubscribedToTopic(String),
    #[error("offset metadata of {size} bytes exceeds offset_metadata_max_bytes ({max})")]
    OffsetMetadataTooLarge { size: usize, max: usize },
    #[error("member epoch {0} is fenced: the coordinator's is {1}; rejoin")]
    FencedMemberEpoch(i32, i32),
    #[error("member epoch {0} is stale: the member's is {1}")]
    StaleMemberEpoch(i32, i32),
    #[error("another member still holds group.instance.id '{0}'")]
    UnreleasedInstanceId(String),
    #[error("server assignor '{0}' is not supported; use uniform or range")]
    UnsupportedAssignor(String),
    #[error("invalid subscription regex: {0}")]
    InvalidRegularExpression(String),
    #[error("{0}")]
    InconsistentGroupType(String),
    #[error("the group coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("{0}")]
    InvalidProducerEpoch(String),
    #[error("{0}")]
    ProducerFenced(String),
    #[error("transactional id '{0}' is completing a transaction; retry")]
    ConcurrentTransactions(String),
    #[error("{0}")]
    InvalidProducerIdMapping(String),
    #[error("{0}")]
    InvalidTxnState(String),
    #[error("{0}")]
    InvalidTransactionTimeout(String),
    #[error("{0}")]
    OutOfOrderSequenceNumber(String),
    /// A write that cannot be taken yet and should be retried (Kafka's
    /// answer to produce while its transaction is still being ended).
    #[error("{0}")]
    NotEnoughReplicas(String),
    #[error("no fetch session with this id (it was evicted or never existed)")]
    FetchSessionIdNotFound,
    #[error("the fetch session expects another epoch")]
    InvalidFetchSessionEpoch,
    #[error("the fetch session names its topics the other way (by id from Fetch v13)")]
    FetchSessionTopicIdError,
    #[error("storage error: {0}")]
    Storage(String),
    #[error("metadata store error: {0}")]
    Metadata(String),
}

impl BrokerError {
    /// The Kafka error code a client receives for this error.
    pub fn code(&self) -> i16 {
        self.kind().code()
    }

    fn kind(&self) -> ResponseError {
        use BrokerError::*;
        match self {
            UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
            UnknownTopicId => ResponseError::UnknownTopicId,
            InvalidTopic(_) => ResponseError::InvalidTopicException,
            TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
            InvalidPartitions(_) => ResponseError::InvalidPartitions,
            InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
            InvalidConfig(_) => ResponseError::InvalidConfig,
            InvalidRequest(_) => ResponseError::InvalidRequest,
            InvalidRequiredAcks(_) => ResponseError::InvalidRequiredAcks,
            MessageTooLarge { .. } | InflatedTooLarge { .. } => ResponseError::MessageTooLarge,
            InvalidRecord(_) => ResponseError::InvalidRecord,
            UnsupportedCompression(_) => ResponseError::UnsupportedCompressionType,
            PolicyViolation(_) => ResponseError::PolicyViolation,
            CorruptBatch(_) => ResponseError::CorruptMessage,
            UnsupportedMessageFormat(_) => ResponseError::UnsupportedForMessageFormat,
            OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            FencedLeaderEpoch => ResponseError::FencedLeaderEpoch,
            UnknownLeaderEpoch => ResponseError::UnknownLeaderEpoch,
            UnsupportedVersion(_) => ResponseError::UnsupportedVersion,
            InvalidGroupId(_) => ResponseError::InvalidGroupId,
            UnknownMemberId => ResponseError::UnknownMemberId,
            IllegalGeneration(..) => ResponseError::IllegalGeneration,
            RebalanceInProgress => ResponseError::RebalanceInProgress,
            MemberIdRequired(_) => ResponseError::MemberIdRequired,
            FencedInstanceId(_) => ResponseError::FencedInstanceId,
            InconsistentGroupProtocol(_) => ResponseError::InconsistentGroupProtocol,
            InvalidSessionTimeout(_) => ResponseError::InvalidSessionTimeout,
            GroupMaxSizeReached(_) => ResponseError::GroupMaxSizeReached,
            NonEmptyGroup => ResponseError::NonEmptyGroup,
            GroupIdNotFound => ResponseError::GroupIdNotFound,
            GroupSubscribedToTopic(_) => ResponseError::GroupSubscribedToTopic,
            OffsetMetadataTooLarge { .. } => ResponseError::OffsetMetadataTooLarge,
            FencedMemberEpoch(..) => ResponseError::FencedMemberEpoch,
            StaleMemberEpoch(..) => ResponseError::StaleMemberEpoch,
            UnreleasedInstanceId(_) => ResponseError::UnreleasedInstanceId,
            UnsupportedAssignor(_) => ResponseError::UnsupportedAssignor,
            InvalidRegularExpression(_) => ResponseError::InvalidRegularExpression,
            InconsistentGroupType(_) => ResponseError::InconsistentGroupProtocol,
            CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
            InvalidProducerEpoch(_) => ResponseError::InvalidProducerEpoch,
            ProducerFenced(_) => ResponseError::ProducerFenced,
            ConcurrentTransactions(_) => ResponseError::ConcurrentTransactions,
            InvalidProducerIdMapping(_) => ResponseError::InvalidProducerIdMapping,
            InvalidTxnState(_) => ResponseError::InvalidTxnState,
            InvalidTransactionTimeout(_) => ResponseError::InvalidTransactionTimeout,
            OutOfOrderSequenceNumber(_) => ResponseError::OutOfOrderSequenceNumber,
            NotEnoughReplicas(_) => ResponseError::NotEnoughReplicas,
            FetchSessionIdNotFound => ResponseError::FetchSessionIdNotFound,
            InvalidFetchSessionEpoch => ResponseError::InvalidFetchSessionEpoch,
            FetchSessionTopicIdError => ResponseError::FetchSessionTopicIdError,
            Storage(_) => ResponseError::KafkaStorageError,
            Metadata(_) => ResponseError::UnknownServerError,
        }
    }

    /// The message sent beside the code where the response has room for one.
    pub fn message(&self) -> Option<kafka_protocol::protocol::StrBytes> {
        Some(kafka_protocol::protocol::StrBytes::from_string(
            self.to_string(),
        ))
    }
}

impl From<StorageError> for BrokerError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::InvalidBatch(BatchError::UnsupportedMagic(m)) => {
                BrokerError::UnsupportedMessageFormat(format!(
                    "record batch magic {m} is not supported; producers must use magic 2"
                ))
            }
            StorageError::InvalidBatch(
                e @ (BatchError::BadRecordCount { .. } | BatchError::BadRecordFraming(_)),
            ) => BrokerError::InvalidRecord(e.to_string()),
            StorageError::InvalidBatch(e @ BatchError::UnsupportedCompression(_)) => {
                BrokerError::UnsupportedCompression(e.to_string())
            }
            StorageError::InvalidBatch(BatchError::InflatedTooLarge { limit }) => {
                BrokerError::InflatedTooLarge { limit }
            }
            StorageError::InvalidBatch(e) => BrokerError::CorruptBatch(e),
            StorageError::Producer(e @ ProducerError::InvalidProducerEpoch { .. }) => {
                BrokerError::InvalidProducerEpoch(e.to_string())
            }
            StorageError::Producer(e @ ProducerError::OutOfOrderSequence { .. }) => {
                BrokerError::OutOfOrderSequenceNumber(e.to_string())
            }
            StorageError::OffsetOutOfRange {
                requested,
                log_start,
                log_end,
            } => BrokerError::OffsetOutOfRange {
                requested,
                log_start,
                log_end,
            },
            StorageError::LogClosed => BrokerError::UnknownTopicOrPartition,
            StorageError::LogFailed | StorageError::Io(_) => BrokerError::Storage(e.to_string()),
        }
    }
}

pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

/// The code of a result with no payload of interest: 0 for success.
pub fn code_of<T>(result: &Result<T>) -> i16 {
    match result {
        Ok(_) => 0,
        Err(e) => e.code(),
    }
}
