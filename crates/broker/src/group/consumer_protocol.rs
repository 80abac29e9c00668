//! The consumer's embedded protocol: the bytes a classic consumer puts in
//! JoinGroup (its subscription) and gets back from SyncGroup (its
//! assignment), as Kafka's `ConsumerProtocolSubscription` and
//! `ConsumerProtocolAssignment` schemas define them (non-flexible, versions
//! 0 to 3; a later version is read as version 3, as Kafka reads it).
//!
//! The coordinator reads them when a consumer group serves members of both
//! protocols: to learn a classic member's topics and owned partitions, and
//! to hand it the partitions the broker assigned.
//!
//! The bytes come from clients, so every count is checked against the
//! bytes left before it is used, and nothing is allocated from a count.

use bytes::{BufMut, Bytes, BytesMut};

/// The embedded protocol's highest version Sluice reads and writes.
const HIGHEST_VERSION: i16 = 3;

/// What a classic consumer subscribes to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    pub version: i16,
    pub topics: Vec<String>,
    /// v1+: the partitions the member holds as it joins.
    pub owned: Vec<(String, Vec<i32>)>,
    /// v3+.
    pub rack_id: Option<String>,
}

/// Decodes a subscription; None when the bytes are not one.
pub fn decode_subscription(bytes: &[u8]) -> Option<Subscription> {
    let mut r = Reader(bytes);
    let version = r.i16()?;
    if version < 0 {
        return None;
    }
    let version = version.min(HIGHEST_VERSION);
    let mut subscription = Subscription {
        version,
        ..Subscription::default()
    };
    for _ in 0..r.array_len()? {
        subscription.topics.push(r.string()?);
    }
    r.nullable_bytes()?;
    if version >= 1 {
        subscription.owned = r.topic_partitions()?;
    }
    if version >= 2 {
        r.i32()?;
    }
    if version >= 3 {
        subscription.rack_id = r.nullable_string()?;
    }
    Some(subscription)
}

/// Decodes an assignment's partitions; None when the bytes are not one.
/// Empty bytes are an empty assignment (what a member that never synced
/// holds).
pub fn decode_assignment(bytes: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let mut r = Reader(bytes);
    if r.i16()? < 0 {
        return None;
    }
    let partitions = r.topic_partitions()?;
    r.nullable_bytes()?;
    Some(partitions)
}

/// Encodes an assignment at `version` (the member's subscription version,
/// as Kafka answers), without user data.
pub fn encode_assignment(version: i16, partitions: &[(String, Vec<i32>)]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(version.clamp(0, HIGHEST_VERSION));
    out.put_i32(partitions.len() as i32);
    for (topic, ps) in partitions {
        out.put_i16(topic.len() as i16);
        out.put_slice(topic.as_bytes());
        out.put_i32(ps.len() as i32);
        for p in ps {
            out.put_i32(*p);
        }
    }
    out.put_i32(-1);
    out.freeze()
}

/// The version of a subscription's bytes (0 when they have none).
pub fn version_of(bytes: &[u8]) -> i16 {
    Reader(bytes).i16().unwrap_or(0).clamp(0, HIGHEST_VERSION)
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    /// An array's length: a null array counts as empty, and a length the
    /// remaining bytes cannot hold (each element takes at least two) is
    /// refused before any loop runs on it.
    fn array_len(&mut self) -> Option<usize> {
        let len = self.i32()?;
        if len < 0 {
            return Some(0);
        }
        let len = len as usize;
        (len.saturating_mul(2) <= self.0.len()).then_some(len)
    }

    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.i16()?).ok()?;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }

    fn nullable_string(&mut self) -> Option<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Some(None);
        }
        let bytes = self.take(len as usize)?;
        Some(Some(String::from_utf8(bytes.to_vec()).ok()?))
    }

    fn nullable_bytes(&mut self) -> Option<()> {
        let len = self.i32()?;
        if len >= 0 {
            self.take(len as usize)?;
        }
        Some(())
    }

    fn topic_partitions(&mut self) -> Option<Vec<(String, Vec<i32>)>> {
        let mut out = Vec::new();
        for _ in 0..self.array_len()? {
            let topic = self.string()?;
            let mut partitions = Vec::new();
            for _ in 0..self.array_len()? {
                partitions.push(self.i32()?);
            }
            out.push((topic, partitions));
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A subscription as the Java client writes it at `version`.
    fn subscription_bytes(version: i16, topics: &[&str], owned: &[(&str, &[i32])]) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.put_i16(version);
        out.put_i32(topics.len() as i32);
        for t in topics {
            out.put_i16(t.len() as i16);
            out.put_slice(t.as_bytes());
        }
        out.put_i32(3);
        out.put_slice(b"abc");
        if version >= 1 {
            out.put_i32(owned.len() as i32);
            for (t, ps) in owned {
                out.put_i16(t.len() as i16);
                out.put_slice(t.as_bytes());
                out.put_i32(ps.len() as i32);
                for p in *ps {
                    out.put_i32(*p);
                }
            }
        }
        if version >= 2 {
            out.put_i32(7);
        }
        if version >= 3 {
            out.put_i16(2);
            out.put_slice(b"r1");
        }
        out.to_vec()
    }

    #[test]
    fn reads_every_subscription_version() {
        let v0 = decode_subscription(&subscription_bytes(0, &["a", "b"], &[])).unwrap();
        assert_eq!(v0.topics, ["a", "b"]);
        assert!(v0.owned.is_empty());
        let v3 = decode_subscription(&subscription_bytes(3, &["a"], &[("a", &[0, 2])])).unwrap();
        assert_eq!(v3.version, 3);
        assert_eq!(v3.owned, vec![("a".to_string(), vec![0, 2])]);
        assert_eq!(v3.rack_id.as_deref(), Some("r1"));
        // A newer version is read with the fields Sluice knows.
        let mut v9 = subscription_bytes(3, &["a"], &[]);
        v9[1] = 9;
        assert_eq!(decode_subscription(&v9).unwrap().version, 3);
    }

    #[test]
    fn refuses_damaged_bytes_without_allocating_from_counts() {
        let good = subscription_bytes(3, &["topic"], &[("topic", &[1, 2, 3])]);
        for cut in 0..good.len() {
            assert_eq!(decode_subscription(&good[..cut]), None, "cut at {cut}");
        }
        let mut huge = BytesMut::new();
        huge.put_i16(0);
        huge.put_i32(i32::MAX);
        assert_eq!(decode_subscription(&huge), None);
        assert_eq!(decode_assignment(&[0, 0, 0x7f, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn assignment_round_trips() {
        let partitions = vec![("a".to_string(), vec![0, 1]), ("b".to_string(), vec![4])];
        let bytes = encode_assignment(1, &partitions);
        assert_eq!(version_of(&bytes), 1);
        assert_eq!(decode_assignment(&bytes).unwrap(), partitions);
        assert_eq!(decode_assignment(&[]).unwrap(), vec![]);
    }
}
