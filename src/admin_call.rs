//! Calls to Sluice's admin API (see `sluice_broker::admin`) from the
//! command line.

use anyhow::{bail, Context, Result};
use sluice_broker::admin::{AdminRequest, AdminResponse, ADMIN_API_KEY, ADMIN_API_VERSION};
use sluice_client::Client;

/// Sends `request` to `group`'s coordinator (or the bootstrap broker).
/// None when the broker is not Sluice; an error answer becomes an error.
pub async fn call(
    client: &mut Client,
    group: Option<&str>,
    request: &AdminRequest,
) -> Result<Option<AdminResponse>> {
    let body = serde_json::to_vec(request)?;
    let Some(answer) = client
        .sluice_admin(group, ADMIN_API_KEY, ADMIN_API_VERSION, &body)
        .await?
    else {
        return Ok(None);
    };
    match serde_json::from_slice(&answer).context("decoding the admin answer")? {
        AdminResponse::Error { message } => bail!("{message}"),
        other => Ok(Some(other)),
    }
}

/// Like [`call`], for what only Sluice can do.
pub async fn call_sluice(
    client: &mut Client,
    group: Option<&str>,
    request: &AdminRequest,
) -> Result<AdminResponse> {
    match call(client, group, request).await? {
        Some(answer) => Ok(answer),
        None => bail!("the broker is not Sluice: this needs Sluice's admin API"),
    }
}
