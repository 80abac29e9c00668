//! The Kafka listener: accepts connections (up to the configured limit),
//! reads size-prefixed frames, decodes each request and hands it to its
//! handler, and writes responses in request order.
//!
//! Like Kafka, a connection's requests are answered in order, and handled
//! one at a time, except that produce requests are pipelined: the next one
//! is read and appended while earlier ones wait for their sync. Anything
//! that cannot be parsed closes the connection with a log line naming the
//! peer.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Encodable};
use sluice_storage::FileRegion;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info, warn};

use crate::broker::Broker;
use crate::handlers;

/// Bytes of a request before its client id: api key, version, correlation id.
const MIN_REQUEST_BYTES: usize = 8;

/// Serves the Kafka protocol on `listener` until the task is dropped.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(broker.config.max_connections));
    let budget = Arc::new(Semaphore::new(broker.config.max_inflight_request_bytes));
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Typically EMFILE: back off briefly rather than spin.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            warn!(
                %peer,
                limit = broker.config.max_connections,
                "connection refused: max_connections reached"
            );
            drop(socket);
            continue;
        };
        let broker = Arc::clone(&broker);
        let budget = Arc::clone(&budget);
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(reason) = serve_connection(&broker, &budget, socket, peer).await {
                warn!(%peer, "closing connection: {reason}");
            }
        });
    }
}

/// Why a connection was closed by the broker.
pub type CloseReason = String;

/// A response still to be computed: produce requests wait for durability
/// after their appends.
type LaterResponse = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Option<EncodedBody>, CloseReason>> + Send>,
>;

/// What the connection's writer sends, in request order.
enum Answer {
    /// A response (None: the request wants none).
    Ready(Option<EncodedBody>),
    /// A produce response, once its batches are durable.
    Later(LaterResponse),
    /// Signals the reader that everything before it has been answered.
    Barrier(tokio::sync::oneshot::Sender<()>),
}

/// A connection: a reader that takes requests in order, and a writer that
/// answers them in the same order (Kafka's per-connection guarantee).
/// Produce requests are pipelined: once one's batches are appended, the
/// next request is read while it waits for its sync, so a producer with
/// several requests in flight shares rounds of syncs instead of waiting a
/// round per request. Any other request is handled only after everything
/// before it is answered, as Kafka serves a connection.
async fn serve_connection(
    broker: &Arc<Broker>,
    budget: &Arc<Semaphore>,
    socket: TcpStream,
    peer: SocketAddr,
) -> Result<(), CloseReason> {
    let _ = socket.set_nodelay(true);
    debug!(%peer, "connection opened");
    let (reader, writer) = socket.into_split();
    // Buffered so that a small request's size and body usually arrive in
    // one read from the socket.
    let mut reader = tokio::io::BufReader::with_capacity(READ_BUFFER_BYTES, reader);
    let (answers, queued) = tokio::sync::mpsc::channel(broker.config.max_pipelined_requests);
    let writing = write_answers(broker, writer, queued);
    let reading = read_requests(broker, budget, &mut reader, peer, answers);
    tokio::pin!(writing);
    tokio::select! {
        read = reading => {
            // The reader is done (the peer closed, or a request was bad):
            // what is queued is still answered.
            let written = writing.await;
            read.and(written)
        }
        written = &mut writing => written,
    }
}

async fn read_requests(
    broker: &Arc<Broker>,
    budget: &Arc<Semaphore>,
    reader: &mut ConnectionReader,
    peer: SocketAddr,
    answers: tokio::sync::mpsc::Sender<Answer>,
) -> Result<(), CloseReason> {
    let closed = || "the connection's writer stopped".to_string();
    // Produce responses queued and not yet known to be written.
    let mut produce_pending = false;
    let limits = FrameLimits {
        max_request_bytes: broker.config.max_request_bytes,
        idle: std::time::Duration::from_millis(broker.config.connection_idle_timeout_ms),
    };
    loop {
        let Some((frame, held)) = read_frame(limits, budget, reader).await? else {
            debug!(%peer, "connection closed by peer");
            return Ok(());
        };
        if is_produce(&frame) {
            let later = start_produce(broker, frame, held, peer).await?;
            answers
                .send(Answer::Later(later))
                .await
                .map_err(|_| closed())?;
            produce_pending = true;
            continue;
        }
        if produce_pending {
            let (done, answered) = tokio::sync::oneshot::channel();
            answers
                .send(Answer::Barrier(done))
                .await
                .map_err(|_| closed())?;
            answered.await.map_err(|_| closed())?;
            produce_pending = false;
        }
        let response = handle_frame(broker, frame, peer).await?;
        // The request's bytes are gone once it is handled.
        drop(held);
        answers
            .send(Answer::Ready(response))
            .await
            .map_err(|_| closed())?;
    }
}

async fn write_answers(
    broker: &Broker,
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    mut queued: tokio::sync::mpsc::Receiver<Answer>,
) -> Result<(), CloseReason> {
    let write_timeout = std::time::Duration::from_millis(broker.config.connection_write_timeout_ms);
    while let Some(answer) = queued.recv().await {
        let response = match answer {
            Answer::Ready(response) => response,
            Answer::Later(later) => later.await?,
            Answer::Barrier(done) => {
                let _ = done.send(());
                continue;
            }
        };
        let Some(response) = response else { continue };
        tokio::time::timeout(write_timeout, write_response(&mut writer, &response))
            .await
            .map_err(|_| {
                format!(
                    "client did not read a {} byte response within {write_timeout:?} (connection_write_timeout_ms)",
                    response.len()
                )
            })?
            .map_err(|e| format!("write failed: {e}"))?;
    }
    Ok(())
}

/// Whether a frame (a whole request, after its size) is a produce request.
fn is_produce(frame: &Bytes) -> bool {
    frame.len() >= 2 && i16::from_be_bytes([frame[0], frame[1]]) == ApiKey::Produce as i16
}

/// A connection's read side. Its buffer is the only per-connection memory
/// not taken from the in-flight budget.
type ConnectionReader = tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>;

/// The read buffer of each connection.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Bytes read from a socket at a time while a frame arrives; the frame's
/// buffer grows by at most this much ahead of the bytes actually received.
const FRAME_CHUNK: usize = 32 * 1024;

/// The settings `read_frame` applies.
#[derive(Clone, Copy)]
struct FrameLimits {
    max_request_bytes: usize,
    /// How long a frame may take to arrive, and a connection to stay idle.
    idle: std::time::Duration,
}

/// Reads one size-prefixed frame; `None` on a clean end of stream.
///
/// The frame's whole share of the broker-wide in-flight `budget` is
/// taken once its size is read, before any of its body (Kafka's
/// queued.max.request.bytes does the same); while the budget is spent the
/// connection waits, its bytes left in the socket. Taken piece by piece as
/// bytes arrived instead, two large frames that each got part of the
/// budget would each wait for the rest forever. Memory is another matter:
/// it is allocated as the bytes arrive, never from the size prefix alone.
/// The returned permit holds the frame's share until the request is
/// handled.
async fn read_frame(
    limits: FrameLimits,
    budget: &Arc<Semaphore>,
    socket: &mut ConnectionReader,
) -> Result<Option<(Bytes, OwnedSemaphorePermit)>, CloseReason> {
    let FrameLimits {
        max_request_bytes,
        idle,
    } = limits;
    let mut size = [0u8; 4];
    match tokio::time::timeout(idle, socket.read_exact(&mut size)).await {
        Err(_) => return Err(format!("idle for {idle:?} (connection_idle_timeout_ms)")),
        Ok(Ok(_)) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Ok(Err(e)) => return Err(format!("read failed: {e}")),
    }
    let size = i32::from_be_bytes(size);
    if size < MIN_REQUEST_BYTES as i32 {
        return Err(format!("invalid frame size {size}"));
    }
    let size = size as usize;
    if size > max_request_bytes {
        return Err(format!(
            "frame of {size} bytes exceeds max_request_bytes ({max_request_bytes})"
        ));
    }
    // `max_inflight_request_bytes` is at least `max_request_bytes`, so
    // the share is granted once enough other requests finish. Waiting for
    // it is the broker's doing, not the client's: no idle timeout.
    let shares = u32::try_from(size).map_err(|_| format!("frame of {size} bytes"))?;
    let held = Arc::clone(budget)
        .acquire_many_owned(shares)
        .await
        .map_err(|_| "in-flight budget closed".to_string())?;
    let mut frame = BytesMut::new();
    let filled = async {
        while frame.len() < size {
            let chunk = (size - frame.len()).min(FRAME_CHUNK);
            // Read into spare capacity: zeroing a large produce frame first
            // would cost as much as reading it.
            frame.reserve(chunk);
            let target = frame.len() + chunk;
            while frame.len() < target {
                let mut limited = (&mut *socket).take((target - frame.len()) as u64);
                if limited.read_buf(&mut frame).await? == 0 {
                    return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
                }
            }
        }
        Ok(())
    };
    tokio::time::timeout(idle, filled)
        .await
        .map_err(|_| format!("frame of {size} bytes not received within {idle:?}"))?
        .map_err(|e| format!("truncated frame of {size} bytes: {e}"))?;
    Ok(Some((frame.freeze(), held)))
}

/// A request's header, checked: the API and version are ones we serve.
enum Parsed {
    Request(RequestContext, Bytes),
    /// Answered without a handler (the admin API, the KIP-511 fallback).
    Answered(EncodedBody),
}

fn parse_frame(
    broker: &Arc<Broker>,
    mut frame: Bytes,
    peer: SocketAddr,
) -> Result<Parsed, CloseReason> {
    let api_key_raw = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    if api_key_raw == crate::admin::ADMIN_API_KEY {
        return crate::admin::handle(broker, frame).map(Parsed::Answered);
    }
    let api_key = ApiKey::try_from(api_key_raw)
        .ok()
        .filter(|k| handlers::supported_versions(*k).is_some())
        .ok_or_else(|| format!("unsupported API key {api_key_raw}"))?;
    let Some((min, max)) = handlers::supported_versions(api_key) else {
        return Err(format!("unsupported API key {api_key_raw}"));
    };
    if version < min || version > max {
        if api_key == ApiKey::ApiVersions {
            // KIP-511: answer in v0 with our ranges so the client can retry.
            let body = handlers::api_versions::unsupported_version_response(broker);
            return encode_response(api_key, 0, correlation_id, &body).map(Parsed::Answered);
        }
        return Err(format!(
            "unsupported version {version} of {api_key:?} (supported {min}..={max})"
        ));
    }
    let header = decode_request_header_from_buffer(&mut frame)
        .map_err(|e| format!("malformed {api_key:?} v{version} request header: {e}"))?;
    let request = RequestContext {
        header,
        api_key,
        version,
        peer,
    };
    Ok(Parsed::Request(request, frame))
}

/// Decodes the header and dispatches. Returns the encoded response frame,
/// `None` when the request wants none (acks=0 produce), or a reason to close.
async fn handle_frame(
    broker: &Arc<Broker>,
    frame: Bytes,
    peer: SocketAddr,
) -> Result<Option<EncodedBody>, CloseReason> {
    let (request, body) = match parse_frame(broker, frame, peer)? {
        Parsed::Request(request, body) => (request, body),
        Parsed::Answered(response) => return Ok(Some(response)),
    };
    let response = handlers::dispatch(broker, &request, body).await?;
    match response {
        Some(body) => frame_response(&request, body).map(Some),
        None => Ok(None),
    }
}

/// A produce request: appended now; the returned future waits for its
/// durability and yields its response frame. The request keeps its share
/// of the in-flight budget (`held`) until its response is ready: under
/// `fsync = "always"` the journal holds a copy of its bytes until a round
/// has written them, so the budget bounds those copies too, and a
/// connection reads no further ahead than the disk keeps up with.
async fn start_produce(
    broker: &Arc<Broker>,
    frame: Bytes,
    held: OwnedSemaphorePermit,
    peer: SocketAddr,
) -> Result<LaterResponse, CloseReason> {
    let (request, body) = match parse_frame(broker, frame, peer)? {
        Parsed::Request(request, body) => (request, body),
        Parsed::Answered(response) => return Ok(Box::pin(async move { Ok(Some(response)) })),
    };
    let pending = handlers::start_produce(broker, &request, body).await?;
    let broker = Arc::clone(broker);
    // Its own task, so that it waits for its sync now, together with the
    // requests before it, rather than when the writer reaches it: a round
    // of syncs then covers every request appended before it began.
    let waiting = tokio::spawn(async move {
        let finished = pending.finish(&broker).await;
        drop(held);
        match finished? {
            Some(response) => {
                frame_response(&request, encode_body(&response, request.version)?).map(Some)
            }
            None => Ok(None),
        }
    });
    Ok(Box::pin(async move {
        waiting
            .await
            .map_err(|e| format!("produce task failed: {e}"))?
    }))
}

fn frame_response(request: &RequestContext, body: EncodedBody) -> Result<EncodedBody, CloseReason> {
    encode_framed(
        request.api_key,
        request.version,
        request.header.correlation_id,
        body,
    )
}

/// What a handler knows about the request besides its body.
pub struct RequestContext {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub version: i16,
    pub peer: SocketAddr,
}

impl RequestContext {
    /// The client id of the request header ("" when absent).
    pub fn client_id(&self) -> String {
        self.header.client_id.as_deref().unwrap_or("").to_string()
    }

    /// The client's host as Kafka shows it in group descriptions.
    pub fn client_host(&self) -> String {
        format!("/{}", self.peer.ip())
    }
}

/// A piece of an encoded response: bytes in memory, or record batches left
/// in a segment file for sendfile to move to the socket.
pub enum Chunk {
    Bytes(Bytes),
    File(FileRegion),
}

/// A response (body, or whole frame) already encoded at the request's
/// version, as a sequence of chunks.
#[derive(Default)]
pub struct EncodedBody {
    chunks: Vec<Chunk>,
    len: usize,
}

impl EncodedBody {
    pub fn push_bytes(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.len += bytes.len();
            self.chunks.push(Chunk::Bytes(bytes));
        }
    }

    pub fn push_file(&mut self, region: FileRegion) {
        if !region.is_empty() {
            self.len += region.len();
            self.chunks.push(Chunk::File(region));
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// All of it in memory.
    pub fn to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len);
        for chunk in &self.chunks {
            match chunk {
                Chunk::Bytes(bytes) => out.extend_from_slice(bytes),
                Chunk::File(region) => region.append_to(&mut out)?,
            }
        }
        Ok(out)
    }
}

/// Encodes a response message at `version` into an [`EncodedBody`].
pub fn encode_body<M: Encodable>(message: &M, version: i16) -> Result<EncodedBody, CloseReason> {
    let mut buf = BytesMut::new();
    message
        .encode(&mut buf, version)
        .map_err(|e| format!("cannot encode response: {e}"))?;
    let mut body = EncodedBody::default();
    body.push_bytes(buf.freeze());
    Ok(body)
}

fn encode_response<M: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    message: &M,
) -> Result<EncodedBody, CloseReason> {
    let body = encode_body(message, version)?;
    encode_framed(api_key, version, correlation_id, body)
}

fn encode_framed(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: EncodedBody,
) -> Result<EncodedBody, CloseReason> {
    // ApiVersions responses always use header v0 (KIP-511), even when flexible.
    let header_version = if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(version)
    };
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    let mut chunks = body.chunks.into_iter().peekable();
    // The size prefix and header travel with the body's first bytes, so a
    // small response is one write.
    let first_len = match chunks.peek() {
        Some(Chunk::Bytes(b)) => b.len(),
        _ => 0,
    };
    let mut head = BytesMut::with_capacity(4 + 8 + first_len);
    head.put_i32(0);
    header
        .encode(&mut head, header_version)
        .map_err(|e| format!("cannot encode response header: {e}"))?;
    let size = head.len() - 4 + body.len;
    let size = i32::try_from(size)
        .map_err(|_| format!("response of {size} bytes is too large for a frame"))?;
    head[..4].copy_from_slice(&size.to_be_bytes());
    if let Some(Chunk::Bytes(first)) = chunks.next_if(|c| matches!(c, Chunk::Bytes(_))) {
        head.extend_from_slice(&first);
    }
    let mut frame = EncodedBody::default();
    frame.push_bytes(head.freeze());
    for chunk in chunks {
        match chunk {
            Chunk::Bytes(bytes) => frame.push_bytes(bytes),
            Chunk::File(region) => frame.push_file(region),
        }
    }
    Ok(frame)
}

/// Responses up to this size are sent with one write, their file regions
/// read into memory first. Sent piece by piece, each partition's records
/// cost a sendfile and the next partition's header a write, and each
/// becomes a TCP segment that wakes the reader: for a consumer following
/// the tail of many partitions that costs more than the copy. Larger
/// responses (a consumer catching up) keep sendfile.
const COPY_RESPONSES_UP_TO: usize = 256 * 1024;

/// Writes a response frame: small ones with one write, others as bytes
/// with `write_all` and file regions with sendfile (page cache to socket,
/// no copy through user space).
async fn write_response(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    frame: &EncodedBody,
) -> std::io::Result<()> {
    if frame.chunks.len() > 1 && frame.len() <= COPY_RESPONSES_UP_TO {
        return writer.write_all(&frame.to_vec()?).await;
    }
    for chunk in &frame.chunks {
        match chunk {
            Chunk::Bytes(bytes) => writer.write_all(bytes).await?,
            Chunk::File(region) => send_file(writer, region).await?,
        }
    }
    Ok(())
}

async fn send_file(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    region: &FileRegion,
) -> std::io::Result<()> {
    let socket: &TcpStream = writer.as_ref();
    let mut position = region.position();
    let end = position + region.len() as u64;
    while position < end {
        let remaining = (end - position) as usize;
        let sent = socket.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(&*socket, region.file(), Some(&mut position), remaining)
                .map_err(std::io::Error::from)
        });
        match sent {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "segment file ended inside a region being sent",
                ))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => socket.writable().await?,
            Err(e) if position == region.position() && sendfile_unsupported(&e) => {
                // Not a file sendfile can read: copy instead.
                return writer.write_all(&region.to_vec()?).await;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn sendfile_unsupported(error: &std::io::Error) -> bool {
    matches!(
        rustix::io::Errno::from_io_error(error),
        Some(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS | rustix::io::Errno::OPNOTSUPP)
    )
}

/// Raises the process's open-files limit to `max_open_files` (0: the hard
/// limit) and returns the limit in force. Failing to raise it is not fatal:
/// the broker runs with what it has, and says so, as it does when the
/// limit is below what `max_partitions` and `max_connections` could need.
pub fn raise_open_files_limit(config: &crate::BrokerConfig) -> Option<u64> {
    let max_open_files = config.max_open_files;
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let wanted = match (max_open_files, limit.maximum) {
        (0, hard) => hard,
        (n, Some(hard)) => Some(n.min(hard)),
        (n, None) => Some(n),
    };
    if wanted.is_some() && wanted != limit.current {
        let raised = Rlimit {
            current: wanted,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            warn!(error = %e, wanted = ?wanted, "cannot change the open-files limit (max_open_files)");
        }
    }
    let in_force = getrlimit(Resource::Nofile).current;
    // Each partition keeps at least its active segment's three files open,
    // each connection one.
    let connections = config.max_connections as u64;
    let fit = in_force.map(|limit| limit.saturating_sub(connections) / 3);
    info!(
        open_files_limit = ?in_force,
        partitions_that_fit = ?fit,
        "open-files limit"
    );
    let explicit = config.max_partitions != crate::BrokerConfig::default().max_partitions;
    if let Some(fit) = fit.filter(|&fit| explicit && fit < config.max_partitions as u64) {
        warn!(
            max_partitions = config.max_partitions,
            partitions_that_fit = fit,
            "max_partitions is above what the open-files limit allows with max_connections \
             connections; creating partitions will fail near the limit (raise the hard limit, \
             or lower max_partitions)"
        );
    }
    in_force
}

/// Binds the listener and records the address it got in `config.listen`,
/// so that `--listen HOST:0` picks a free port and advertises it.
pub async fn bind(config: &mut crate::BrokerConfig) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(&config.listen).await?;
    config.listen = listener.local_addr()?.to_string();
    Ok(listener)
}

/// Logs where the broker listens; tests and scripts read this line.
pub fn log_ready(broker: &Broker) {
    let (host, port) = broker.config.advertised();
    info!(
        listen = %broker.config.listen,
        advertised = %format!("{host}:{port}"),
        "Kafka listener ready"
    );
}

/// Reads a request body, mapping decode failures to a close reason.
pub fn decode_body<M: kafka_protocol::protocol::Decodable>(
    request: &RequestContext,
    mut body: Bytes,
) -> Result<M, CloseReason> {
    // The crate's decoders reserve memory from the counts they read; the
    // walk first proves every count and length is backed by the frame.
    let schema = crate::wire::schema_for(request.api_key)
        .ok_or_else(|| format!("no request schema for {:?}", request.api_key))?;
    crate::wire::walk_request(schema, request.version, &body).map_err(|e| {
        format!(
            "malformed {:?} v{} request: {e}",
            request.api_key, request.version
        )
    })?;
    let message = M::decode(&mut body, request.version).map_err(|e| {
        format!(
            "malformed {:?} v{} request: {e}",
            request.api_key, request.version
        )
    })?;
    if body.has_remaining() {
        debug!(
            peer = %request.peer,
            trailing = body.remaining(),
            "request has trailing bytes"
        );
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn until(condition: impl Fn() -> bool) {
        for _ in 0..10_000 {
            if condition() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("condition not reached within 10 s");
    }

    /// A client's end and the broker's buffered end of one connection.
    async fn connection(listener: &TcpListener) -> (TcpStream, ConnectionReader) {
        let address = listener.local_addr().expect("address");
        let (client, accepted) = tokio::join!(TcpStream::connect(address), listener.accept());
        let (read_half, _write_half) = accepted.expect("accept").0.into_split();
        let reader = tokio::io::BufReader::with_capacity(READ_BUFFER_BYTES, read_half);
        (client.expect("connect"), reader)
    }

    /// Two large frames and a budget that holds one: the first takes its
    /// whole share as soon as its size is read, before the rest of its
    /// body; the second, arriving meanwhile, waits for that share instead
    /// of taking part of the budget, and both are read whole. (Taken as
    /// bytes arrived, each frame could hold part of the budget and wait
    /// for the rest forever.)
    #[tokio::test]
    async fn a_frame_takes_its_whole_share_of_the_budget_once_its_size_is_read() {
        const BODY: usize = 150_000;
        let limits = FrameLimits {
            max_request_bytes: 200_000,
            idle: std::time::Duration::from_secs(30),
        };
        let budget = Arc::new(Semaphore::new(200_000));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let (mut first_client, mut first) = connection(&listener).await;
        let (mut second_client, mut second) = connection(&listener).await;
        let mut frame = (BODY as i32).to_be_bytes().to_vec();
        frame.extend((0..BODY).map(|i| i as u8));
        let (head, rest) = frame.split_at(110_000);

        first_client.write_all(head).await.expect("first head");
        let reading_first = tokio::spawn({
            let budget = Arc::clone(&budget);
            async move { read_frame(limits, &budget, &mut first).await }
        });
        until(|| budget.available_permits() == 200_000 - BODY).await;
        let reading_second = tokio::spawn({
            let budget = Arc::clone(&budget);
            async move { read_frame(limits, &budget, &mut second).await }
        });
        // The second frame whole, from a task of its own: unread, it may
        // not fit the socket's buffers.
        let writing_second = tokio::spawn({
            let frame = frame.clone();
            async move { second_client.write_all(&frame).await }
        });
        first_client.write_all(rest).await.expect("first rest");
        for reading in [reading_first, reading_second] {
            let (body, held) = reading
                .await
                .expect("task")
                .expect("frame")
                .expect("not eof");
            assert_eq!(&body[..], &frame[4..]);
            drop(held);
        }
        writing_second.await.expect("task").expect("second frame");
        assert_eq!(budget.available_permits(), 200_000);
    }
}
