//! ApiVersions: which APIs and versions this broker speaks, and the
//! features it has finalized (KIP-584). Clients read `transaction.version`
//! there: at 2 the Java client 4.x uses Transactions V2 (KIP-890).

use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::SUPPORTED_APIS;
use crate::broker::Broker;

/// The feature Kafka clients read to choose the transaction protocol.
const TRANSACTION_VERSION: &str = "transaction.version";

/// The epoch of the finalized features. They change only with the
/// broker's settings, at a restart; clients only compare it with the epoch
/// they saw last, which must be at least 0 for them to read the features.
const FINALIZED_FEATURES_EPOCH: i64 = 1;

/// The highest EndTxn version of the original transaction protocol: v5
/// answers with a bumped epoch (Transactions V2).
const LAST_END_TXN_VERSION_BEFORE_V2: i16 = 4;

pub fn handle(broker: &Broker) -> ApiVersionsResponse {
    let transaction_version = broker.config.transaction_version;
    let mut response = ApiVersionsResponse::default();
    response.api_keys = advertised(transaction_version);
    let mut supported = SupportedFeatureKey::default();
    supported.name = StrBytes::from_static_str(TRANSACTION_VERSION);
    supported.min_version = 0;
    supported.max_version = 2;
    response.supported_features = vec![supported];
    let mut finalized = FinalizedFeatureKey::default();
    finalized.name = StrBytes::from_static_str(TRANSACTION_VERSION);
    finalized.min_version_level = transaction_version;
    finalized.max_version_level = transaction_version;
    response.finalized_features = vec![finalized];
    response.finalized_features_epoch = FINALIZED_FEATURES_EPOCH;
    response
}

/// The answer to an ApiVersions request newer than we know (KIP-511): an
/// error plus our ranges, which the client uses to retry.
pub fn unsupported_version_response(broker: &Broker) -> ApiVersionsResponse {
    let mut response = handle(broker);
    response.error_code = ResponseError::UnsupportedVersion.code();
    response
}

fn advertised(transaction_version: i16) -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|&(key, min, max)| {
            let mut api = ApiVersion::default();
            api.api_key = key as i16;
            api.min_version = min;
            api.max_version = if key == ApiKey::EndTxn && transaction_version < 2 {
                max.min(LAST_END_TXN_VERSION_BEFORE_V2)
            } else {
                max
            };
            api
        })
        .collect()
}
