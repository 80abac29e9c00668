//! A byte range of a segment file: whole record batches ready to be sent.
//!
//! Reads hand out regions instead of copies so that the broker can move the
//! bytes from the page cache to a socket without passing them through user
//! space (sendfile). A region stays valid after the segment is deleted by
//! retention: it holds the open file, and the bytes in it never change once
//! they are below the high watermark (the log is append-only).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

#[derive(Clone)]
pub struct FileRegion {
    file: Arc<File>,
    position: u64,
    len: usize,
}

impl FileRegion {
    pub fn new(file: Arc<File>, position: u64, len: usize) -> FileRegion {
        FileRegion {
            file,
            position,
            len,
        }
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Byte position of the region in its file.
    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The region's bytes, copied into memory.
    pub fn to_vec(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len);
        self.append_to(&mut out)?;
        Ok(out)
    }

    /// Appends the region's bytes to `out`.
    pub fn append_to(&self, out: &mut Vec<u8>) -> io::Result<()> {
        let at = out.len();
        out.resize(at + self.len, 0);
        let read = self.file.read_exact_at(&mut out[at..], self.position);
        if read.is_err() {
            out.truncate(at);
        }
        read
    }
}

impl std::fmt::Debug for FileRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileRegion")
            .field("position", &self.position)
            .field("len", &self.len)
            .finish()
    }
}
