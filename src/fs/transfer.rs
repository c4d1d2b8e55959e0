//! What flows over a data connection: a `Source` (a file or a listing) that fills a buffer
//! chunk by chunk, and a `Sink` that writes an upload to a temporary file and renames it into
//! place only when the upload completed. TYPE A conversion happens here, in place, with the
//! state that spans chunk boundaries (a CR at the end of one chunk, an LF at the start of the next).
//!
//! Regular files cannot be polled for readiness: each `fill`/`write` is one bounded blocking call
//! of at most one chunk on local disk, made only when the socket side is ready for it.

use crate::buffer::Buffer;
use crate::fs::listing::Listing;
use crate::fs::root::Entry;
use rustix::fs::OFlags;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};

/// A transfer the session has prepared and the data connection will carry out.
pub enum Job {
    Send(Source),
    Receive(Sink),
}

/// Why a transfer did not complete; each maps to a different reply.
#[derive(Debug)]
pub enum TransferError {
    /// The data connection could not be made (425).
    Connect(io::Error),
    /// The data connection broke or the client closed it early (426).
    Network(io::Error),
    /// Reading or writing the file failed (451, 452 or 550).
    Local(io::Error),
}

/// Bytes to send to the client.
pub enum Source {
    File {
        file: File,
        ascii: bool,
        prev_cr: bool,
    },
    /// A binary download that the data connection hands to the kernel (`sendfile`), which
    /// copies page-cache pages to the socket with no buffer of ours and no copy through user space.
    /// `left` counts down from the size at `RETR` time, so the end needs no extra call to find.
    ZeroCopy {
        file: File,
        left: u64,
    },
    Listing(Box<Listing>),
}

impl Source {
    /// A download of `file`, `size` bytes from its current position; `zero_copy` allows
    /// `Source::ZeroCopy` where the bytes go unchanged.
    pub fn file(file: File, size: u64, ascii: bool, zero_copy: bool) -> Source {
        if zero_copy && !ascii {
            Source::ZeroCopy { file, left: size }
        } else {
            Source::File { file, ascii, prev_cr: false }
        }
    }

    /// Adds the next chunk to `buf`. Returns the bytes added; 0 means the source is exhausted.
    pub fn fill(&mut self, buf: &mut Buffer) -> io::Result<usize> {
        let space = buf.space();
        let n = match self {
            Source::Listing(listing) => listing.produce(space)?,
            Source::File { file, ascii: false, .. } | Source::ZeroCopy { file, .. } => read_retrying(file, space)?,
            Source::File { file, ascii: true, prev_cr } => {
                // Read at most half the space: LF → CRLF can double the bytes.
                let half = space.len() / 2;
                let n = read_retrying(file, &mut space[..half])?;
                expand_newlines(space, n, prev_cr)
            }
        };
        buf.fill(n);
        Ok(n)
    }
}

fn read_retrying(file: &mut File, into: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(into) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Rewrites `buf[..n]` in place so that every LF not already preceded by CR becomes CRLF.
/// `prev_cr` says whether the byte before `buf[0]` (end of the previous chunk) was a CR.
/// `buf` must have room for the result (at most `2 * n`). Returns the new length.
pub fn expand_newlines(buf: &mut [u8], n: usize, prev_cr: &mut bool) -> usize {
    let preceded_by_cr = |buf: &[u8], i: usize, first: bool| if i == 0 { first } else { buf[i - 1] == b'\r' };
    let first = *prev_cr;
    let bare = (0..n).filter(|&i| buf[i] == b'\n' && !preceded_by_cr(buf, i, first)).count();
    if n > 0 {
        *prev_cr = buf[n - 1] == b'\r';
    }
    // Walk backwards so every byte moves at most once and nothing unread is overwritten.
    let mut to = n + bare;
    for from in (0..n).rev() {
        let byte = buf[from];
        to -= 1;
        buf[to] = byte;
        if byte == b'\n' && !preceded_by_cr(buf, from, first) {
            to -= 1;
            buf[to] = b'\r';
        }
    }
    n + bare
}

/// Rewrites `data` in place so that every CRLF becomes LF; a CR at the very end is held back
/// in `pending_cr` because the next chunk may start with its LF. Returns the new length.
/// When `pending_cr` was set on entry and `data` does not start with LF, that CR was real and
/// the caller must write it first (`held_cr` reports that).
pub fn collapse_newlines(data: &mut [u8], pending_cr: &mut bool) -> (usize, bool) {
    let held_cr = *pending_cr && data.first() != Some(&b'\n');
    *pending_cr = false;
    let mut out = 0;
    for i in 0..data.len() {
        let byte = data[i];
        if byte == b'\r' {
            match data.get(i + 1) {
                Some(b'\n') => continue,
                None => {
                    *pending_cr = true;
                    continue;
                }
                Some(_) => {}
            }
        }
        data[out] = byte;
        out += 1;
    }
    (out, held_cr)
}

/// An upload in progress. How it lands depends on the command:
/// - `STOR` (`Sink::replace`): bytes go to a hidden temporary file beside the target, which
///   replaces the target only in `finish`; an aborted upload never damages an existing file.
/// - `STOU` (`Sink::unique`): a new file created exclusively; removed if the upload fails.
/// - `APPE` and `REST n` + `STOR` (`Sink::resume`): written in place, because resuming means
///   keeping what is already there; an interrupted upload keeps what arrived, to be resumed.
///
/// Dropping an unfinished `Sink` undoes it as above, so no path leaves debris.
pub struct Sink {
    file: File,
    /// Where the bytes are being written.
    at: Entry,
    landing: Landing,
    ascii: bool,
    pending_cr: bool,
    done: bool,
    zero_copy: bool,
}

enum Landing {
    RenameTo(Entry),
    RemoveOnFailure,
    InPlace,
}

/// Uploads are created like any new file: the umask decides.
const NEW_FILE_MODE: u32 = 0o666;

impl Sink {
    pub fn replace(target: Entry, ascii: bool) -> io::Result<Sink> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        refuse_directory(&target)?;
        let suffix = format!(".mioftpd-{}-{}.part", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let temp = target.sibling([b".", target.name(), suffix.as_bytes()].concat());
        let file = temp.open(OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL, NEW_FILE_MODE)?;
        Ok(Sink::new(file, temp, Landing::RenameTo(target), ascii))
    }

    /// A file that must not exist yet (`AlreadyExists` otherwise).
    pub fn unique(target: Entry, ascii: bool) -> io::Result<Sink> {
        let file = target.open(OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL, NEW_FILE_MODE)?;
        Ok(Sink::new(file, target, Landing::RemoveOnFailure, ascii))
    }

    /// Writes into `target` from `offset` on (its tail is cut off first), or at its end when
    /// `offset` is `None`; a missing file is created.
    pub fn resume(target: Entry, offset: Option<u64>, ascii: bool) -> io::Result<Sink> {
        refuse_directory(&target)?;
        // The entry is never followed (an upload onto a symlink would write outside the root),
        // and O_NONBLOCK keeps a FIFO from blocking the loop.
        let mut file = target.open(OFlags::WRONLY | OFlags::CREATE | OFlags::NONBLOCK, NEW_FILE_MODE).map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) { io::ErrorKind::PermissionDenied.into() } else { e }
        })?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
        }
        match offset {
            Some(offset) => {
                if offset > file.metadata()?.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "restart offset beyond the end of the file",
                    ));
                }
                file.set_len(offset)?;
                file.seek(SeekFrom::Start(offset))?;
            }
            None => {
                file.seek(SeekFrom::End(0))?;
            }
        }
        Ok(Sink::new(file, target, Landing::InPlace, ascii))
    }

    fn new(file: File, at: Entry, landing: Landing, ascii: bool) -> Sink {
        Sink { file, at, landing, ascii, pending_cr: false, done: false, zero_copy: false }
    }

    /// Allows the data connection to `splice` bytes from the socket into the file inside the
    /// kernel, where they go unchanged (binary mode).
    pub fn zero_copy(mut self, allowed: bool) -> Sink {
        self.zero_copy = allowed && !self.ascii;
        self
    }

    /// The file to `splice` into, when zero copy is allowed.
    pub fn splice_target(&self) -> Option<BorrowedFd<'_>> {
        self.zero_copy.then(|| self.file.as_fd())
    }

    /// Writes one chunk (converted in place in ASCII mode).
    pub fn write(&mut self, data: &mut [u8]) -> io::Result<()> {
        if !self.ascii {
            return self.file.write_all(data);
        }
        let (n, held_cr) = collapse_newlines(data, &mut self.pending_cr);
        if held_cr {
            self.file.write_all(b"\r")?;
        }
        self.file.write_all(&data[..n])
    }

    /// The upload is complete: put it in place.
    pub fn finish(mut self) -> io::Result<()> {
        if self.pending_cr {
            self.file.write_all(b"\r")?;
        }
        self.file.flush()?;
        if let Landing::RenameTo(target) = &self.landing {
            self.at.rename_to(target)?;
        }
        self.done = true;
        Ok(())
    }
}

fn refuse_directory(target: &Entry) -> io::Result<()> {
    match target.kind() {
        Ok(kind) if kind.is_dir() => Err(io::ErrorKind::IsADirectory.into()),
        _ => Ok(()),
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if !self.done && !matches!(self.landing, Landing::InPlace) {
            let _ = self.at.remove_file();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Converts `input` split at every possible point, as chunks may fall anywhere.
    fn expand_split(input: &[u8]) -> Vec<Vec<u8>> {
        (0..=input.len())
            .map(|split| {
                let mut prev_cr = false;
                let mut out = Vec::new();
                for part in [&input[..split], &input[split..]] {
                    let mut buf = vec![0u8; part.len() * 2];
                    buf[..part.len()].copy_from_slice(part);
                    let n = expand_newlines(&mut buf, part.len(), &mut prev_cr);
                    out.extend_from_slice(&buf[..n]);
                }
                out
            })
            .collect()
    }

    fn collapse_split(input: &[u8]) -> Vec<Vec<u8>> {
        (0..=input.len())
            .map(|split| {
                let mut pending = false;
                let mut out = Vec::new();
                for part in [&input[..split], &input[split..]] {
                    let mut data = part.to_vec();
                    let (n, held) = collapse_newlines(&mut data, &mut pending);
                    if held {
                        out.push(b'\r');
                    }
                    out.extend_from_slice(&data[..n]);
                }
                if pending {
                    out.push(b'\r');
                }
                out
            })
            .collect()
    }

    #[test]
    fn lf_becomes_crlf_at_every_split() {
        for out in expand_split(b"a\nb\r\nc\n\nd\r") {
            assert_eq!(out, b"a\r\nb\r\nc\r\n\r\nd\r");
        }
    }

    #[test]
    fn crlf_becomes_lf_at_every_split() {
        for out in collapse_split(b"a\r\nb\rc\r\n\r\nd\r") {
            assert_eq!(out, b"a\nb\rc\n\nd\r");
        }
    }

    fn entry_in(dir: &std::path::Path, name: &str) -> Entry {
        let root = crate::fs::Root::new(dir).unwrap();
        root.entry(&crate::fs::VPath::root().join(name.as_bytes())).unwrap()
    }

    #[test]
    fn sink_replaces_only_on_finish() {
        let dir = std::env::temp_dir().join(format!("mioftpd-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("f");
        std::fs::write(&target, b"old").unwrap();
        let entry = entry_in(&dir, "f");

        let mut sink = Sink::replace(entry.clone(), false).unwrap();
        sink.write(&mut b"new".to_vec()).unwrap();
        drop(sink); // aborted
        assert_eq!(std::fs::read(&target).unwrap(), b"old");

        let mut sink = Sink::replace(entry.clone(), true).unwrap();
        sink.write(&mut b"x\r\ny\r".to_vec()).unwrap();
        sink.write(&mut b"\n".to_vec()).unwrap();
        sink.finish().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"x\ny\n");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary files left");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resume_and_append_write_in_place() {
        let dir = std::env::temp_dir().join(format!("mioftpd-resume-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("f");
        std::fs::write(&target, b"0123456789").unwrap();
        let entry = entry_in(&dir, "f");
        let mut sink = Sink::resume(entry.clone(), Some(4), false).unwrap();
        sink.write(&mut b"abc".to_vec()).unwrap();
        drop(sink); // interrupted: what arrived stays, ready to be resumed
        assert_eq!(std::fs::read(&target).unwrap(), b"0123abc");
        let mut sink = Sink::resume(entry.clone(), None, false).unwrap();
        sink.write(&mut b"Z".to_vec()).unwrap();
        sink.finish().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"0123abcZ");
        assert!(Sink::resume(entry.clone(), Some(99), false).is_err());

        assert!(Sink::unique(entry.clone(), false).is_err(), "exists already");
        let fresh = dir.join("g");
        drop(Sink::unique(entry_in(&dir, "g"), false).unwrap());
        assert!(!fresh.exists(), "a failed unique upload is removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
