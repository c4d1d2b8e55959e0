//! The transfer log (`--xferlog FILE`): one line per ended file transfer in the wu-ftpd
//! `xferlog(5)` format that vsftpd, proftpd and pure-ftpd also write, so existing log analysers
//! read it unchanged:
//!
//! ```text
//! Wed Dec  2 08:37:21 2026 1 127.0.0.1 5000000 /big.bin b _ o a anonymous ftp 0 * c
//! ```
//! current time (ctime format, local time), transfer time in whole seconds (at least 1), remote
//! host, bytes moved, file name, type (`a`scii/`b`inary), special action (`_`), direction
//! (`o`ut/`i`n), access mode (`a`nonymous/`r`eal), user name, service (`ftp`), authentication
//! method (`0`), authenticated user id (`*`), completion (`c`omplete/`i`ncomplete).
//!
//! As vsftpd does: the file name is the path the client sees (`/` is the served root, or the
//! user's home for a user who has one), with
//! spaces written as `_` (a space would split the field) and control characters as `?`; transfers
//! whose data connection never came (425) are not logged. Unlike vsftpd, an anonymous user is
//! logged by login name, not by the e-mail address given as password (which is not kept).

use crate::ftp::event::{Completion, Direction, TransferRecord};
use log::warn;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct Xferlog {
    file: File,
    /// Where the log is, to open it again after a rotation (`SIGHUP`).
    path: PathBuf,
    /// The last write failed: warn once per run of failures, not once per transfer.
    failing: bool,
}

impl Xferlog {
    /// Opens (or creates, mode 0600 as vsftpd's) the log for appending.
    pub fn open(path: &Path) -> io::Result<Xferlog> {
        let file = OpenOptions::new().append(true).create(true).mode(0o600).open(path)?;
        Ok(Xferlog { file, path: path.to_path_buf(), failing: false })
    }

    /// Opens the log's path again (`SIGHUP`, after logrotate moved the file away), so new lines
    /// go to the new file. On failure the old file stays in use.
    pub fn reopen(&mut self) -> io::Result<&Path> {
        *self = Xferlog::open(&self.path)?;
        Ok(&self.path)
    }

    /// Appends the line of `record`, unless it moved nothing because it never connected.
    ///
    /// This is a blocking `write` on the loop's thread, and that is acceptable: one line of
    /// under a kilobyte, once per transfer, appended to a regular file lands in the page cache
    /// and returns in microseconds without waiting for the disk — the same bounded local-disk
    /// call the data path makes for every 64 KiB chunk. `O_APPEND` and a single `write` per
    /// line keep lines whole even when another process (logrotate's `copytruncate`, a second
    /// server) writes the same file. A log on a network file system could stall the loop; keep
    /// it on local disk.
    pub fn write(&mut self, record: &TransferRecord) {
        if record.completion == Completion::NoConnection {
            return;
        }
        let line = line(record, &ctime(SystemTime::now()), record.started.elapsed());
        match self.file.write_all(line.as_bytes()) {
            Ok(()) => self.failing = false,
            Err(e) if !self.failing => {
                warn!("cannot write the transfer log: {e}");
                self.failing = true;
            }
            Err(_) => {}
        }
    }
}

/// The log line of `record`, newline included, ended at `now` (already in ctime format).
fn line(record: &TransferRecord, now: &str, took: Duration) -> String {
    // Rounded to whole seconds as the format wants; never 0, as vsftpd, so that analysers that
    // divide bytes by seconds get a rate.
    let secs = (took.as_secs_f64().round() as u64).max(1);
    let kind = if record.ascii { 'a' } else { 'b' };
    let direction = match record.direction {
        Direction::Out => 'o',
        Direction::In => 'i',
    };
    let access = if record.anonymous { 'a' } else { 'r' };
    let completion = if record.completion == Completion::Complete { 'c' } else { 'i' };
    format!(
        "{now} {secs} {} {} {} {kind} _ {direction} {access} {} ftp 0 * {completion}\n",
        record.peer,
        record.bytes.unwrap_or(0),
        field(record.path.as_bytes()),
        field(record.user.as_bytes()),
    )
}

/// One space-separated field: spaces become `_`, control characters and bytes that are not
/// UTF-8 become `?` (valid UTF-8 names stay readable).
fn field(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.extend(chunk.valid().chars().map(|c| match c {
            ' ' => '_',
            c if c.is_control() => '?',
            c => c,
        }));
        out.extend(std::iter::repeat_n('?', chunk.invalid().len()));
    }
    out
}

/// `Wed Dec  2 08:37:21 2026`: ctime's format (day padded with a space), in local time.
fn ctime(time: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value (integers and a null zone name), and
    // localtime_r only writes the struct passed to it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; the _r variant keeps no shared state.
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return "Thu Jan  1 00:00:00 1970".into();
    }
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        DAYS[tm.tm_wday.rem_euclid(7) as usize],
        MONTHS[tm.tm_mon.rem_euclid(12) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        tm.tm_year + 1900
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::VPath;
    use std::time::Instant;

    fn record(path: &[u8], completion: Completion) -> TransferRecord {
        TransferRecord {
            direction: Direction::Out,
            path: VPath::root().join(path),
            ascii: false,
            user: "anonymous".into(),
            anonymous: true,
            peer: "127.0.0.1".parse().unwrap(),
            started: Instant::now(),
            bytes: Some(5_000_000),
            completion,
        }
    }

    #[test]
    fn the_documented_example_line() {
        let line = line(&record(b"big.bin", Completion::Complete), "Wed Dec  2 08:37:21 2026", Duration::ZERO);
        assert_eq!(line, "Wed Dec  2 08:37:21 2026 1 127.0.0.1 5000000 /big.bin b _ o a anonymous ftp 0 * c\n");
    }

    #[test]
    fn upload_by_a_real_user_cut_short() {
        let mut r = record(b"in/a b.txt", Completion::Aborted);
        (r.direction, r.ascii, r.user, r.anonymous, r.bytes) = (Direction::In, true, "alice".into(), false, Some(7));
        r.peer = "::1".parse().unwrap();
        let line = line(&r, "Thu Jan  1 00:00:00 1970", Duration::from_millis(2600));
        assert_eq!(line, "Thu Jan  1 00:00:00 1970 3 ::1 7 /in/a_b.txt a _ i r alice ftp 0 * i\n");
    }

    #[test]
    fn fields_never_split_or_break_the_line() {
        assert_eq!(field(b"/a b\tc\nd"), "/a_b?c?d");
        assert_eq!(field("/grüße".as_bytes()), "/grüße");
        assert_eq!(field(b"/x\xff\xfey"), "/x??y");
    }

    #[test]
    fn ctime_shape() {
        // 2026-12-02 08:37:21 UTC; the hour and even the day depend on the local zone.
        let text = ctime(UNIX_EPOCH + Duration::from_secs(1_796_200_641));
        let parts: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(text.len(), 24, "{text:?}");
        assert_eq!(parts.len(), 5, "{text:?}");
        assert!(DAYS_OK.contains(&parts[0]) && parts[1] == "Dec" && parts[4] == "2026", "{text:?}");
        assert_eq!(parts[3].len(), 8);
    }

    const DAYS_OK: [&str; 3] = ["Tue", "Wed", "Thu"];
}
