//! A reader of big-endian fields over a byte slice that answers None past
//! the end instead of panicking: for the files and records Sluice writes
//! itself and reads back (producer snapshots, transaction states), which a
//! crash or a bad disk may have damaged.

pub struct BeReader<'a>(pub &'a [u8]);

impl BeReader<'_> {
    pub fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }

    pub fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }

    /// A string with a u16 length.
    pub fn short_string(&mut self) -> Option<String> {
        let len = usize::from(u16::from_be_bytes(self.take()?));
        let bytes = self.0.get(..len)?;
        self.0 = &self.0[len..];
        String::from_utf8(bytes.to_vec()).ok()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
