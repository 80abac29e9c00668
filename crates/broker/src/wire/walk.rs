//! A validating walk of a request body, run before the `kafka-protocol`
//! crate decodes it.
//!
//! The crate's decoders reserve memory from counts the client sent
//! (`Vec::with_capacity(count)`) before checking that the elements are
//! there, and a failed allocation aborts the process. The walk reads the
//! body exactly as the decoder will, following the request's schema, but
//! allocates nothing: every length and count must be backed by bytes that
//! are really in the frame. Once it passes, the decoder can reserve at most
//! one element per element actually present, so its memory is bounded by a
//! small multiple of the frame size.

use kafka_protocol::messages::ApiKey;

/// A field's wire type. Strings, bytes and arrays use the compact
/// (varint) encoding in a struct's flexible versions.
pub enum Ty {
    Int8,
    Int16,
    Int32,
    Int64,
    UInt16,
    UInt32,
    Float64,
    Bool,
    Uuid,
    String,
    Bytes,
    Array(&'static Ty),
    Struct(&'static StructSchema),
    /// A struct preceded by a presence byte (1: present).
    OptionStruct(&'static StructSchema),
}

/// One field of a struct, and the versions in which it is on the wire.
pub struct Field {
    pub name: &'static str,
    /// Inclusive range of versions that carry the field.
    pub versions: (i16, i16),
    /// `Some(tag)` for a tagged field (flexible versions only).
    pub tag: Option<u32>,
    pub ty: Ty,
}

pub struct StructSchema {
    pub name: &'static str,
    /// First version using compact encodings and tagged fields.
    pub flexible_from: i16,
    pub fields: &'static [Field],
}

/// The body of one API's request.
pub struct RequestSchema {
    pub api_key: ApiKey,
    pub versions: (i16, i16),
    pub body: &'static StructSchema,
}

/// Why a body does not follow its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkError {
    /// `Struct.field` where the walk stopped.
    pub at: String,
    pub reason: &'static str,
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {}", self.reason, self.at)
    }
}

impl std::error::Error for WalkError {}

/// The schema of `api_key`'s request, if the walker knows it.
pub fn schema_for(api_key: ApiKey) -> Option<&'static RequestSchema> {
    super::schemas::ALL
        .iter()
        .copied()
        .find(|s| s.api_key == api_key)
}

/// Checks that `body` is a well-formed request of `schema` at `version`,
/// with every length and count backed by bytes of `body`. Returns the
/// number of bytes the request occupies (trailing bytes are not an error,
/// as for the decoder).
pub fn walk_request(schema: &RequestSchema, version: i16, body: &[u8]) -> Result<usize, WalkError> {
    if version < schema.versions.0 || version > schema.versions.1 {
        return Err(WalkError {
            at: schema.body.name.to_string(),
            reason: "version outside the schema",
        });
    }
    let mut cursor = Cursor {
        bytes: body,
        pos: 0,
    };
    walk_struct(&mut cursor, schema.body, version)?;
    Ok(cursor.pos)
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

/// A failure before it is given a location.
type Step<T> = Result<T, &'static str>;

const SHORT: &str = "length or count exceeds the bytes left";

impl Cursor<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Step<&[u8]> {
        if n > self.remaining() {
            return Err(SHORT);
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn i8(&mut self) -> Step<i8> {
        Ok(self.take(1)?[0] as i8)
    }

    fn i16(&mut self) -> Step<i16> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Step<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn uvarint(&mut self) -> Step<u32> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint longer than 5 bytes")
    }

    /// A length (or count) prefix; `None` for null.
    fn length(&mut self, compact: bool, wide: bool) -> Step<Option<usize>> {
        let n: i64 = if compact {
            i64::from(self.uvarint()?) - 1
        } else if wide {
            i64::from(self.i32()?)
        } else {
            i64::from(self.i16()?)
        };
        match n {
            -1 => Ok(None),
            n if n < 0 => Err("negative length"),
            n => Ok(Some(n as usize)),
        }
    }
}

fn walk_struct(cursor: &mut Cursor, schema: &StructSchema, version: i16) -> Result<(), WalkError> {
    let at = |field: &str, reason| WalkError {
        at: format!("{}.{}", schema.name, field),
        reason,
    };
    let flexible = version >= schema.flexible_from;
    for field in schema.fields {
        if field.tag.is_some() || version < field.versions.0 || version > field.versions.1 {
            continue;
        }
        walk_value(cursor, &field.ty, version, flexible).map_err(|e| nest(e, schema, field))?;
    }
    if !flexible {
        return Ok(());
    }
    let count = cursor.uvarint().map_err(|r| at("<tagged fields>", r))?;
    for _ in 0..count {
        let tag = cursor.uvarint().map_err(|r| at("<tag>", r))?;
        let size = cursor.uvarint().map_err(|r| at("<tag size>", r))? as usize;
        if size > cursor.remaining() {
            return Err(at("<tag size>", SHORT));
        }
        let known = schema.fields.iter().find(|f| f.tag == Some(tag));
        match known {
            Some(field) => {
                if version < field.versions.0 || version > field.versions.1 {
                    return Err(at(field.name, "tagged field not valid in this version"));
                }
                // The decoder reads a known tagged field by its type from
                // the stream; require that to be exactly its stated size.
                let end = cursor.pos + size;
                let mut inner = Cursor {
                    bytes: &cursor.bytes[..end],
                    pos: cursor.pos,
                };
                walk_value(&mut inner, &field.ty, version, true)
                    .map_err(|e| nest(e, schema, field))?;
                if inner.pos != end {
                    return Err(at(field.name, "tagged field size disagrees with its value"));
                }
                cursor.pos = end;
            }
            None => {
                cursor.take(size).map_err(|r| at("<unknown tag>", r))?;
            }
        }
    }
    Ok(())
}

/// A failure inside a field: a reason alone gets the field's name, a
/// nested failure keeps its own.
enum Inner {
    Reason(&'static str),
    Nested(WalkError),
}

impl From<&'static str> for Inner {
    fn from(reason: &'static str) -> Self {
        Inner::Reason(reason)
    }
}

fn nest(e: Inner, schema: &StructSchema, field: &Field) -> WalkError {
    match e {
        Inner::Reason(reason) => WalkError {
            at: format!("{}.{}", schema.name, field.name),
            reason,
        },
        Inner::Nested(e) => e,
    }
}

fn walk_value(cursor: &mut Cursor, ty: &Ty, version: i16, flexible: bool) -> Result<(), Inner> {
    match ty {
        Ty::Int8 | Ty::Bool => {
            cursor.take(1)?;
        }
        Ty::Int16 | Ty::UInt16 => {
            cursor.take(2)?;
        }
        Ty::Int32 | Ty::UInt32 => {
            cursor.take(4)?;
        }
        Ty::Int64 | Ty::Float64 => {
            cursor.take(8)?;
        }
        Ty::Uuid => {
            cursor.take(16)?;
        }
        Ty::String => {
            if let Some(n) = cursor.length(flexible, false)? {
                cursor.take(n)?;
            }
        }
        Ty::Bytes => {
            if let Some(n) = cursor.length(flexible, true)? {
                cursor.take(n)?;
            }
        }
        Ty::Array(element) => {
            if let Some(count) = cursor.length(flexible, true)? {
                // Every element takes at least one byte, except in a
                // (never seen) struct with no fields; refusing counts
                // above the bytes left is what Kafka's own decoder does.
                if count > cursor.remaining() {
                    return Err(SHORT.into());
                }
                for _ in 0..count {
                    walk_value(cursor, element, version, flexible)?;
                }
            }
        }
        Ty::Struct(schema) => walk_struct(cursor, schema, version).map_err(Inner::Nested)?,
        Ty::OptionStruct(schema) => {
            if cursor.i8()? == 1 {
                walk_struct(cursor, schema, version).map_err(Inner::Nested)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::SUPPORTED_APIS;
    use crate::wire::sample::{Rng, Sampler};
    use bytes::{BufMut, Bytes, BytesMut};
    use kafka_protocol::messages::RequestKind;

    /// The walker and the crate agree on every version of every request:
    /// bodies generated from the walker's schema are decoded by the crate
    /// to the last byte and encoded back to the same bytes, and the walker
    /// accepts exactly the bytes it generated.
    #[test]
    fn schemas_agree_with_the_crate() {
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
        for schema in super::super::schemas::ALL {
            for version in schema.versions.0..=schema.versions.1 {
                for round in 0..40 {
                    let body = Sampler::body(schema, version, &mut rng).freeze();
                    let what = format!("{:?} v{version} round {round}", schema.api_key);
                    assert_eq!(
                        walk_request(schema, version, &body),
                        Ok(body.len()),
                        "{what}"
                    );
                    let mut input = body.clone();
                    let decoded = RequestKind::decode(schema.api_key, &mut input, version)
                        .unwrap_or_else(|e| panic!("{what}: crate cannot decode: {e}"));
                    assert_eq!(input.len(), 0, "{what}: crate left bytes");
                    let mut again = BytesMut::new();
                    decoded
                        .encode(&mut again, version)
                        .unwrap_or_else(|e| panic!("{what}: crate cannot encode: {e}"));
                    assert_eq!(again.freeze(), body, "{what}: re-encoded differently");
                }
            }
        }
    }

    /// Every length or count prefix of every request, made huge, is caught
    /// by the walk (the crate would have reserved memory from it).
    #[test]
    fn every_huge_prefix_is_refused() {
        for schema in super::super::schemas::ALL {
            for version in schema.versions.0..=schema.versions.1 {
                let mut n = 0;
                loop {
                    let mut rng = Rng::new(7 + version as u64);
                    let (body, prefixes) = Sampler::hostile_body(schema, version, &mut rng, n);
                    if n >= prefixes {
                        break;
                    }
                    let what = format!("{:?} v{version} prefix {n}", schema.api_key);
                    assert!(walk_request(schema, version, &body).is_err(), "{what}");
                    n += 1;
                }
            }
        }
    }

    #[test]
    fn every_supported_api_has_a_schema_covering_its_versions() {
        for &(api_key, min, max) in SUPPORTED_APIS {
            let schema = schema_for(api_key).unwrap_or_else(|| panic!("{api_key:?} has no schema"));
            assert!(
                schema.versions.0 <= min && max <= schema.versions.1,
                "{api_key:?}"
            );
        }
    }

    /// The request that used to abort the broker: Metadata v12 whose topics
    /// array claims 2^32-2 elements, and v4 with 2^31-1.
    #[test]
    fn huge_counts_are_refused_before_any_allocation() {
        let metadata = schema_for(ApiKey::Metadata).unwrap();
        let v12 = [0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0, 0];
        assert!(walk_request(metadata, 12, &v12).is_err());
        let v4 = [0x7f, 0xff, 0xff, 0xff, 1, 0];
        assert!(walk_request(metadata, 4, &v4).is_err());
        // A string that claims more bytes than remain.
        let produce = schema_for(ApiKey::Produce).unwrap();
        let body = Bytes::from_static(&[0x7f, 0xff, b'x']);
        let error = walk_request(produce, 3, &body).unwrap_err();
        assert_eq!(error.at, "ProduceRequest.transactional_id");
    }

    /// A known tagged field whose size prefix disagrees with its value is
    /// refused, so the decoder cannot be led to read past the tag.
    #[test]
    fn tagged_field_size_must_match() {
        let fetch = schema_for(ApiKey::Fetch).unwrap();
        let mut body = BytesMut::new();
        body.put_i32(0); // max_wait_ms (v15+ has no replica_id)
        body.put_i32(0);
        body.put_i32(0);
        body.put_i8(0);
        body.put_i32(0);
        body.put_i32(0);
        body.put_u8(1); // topics: empty
        body.put_u8(1); // forgotten: empty
        body.put_u8(1); // rack id: empty
        body.put_u8(1); // one tagged field
        body.put_u8(0); // cluster id
        body.put_u8(1); // claims one byte
        body.put_u8(0xff); // a compact string claiming many bytes
        body.put_u8(0x7f);
        assert!(walk_request(fetch, 15, &body).is_err());
    }
}
