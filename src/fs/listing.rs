//! Directory listings, produced a few entries at a time so that a directory of any size streams
//! through a bounded buffer: `LIST` (the `ls -l` shape that FileZilla, wget and friends parse) and
//! `NLST` (bare names). Also the UTC time formats FTP uses.

use super::root::Root;
use std::fs::{self, Metadata, ReadDir};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// The longest line we ever produce: a 4 KiB name plus the fixed columns. A producer only
/// starts an entry when at least this much space is free.
pub const MAX_LINE: usize = 4096 + 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `ls -l`: `-rw-r--r-- 1 ftp ftp 1234 Jan 02 03:04 name`.
    Long,
    /// One name per line; prefixed with the argument as given, as `ls dir` does for a listing of
    /// another directory, so clients can `RETR` each line as it comes (`mget`).
    Names,
}

/// A listing in progress.
pub struct Listing {
    format: Format,
    entries: Entries,
    now: SystemTime,
    /// Prefix for `NLST dir` names (`dir/`), empty otherwise.
    prefix: Vec<u8>,
    /// Symlink targets are only followed when they stay inside the served root.
    root_dir: PathBuf,
}

enum Entries {
    Dir(ReadDir),
    One(Option<(Vec<u8>, Metadata)>),
}

impl Listing {
    /// Lists `real` (a directory, or a single file), whose client-side spelling was `arg`.
    pub fn open(root: &Root, real: PathBuf, arg: Option<&[u8]>, format: Format) -> io::Result<Listing> {
        let meta = fs::metadata(&real)?;
        let mut prefix = Vec::new();
        let entries = if meta.is_dir() {
            if let Some(arg) = arg.filter(|_| format == Format::Names) {
                prefix.extend_from_slice(arg.strip_suffix(b"/").unwrap_or(arg));
                prefix.push(b'/');
            }
            Entries::Dir(fs::read_dir(&real)?)
        } else {
            let name = match (format, arg) {
                (Format::Names, Some(arg)) => arg.to_vec(),
                _ => real.file_name().map(|n| n.as_encoded_bytes().to_vec()).unwrap_or_default(),
            };
            Entries::One(Some((name, meta)))
        };
        Ok(Listing { format, entries, now: SystemTime::now(), prefix, root_dir: root.dir().to_path_buf() })
    }

    /// Appends whole lines to `out` while at least `MAX_LINE` bytes of `room` remain.
    /// Returns the bytes added; 0 means the listing is complete.
    pub fn produce(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut used = 0;
        let mut line = Vec::with_capacity(256);
        while out.len() - used >= MAX_LINE {
            let Some((name, meta)) = self.next_entry()? else {
                break;
            };
            line.clear();
            match self.format {
                Format::Long => long_line(&mut line, &name, &meta, self.now),
                Format::Names => {
                    line.extend_from_slice(&self.prefix);
                    line.extend_from_slice(&name);
                }
            }
            line.truncate(MAX_LINE - 2);
            line.extend_from_slice(b"\r\n");
            out[used..used + line.len()].copy_from_slice(&line);
            used += line.len();
        }
        Ok(used)
    }

    fn next_entry(&mut self) -> io::Result<Option<(Vec<u8>, Metadata)>> {
        match &mut self.entries {
            Entries::One(entry) => Ok(entry.take()),
            Entries::Dir(dir) => {
                for entry in dir.by_ref() {
                    let entry = entry?;
                    let name = entry.file_name().as_encoded_bytes().to_vec();
                    let Ok(mut meta) = entry.metadata() else {
                        continue;
                    }; // vanished meanwhile
                    if meta.file_type().is_symlink() {
                        // Show what the link points at, but only when it stays inside the root.
                        let target = fs::canonicalize(entry.path());
                        if let Ok(followed) = target.and_then(|t| {
                            if t.starts_with(&self.root_dir) {
                                fs::metadata(t)
                            } else {
                                Err(io::ErrorKind::NotFound.into())
                            }
                        }) {
                            meta = followed;
                        }
                    }
                    return Ok(Some((name, meta)));
                }
                Ok(None)
            }
        }
    }
}

/// One `ls -l` line, without the line ending. Owner and group are shown as `ftp`: real ids
/// mean nothing to a client and tell an attacker which accounts exist.
pub fn long_line(out: &mut Vec<u8>, name: &[u8], meta: &Metadata, now: SystemTime) {
    let mode = meta.permissions().mode();
    let kind = match meta.file_type() {
        t if t.is_dir() => 'd',
        t if t.is_symlink() => 'l',
        _ => '-',
    };
    let mut perms = String::with_capacity(10);
    perms.push(kind);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        perms.push(if bits & 4 != 0 { 'r' } else { '-' });
        perms.push(if bits & 2 != 0 { 'w' } else { '-' });
        perms.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let when = ls_date(modified, now);
    let head = format!("{perms} {:>3} ftp      ftp      {:>12} {when} ", meta.nlink(), meta.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(name);
}

/// `ls` shows `Mon DD HH:MM` for times within six months of now and `Mon DD  YYYY` otherwise.
fn ls_date(time: SystemTime, now: SystemTime) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    const HALF_YEAR: u64 = 182 * 24 * 3600;
    let secs = unix_secs(time);
    let (y, m, d, hh, mm, _) = civil(secs);
    let month = MONTHS[(m - 1) as usize];
    let recent = unix_secs(now).abs_diff(secs) < HALF_YEAR;
    if recent { format!("{month} {d:>2} {hh:02}:{mm:02}") } else { format!("{month} {d:>2}  {y}") }
}

/// `YYYYMMDDHHMMSS` in UTC, as `MDTM` (RFC 3659 §2.3) wants.
pub fn mdtm(time: SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = civil(unix_secs(time));
    format!("{y:04}{m:02}{d:02}{hh:02}{mm:02}{ss:02}")
}

fn unix_secs(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Seconds since the epoch → (year, month, day, hour, minute, second) in UTC, by Howard
/// Hinnant's days-to-civil algorithm (proleptic Gregorian, no tables, no time zone crate).
fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem / 60 % 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil(1_796_215_045), (2026, 12, 2, 12, 37, 25));
        assert_eq!(mdtm(at(1_796_215_045)), "20261202123725");
    }

    #[test]
    fn ls_dates_recent_and_old() {
        let now = at(1_796_215_045);
        assert_eq!(ls_date(at(1_796_215_045 - 86_400), now), "Dec  1 12:37");
        assert_eq!(ls_date(at(951_782_400), now), "Feb 29  2000");
    }

    #[test]
    fn long_line_shape() {
        let dir = std::env::temp_dir().join(format!("mioftpd-ls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a b.txt");
        std::fs::write(&file, b"12345").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        let mut line = Vec::new();
        long_line(&mut line, b"a b.txt", &meta, SystemTime::now());
        let line = String::from_utf8(line).unwrap();
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[0], "-rw-r-----");
        assert_eq!(cols[2..5], ["ftp", "ftp", "5"]);
        assert!(line.ends_with(" a b.txt"), "{line}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
