//! One connection to one Kafka broker: request framing, version negotiation
//! through ApiVersions, and typed request/response exchange.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response frame this client accepts.
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;
/// How long to wait for a response before giving up on the broker.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Connection {
    stream: TcpStream,
    address: String,
    next_correlation_id: i32,
    client_id: String,
    /// The broker's supported version range per API key.
    broker_versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects and learns the broker's API versions.
    pub async fn connect(address: &str, client_id: &str) -> Result<Connection> {
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(address))
            .await
            .map_err(|_| anyhow!("timed out connecting to {address}"))?
            .with_context(|| format!("cannot connect to {address}"))?;
        stream.set_nodelay(true)?;
        let mut connection = Connection {
            stream,
            address: address.to_string(),
            next_correlation_id: 1,
            client_id: client_id.to_string(),
            broker_versions: HashMap::new(),
        };
        let mut request = ApiVersionsRequest::default();
        request.client_software_name = StrBytes::from_static_str("sluice-cli");
        request.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
        let response = connection.exchange(&request, 3).await?;
        if response.error_code != 0 {
            bail!(
                "broker at {address} refused ApiVersions (error {})",
                response.error_code
            );
        }
        connection.broker_versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(connection)
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// The highest version of `R` that both sides support, capped at
    /// `max_version` (the newest version the calling code understands).
    pub fn version_for<R: Request>(&self, max_version: i16) -> Result<i16> {
        let api = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown API key {}", R::KEY))?;
        let (broker_min, broker_max) = self
            .broker_versions
            .get(&R::KEY)
            .copied()
            .ok_or_else(|| anyhow!("broker at {} does not support {api:?}", self.address))?;
        let ours = R::VERSIONS;
        let version = broker_max.min(max_version).min(ours.max);
        if version < broker_min.max(ours.min) {
            bail!(
                "no common version of {api:?} with broker at {} (broker {broker_min}..={broker_max})",
                self.address
            );
        }
        Ok(version)
    }

    /// Sends `request` at the best common version up to `max_version`.
    pub async fn send<R: Request>(&mut self, request: &R, max_version: i16) -> Result<R::Response> {
        let version = self.version_for::<R>(max_version)?;
        self.exchange(request, version).await
    }

    /// Sends a request that expects no response (acks=0 produce).
    pub async fn send_oneway<R: Request>(&mut self, request: &R, max_version: i16) -> Result<()> {
        let version = self.version_for::<R>(max_version)?;
        self.write_request(request, version).await.map(|_| ())
    }

    async fn write_request<R: Request>(&mut self, request: &R, version: i16) -> Result<i32> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let mut header = RequestHeader::default();
        header.request_api_key = R::KEY;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header.client_id = Some(StrBytes::from_string(self.client_id.clone()));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, R::header_version(version))?;
        request.encode(&mut buf, version)?;
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&buf)
            .await
            .with_context(|| format!("write to {} failed", self.address))?;
        Ok(correlation_id)
    }

    async fn exchange<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response> {
        let correlation_id = self.write_request(request, version).await?;
        let mut frame = tokio::time::timeout(RESPONSE_TIMEOUT, self.read_frame())
            .await
            .map_err(|_| anyhow!("no response from {} in {RESPONSE_TIMEOUT:?}", self.address))??;
        let header_version = R::Response::header_version(version);
        let header = ResponseHeader::decode(&mut frame, header_version)?;
        if header.correlation_id != correlation_id {
            bail!(
                "response from {} has correlation id {}, expected {correlation_id}",
                self.address,
                header.correlation_id
            );
        }
        let response = R::Response::decode(&mut frame, version)?;
        Ok(response)
    }

    /// Sends a request of an API the protocol crate does not know (Sluice's
    /// admin API): header v1 with `api_key` and `version`, then `body`.
    /// Returns the response after its correlation id.
    pub async fn exchange_raw(
        &mut self,
        api_key: i16,
        version: i16,
        body: &[u8],
    ) -> Result<bytes::Bytes> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        buf.put_i16(api_key);
        buf.put_i16(version);
        buf.put_i32(correlation_id);
        buf.put_i16(self.client_id.len() as i16);
        buf.put_slice(self.client_id.as_bytes());
        buf.put_slice(body);
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&buf)
            .await
            .with_context(|| format!("write to {} failed", self.address))?;
        let mut frame = tokio::time::timeout(RESPONSE_TIMEOUT, self.read_frame())
            .await
            .map_err(|_| anyhow!("no response from {} in {RESPONSE_TIMEOUT:?}", self.address))??;
        if frame.remaining() < 4 || frame.get_i32() != correlation_id {
            bail!("response from {} does not match the request", self.address);
        }
        Ok(frame)
    }

    async fn read_frame(&mut self) -> Result<bytes::Bytes> {
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .await
            .with_context(|| format!("connection to {} closed", self.address))?;
        let size = i32::from_be_bytes(size);
        if size < 0 || size as usize > MAX_RESPONSE_BYTES {
            bail!("response frame of {size} bytes from {}", self.address);
        }
        let mut frame = BytesMut::zeroed(size as usize);
        self.stream.read_exact(&mut frame).await?;
        let frame = frame.freeze();
        if !frame.has_remaining() {
            bail!("empty response frame from {}", self.address);
        }
        Ok(frame)
    }
}
