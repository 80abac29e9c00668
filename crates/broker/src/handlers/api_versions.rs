//! ApiVersions: which APIs and versions this broker speaks.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;

use super::SUPPORTED_APIS;

pub fn handle(_request: ApiVersionsRequest) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.api_keys = advertised();
    response
}

/// The answer to an ApiVersions request newer than we know (KIP-511): an
/// error plus our ranges, which the client uses to retry.
pub fn unsupported_version_response() -> ApiVersionsResponse {
    let mut response = handle(ApiVersionsRequest::default());
    response.error_code = ResponseError::UnsupportedVersion.code();
    response
}

fn advertised() -> Vec<ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .map(|&(key, min, max)| {
            let mut api = ApiVersion::default();
            api.api_key = key as i16;
            api.min_version = min;
            api.max_version = max;
            api
        })
        .collect()
}
