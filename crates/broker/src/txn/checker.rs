//! The transaction check-back: when a transaction stays open too long, the
//! broker asks the producer's side what became of its local transaction,
//! with an HTTP POST of a JSON body to the checker configured for the
//! transactional id's prefix, and acts on the answer.
//!
//! ```text
//! POST <url>  {"transactional_id": "…", "producer_id": N, "producer_epoch": N,
//!              "open_since_ms": N, "partitions": [{"topic": "…", "partition": N}]}
//! 200         {"decision": "commit" | "rollback" | "unknown"}
//! ```
//!
//! Anything else (an error, a timeout, another status, a body that is not
//! that JSON) counts as "unknown". The client is HTTP/1.1 over a plain TCP
//! connection, one request per connection, with a bounded response: no
//! dependency for a few lines of protocol.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::TransactionChecker;

/// The largest response read from a checker.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, Serialize)]
pub struct CheckRequest {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub open_since_ms: i64,
    pub partitions: Vec<CheckPartition>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckPartition {
    pub topic: String,
    pub partition: i32,
}

/// A checker's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Commit,
    Rollback,
    Unknown,
}

impl Decision {
    pub fn name(self) -> &'static str {
        match self {
            Decision::Commit => "commit",
            Decision::Rollback => "rollback",
            Decision::Unknown => "unknown",
        }
    }
}

#[derive(Deserialize)]
struct Answer {
    decision: String,
}

/// The checker for `transactional_id`: the one with the longest matching
/// prefix.
pub fn checker_for<'a>(
    checkers: &'a [TransactionChecker],
    transactional_id: &str,
) -> Option<&'a TransactionChecker> {
    checkers
        .iter()
        .filter(|c| transactional_id.starts_with(&c.transactional_id_prefix))
        .max_by_key(|c| c.transactional_id_prefix.len())
}

/// Asks `url`; any failure is `Unknown`, with why.
pub async fn ask(url: &str, request: &CheckRequest, timeout: Duration) -> (Decision, String) {
    match tokio::time::timeout(timeout, post(url, request)).await {
        Ok(Ok(decision)) => (decision, String::new()),
        Ok(Err(why)) => (Decision::Unknown, why),
        Err(_) => (Decision::Unknown, format!("no answer within {timeout:?}")),
    }
}

async fn post(url: &str, request: &CheckRequest) -> Result<Decision, String> {
    let (host, path) = split_url(url)?;
    let body = serde_json::to_vec(request).map_err(|e| e.to_string())?;
    let mut stream = TcpStream::connect(&host)
        .await
        .map_err(|e| format!("cannot connect to {host}: {e}"))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    stream.write_all(&body).await.map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    parse_response(&response)
}

/// `http://host:port/path` → ("host:port", "/path").
fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// urls are supported"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if host.is_empty() {
        return Err(format!("{url}: no host"));
    }
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    Ok((host, path.to_string()))
}

/// The decision in an HTTP response: status 200 and a JSON body with a
/// known decision; anything else is an error.
fn parse_response(response: &[u8]) -> Result<Decision, String> {
    let text = std::str::from_utf8(response).map_err(|_| "a response that is not UTF-8")?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("a response without a header end")?;
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .ok_or("a response without a status")?;
    if status != "200" {
        return Err(format!("status {status}"));
    }
    let answer: Answer = serde_json::from_str(body.trim())
        .map_err(|e| format!("a body that is not the answer: {e}"))?;
    match answer.decision.as_str() {
        "commit" => Ok(Decision::Commit),
        "rollback" => Ok(Decision::Rollback),
        "unknown" => Ok(Decision::Unknown),
        other => Err(format!("an unknown decision '{other}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_strictly() {
        let ok =
            |body: &str| format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{body}");
        assert_eq!(
            parse_response(ok(r#"{"decision":"commit"}"#).as_bytes()),
            Ok(Decision::Commit)
        );
        assert_eq!(
            parse_response(ok(r#"{"decision": "rollback"}"#).as_bytes()),
            Ok(Decision::Rollback)
        );
        assert_eq!(
            parse_response(ok(r#"{"decision":"unknown"}"#).as_bytes()),
            Ok(Decision::Unknown)
        );
        assert!(parse_response(ok(r#"{"decision":"maybe"}"#).as_bytes()).is_err());
        assert!(parse_response(ok("garbage").as_bytes()).is_err());
        assert!(parse_response(b"HTTP/1.1 500 Oops\r\n\r\n{\"decision\":\"commit\"}").is_err());
        assert!(parse_response(b"\xff\xfe").is_err());
    }

    #[test]
    fn urls_and_prefixes() {
        assert_eq!(
            split_url("http://127.0.0.1:8080/check").unwrap(),
            ("127.0.0.1:8080".to_string(), "/check".to_string())
        );
        assert_eq!(
            split_url("http://checker").unwrap(),
            ("checker:80".to_string(), "/".to_string())
        );
        assert!(split_url("https://x/").is_err());
        let checkers = vec![
            TransactionChecker {
                transactional_id_prefix: "order".into(),
                url: "http://a/".into(),
            },
            TransactionChecker {
                transactional_id_prefix: "order-service".into(),
                url: "http://b/".into(),
            },
        ];
        assert_eq!(
            checker_for(&checkers, "order-service-1").unwrap().url,
            "http://b/"
        );
        assert_eq!(checker_for(&checkers, "orders").unwrap().url, "http://a/");
        assert!(checker_for(&checkers, "payments").is_none());
    }
}
