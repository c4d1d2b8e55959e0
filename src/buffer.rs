//! `Buffer`: a fixed-capacity byte buffer that owns every offset, and the one place where stream
//! I/O results are triaged (`WouldBlock`, `Interrupted`, end of stream, real errors).
//!
//! Every socket pump in the crate moves bytes through `read_from`/`write_to`, which return how
//! many bytes moved *and* why they stopped. Callers never match on `io::ErrorKind` themselves.

use std::io::{self, Read, Write};

/// Capacity of a data-transfer buffer: one file chunk.
pub const CHUNK: usize = 64 * 1024;

/// Why `read_from` stopped.
#[derive(Debug)]
pub enum ReadStop {
    /// The buffer has no free space left: drain it before reading more.
    Full,
    /// The `max` bytes asked for were read; the source may have more.
    Limit,
    /// The source has no more to give now; mio will tell us when that changes.
    WouldBlock,
    /// The peer closed its sending side (read returned 0).
    Eof,
    /// A real error: the connection is unusable.
    Error(io::Error),
}

/// Why `write_to` stopped.
#[derive(Debug)]
pub enum WriteStop {
    /// Everything buffered was written.
    Empty,
    /// The `max` bytes asked for were written; more are buffered and the destination may take them.
    Limit,
    /// The destination can take no more now; mio will tell us when that changes.
    WouldBlock,
    /// A real error: the connection is unusable.
    Error(io::Error),
}

/// `true` for the error that means "try again when mio says so".
pub fn would_block(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::WouldBlock
}

/// `true` for the error that means "a signal arrived; retry the call at once".
pub fn interrupted(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::Interrupted
}

/// A fixed-size window `data[start..end]` over a heap allocation that never grows.
pub struct Buffer {
    bytes: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Buffer {
    pub fn with_capacity(capacity: usize) -> Buffer {
        Buffer { bytes: vec![0; capacity].into_boxed_slice(), start: 0, end: 0 }
    }

    /// The bytes waiting to be consumed.
    pub fn data(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[self.start..self.end]
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks `n` bytes at the front as consumed.
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Drops everything still buffered (an aborted transfer).
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Free space at the back, after moving pending bytes to the front so the space is contiguous.
    pub fn space(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.bytes.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.bytes[self.end..]
    }

    /// Marks `n` bytes of `space()` as filled.
    pub fn fill(&mut self, n: usize) {
        self.end = (self.end + n).min(self.bytes.len());
    }

    /// Reads from `src` until the buffer is full, `max` bytes were read, `src` would block,
    /// or it ends.
    pub fn read_from(&mut self, src: &mut impl Read, max: usize) -> (usize, ReadStop) {
        let mut total = 0;
        loop {
            let space = self.space();
            if space.is_empty() {
                return (total, ReadStop::Full);
            }
            if total >= max {
                return (total, ReadStop::Limit);
            }
            let room = space.len().min(max - total);
            match src.read(&mut space[..room]) {
                Ok(0) => return (total, ReadStop::Eof),
                Ok(n) => {
                    self.fill(n);
                    total += n;
                }
                // Edge-triggered readiness: only WouldBlock re-arms the event, so stop here.
                Err(e) if would_block(&e) => return (total, ReadStop::WouldBlock),
                Err(e) if interrupted(&e) => continue,
                Err(e) => return (total, ReadStop::Error(e)),
            }
        }
    }

    /// Writes to `dst` until the buffer is empty, `max` bytes were written, or `dst` would
    /// block. A zero-length write means the peer can take nothing more, which we treat as the
    /// connection being gone.
    pub fn write_to(&mut self, dst: &mut impl Write, max: usize) -> (usize, WriteStop) {
        let mut total = 0;
        loop {
            if self.is_empty() {
                return (total, WriteStop::Empty);
            }
            if total >= max {
                return (total, WriteStop::Limit);
            }
            let n = self.len().min(max - total);
            match dst.write(&self.data()[..n]) {
                Ok(0) => return (total, WriteStop::Error(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.consume(n);
                    total += n;
                }
                Err(e) if would_block(&e) => return (total, WriteStop::WouldBlock),
                Err(e) if interrupted(&e) => continue,
                Err(e) => return (total, WriteStop::Error(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `per_call` bytes, then blocks once `limit` is reached.
    struct Trickle {
        taken: Vec<u8>,
        per_call: usize,
        limit: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.taken.len() >= self.limit {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.per_call).min(self.limit - self.taken.len());
            self.taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn read_stops_when_full_and_reports_eof() {
        let mut buf = Buffer::with_capacity(4);
        let mut src: &[u8] = b"abcdef";
        let (n, stop) = buf.read_from(&mut src, usize::MAX);
        assert_eq!((n, buf.data()), (4, &b"abcd"[..]));
        assert!(matches!(stop, ReadStop::Full));
        buf.consume(4);
        let (n, stop) = buf.read_from(&mut src, usize::MAX);
        assert_eq!(n, 2);
        assert!(matches!(stop, ReadStop::Eof));
        assert_eq!(buf.data(), b"ef");
    }

    #[test]
    fn partial_writes_keep_the_cursor() {
        let mut buf = Buffer::with_capacity(8);
        buf.space()[..6].copy_from_slice(b"abcdef");
        buf.fill(6);
        let mut dst = Trickle { taken: Vec::new(), per_call: 2, limit: 5 };
        let (n, stop) = buf.write_to(&mut dst, usize::MAX);
        assert_eq!(n, 5);
        assert!(matches!(stop, WriteStop::WouldBlock));
        assert_eq!(buf.data(), b"f");
        dst.limit = 100;
        let (n, stop) = buf.write_to(&mut dst, usize::MAX);
        assert_eq!((n, dst.taken.as_slice()), (1, &b"abcdef"[..]));
        assert!(matches!(stop, WriteStop::Empty));
    }

    #[test]
    fn reads_and_writes_stop_at_the_limit_asked_for() {
        let mut buf = Buffer::with_capacity(8);
        let mut src: &[u8] = b"abcdef";
        let (n, stop) = buf.read_from(&mut src, 3);
        assert_eq!((n, buf.data()), (3, &b"abc"[..]));
        assert!(matches!(stop, ReadStop::Limit));
        let mut dst = Trickle { taken: Vec::new(), per_call: 100, limit: 100 };
        let (n, stop) = buf.write_to(&mut dst, 2);
        assert_eq!((n, dst.taken.as_slice(), buf.data()), (2, &b"ab"[..], &b"c"[..]));
        assert!(matches!(stop, WriteStop::Limit));
        let (n, stop) = buf.write_to(&mut dst, 2);
        assert_eq!(n, 1);
        assert!(matches!(stop, WriteStop::Empty));
    }

    #[test]
    fn space_compacts_pending_bytes_to_the_front() {
        let mut buf = Buffer::with_capacity(4);
        buf.space().copy_from_slice(b"wxyz");
        buf.fill(4);
        buf.consume(3);
        assert_eq!(buf.space().len(), 3);
        assert_eq!(buf.data(), b"z");
    }
}
