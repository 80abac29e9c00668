//! Request bodies generated from the schemas: well-formed ones, and
//! hostile ones whose n-th length or count prefix claims far more than the
//! frame holds. The schema tests, the hostile-request tests against the
//! binary and the fuzz corpus are built from these.

use bytes::{BufMut, BytesMut};

use super::walk::{Field, RequestSchema, StructSchema, Ty};

/// A small deterministic generator (xorshift), so that samples reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Generates request bodies of one schema and version.
pub struct Sampler<'a> {
    rng: &'a mut Rng,
    version: i16,
    /// Replace the length or count prefix with this index (0-based, in the
    /// order they are written) by a huge one.
    hostile: Option<usize>,
    prefixes_written: usize,
}

/// Counts and lengths a hostile prefix claims: far beyond any frame.
const HUGE_WIDE: i32 = 0x7fff_fff0;
const HUGE_SHORT: i16 = 0x7ff0;
const HUGE_COMPACT: u32 = 0xffff_fff0;

impl<'a> Sampler<'a> {
    /// A well-formed body of `schema` at `version`.
    pub fn body(schema: &RequestSchema, version: i16, rng: &'a mut Rng) -> BytesMut {
        let mut out = BytesMut::new();
        let mut sampler = Sampler {
            rng,
            version,
            hostile: None,
            prefixes_written: 0,
        };
        sampler.put_struct(&mut out, schema.body, 0);
        out
    }

    /// A body whose `n`-th length or count prefix is huge, and how many
    /// prefixes the body has in all (`n` past that count yields a
    /// well-formed body). Uses the same random choices as [`Self::body`]
    /// with the same seed.
    pub fn hostile_body(
        schema: &RequestSchema,
        version: i16,
        rng: &'a mut Rng,
        n: usize,
    ) -> (BytesMut, usize) {
        let mut out = BytesMut::new();
        let mut sampler = Sampler {
            rng,
            version,
            hostile: Some(n),
            prefixes_written: 0,
        };
        sampler.put_struct(&mut out, schema.body, 0);
        (out, sampler.prefixes_written)
    }

    fn put_length(&mut self, out: &mut BytesMut, n: usize, flexible: bool, wide: bool) {
        let huge = self.hostile == Some(self.prefixes_written);
        self.prefixes_written += 1;
        if flexible {
            put_uvarint(out, if huge { HUGE_COMPACT } else { n as u32 + 1 });
        } else if wide {
            out.put_i32(if huge { HUGE_WIDE } else { n as i32 });
        } else {
            out.put_i16(if huge { HUGE_SHORT } else { n as i16 });
        }
    }

    fn put_value(&mut self, out: &mut BytesMut, ty: &Ty, flexible: bool, depth: u32) {
        let rng = &mut *self.rng;
        match ty {
            Ty::Int8 => out.put_i8(rng.next_u64() as i8),
            Ty::Bool => out.put_u8(rng.below(2) as u8),
            Ty::Int16 => out.put_i16(rng.next_u64() as i16),
            Ty::UInt16 => out.put_u16(rng.next_u64() as u16),
            Ty::Int32 => out.put_i32(rng.next_u64() as i32),
            Ty::UInt32 => out.put_u32(rng.next_u64() as u32),
            Ty::Int64 => out.put_i64(rng.next_u64() as i64),
            Ty::Float64 => out.put_f64(rng.below(1000) as f64 / 8.0),
            Ty::Uuid => {
                out.put_u64(rng.next_u64());
                out.put_u64(rng.next_u64());
            }
            Ty::String => {
                let n = rng.below(6) as usize;
                let text: Vec<u8> = (0..n).map(|_| b'a' + rng.below(26) as u8).collect();
                self.put_length(out, n, flexible, false);
                out.extend_from_slice(&text);
            }
            Ty::Bytes => {
                let n = rng.below(6) as usize;
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                self.put_length(out, n, flexible, true);
                out.extend_from_slice(&bytes);
            }
            Ty::Array(element) => {
                let n = if depth > 3 { 0 } else { rng.below(3) as usize };
                self.put_length(out, n, flexible, true);
                for _ in 0..n {
                    self.put_value(out, element, flexible, depth + 1);
                }
            }
            Ty::Struct(schema) => self.put_struct(out, schema, depth + 1),
            Ty::OptionStruct(schema) => {
                if rng.below(2) == 0 {
                    out.put_i8(-1);
                } else {
                    out.put_i8(1);
                    self.put_struct(out, schema, depth + 1);
                }
            }
        }
    }

    fn put_struct(&mut self, out: &mut BytesMut, schema: &StructSchema, depth: u32) {
        let version = self.version;
        let flexible = version >= schema.flexible_from;
        let present = |f: &&Field| version >= f.versions.0 && version <= f.versions.1;
        for field in schema
            .fields
            .iter()
            .filter(|f| f.tag.is_none())
            .filter(present)
        {
            self.put_value(out, &field.ty, flexible, depth);
        }
        if !flexible {
            return;
        }
        let mut tagged: Vec<&Field> = schema
            .fields
            .iter()
            .filter(|f| f.tag.is_some())
            .filter(present)
            .collect();
        tagged.retain(|_| self.rng.below(2) == 0);
        tagged.sort_by_key(|f| f.tag);
        put_uvarint(out, tagged.len() as u32);
        for field in tagged {
            let mut value = BytesMut::new();
            self.put_value(&mut value, &field.ty, true, depth);
            put_uvarint(out, field.tag.unwrap_or_default());
            put_uvarint(out, value.len() as u32);
            out.extend_from_slice(&value);
        }
    }
}

fn put_uvarint(out: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        out.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}
