//! Directory listings, produced a few entries at a time so that a directory of any size streams
//! through a bounded buffer: `LIST` (the `ls -l` shape that FileZilla, wget and friends parse),
//! `NLST` (bare names) and `MLSD`/`MLST` (RFC 3659 machine facts). Also the UTC time formats.

use super::root::{Root, VPath};
use rustix::fs::{Dir, Mode, OFlags};
use std::collections::VecDeque;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{SystemTime, UNIX_EPOCH};

/// The longest line we ever produce: a 4 KiB name plus the fixed columns. A producer only
/// starts an entry when at least this much space is free.
pub const MAX_LINE: usize = 4096 + 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `ls -l`: `-rw-r--r-- 1 ftp ftp 1234 Jan 02 03:04 name`.
    Long,
    /// One name per line; prefixed with the argument as given, as `ls dir` does for a listing of
    /// another directory, so clients can `RETR` each line as it comes (`mget`).
    Names,
    /// `MLSD`: `type=file;size=5;…; name`, with `cdir`/`pdir` entries for the directory itself
    /// and its parent. `writable` decides the `perm` fact.
    Machine { facts: Facts, writable: bool },
}

/// The RFC 3659 facts a client asked for (`OPTS MLST`); all of them by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts(u8);

const FACT_NAMES: [&str; 6] = ["type", "size", "modify", "perm", "unique", "unix.mode"];

impl Facts {
    pub const ALL: Facts = Facts(0b11_1111);

    /// From `type;size;modify;`: unknown names are ignored, as RFC 3659 §7.9 asks.
    pub fn parse(list: &str) -> Facts {
        let mut bits = 0;
        for name in list.split(';').map(str::trim) {
            if let Some(i) = FACT_NAMES.iter().position(|f| f.eq_ignore_ascii_case(name)) {
                bits |= 1 << i;
            }
        }
        Facts(bits)
    }

    fn has(self, name: &str) -> bool {
        FACT_NAMES.iter().position(|f| *f == name).is_some_and(|i| self.0 & (1 << i) != 0)
    }

    /// `type;size;` — the selected facts, as the `OPTS MLST` reply lists them.
    pub fn selected(self) -> String {
        FACT_NAMES.iter().filter(|f| self.has(f)).map(|f| format!("{f};")).collect()
    }

    /// `type*;size*;perm;…` — every fact, starred when selected, as `FEAT` lists them.
    pub fn feat(self) -> String {
        FACT_NAMES.iter().map(|f| format!("{f}{};", if self.has(f) { "*" } else { "" })).collect()
    }
}

/// One entry to list. `kind` overrides the `type` fact (`cdir`, `pdir`).
struct Entry {
    name: Vec<u8>,
    meta: Metadata,
    kind: Option<&'static str>,
}

/// A listing in progress.
pub struct Listing {
    format: Format,
    /// Entries known up front (a single file, or `cdir`/`pdir`), listed first.
    head: VecDeque<Entry>,
    dir: Option<Dir>,
    now: SystemTime,
    /// Prefix for `NLST dir` names (`dir/`), empty otherwise.
    prefix: Vec<u8>,
    /// Where symlinks among the entries are resolved, so that they are followed only inside.
    root: Root,
    /// The listed directory as the client names it.
    path: VPath,
    /// Only directory entries whose names match this wildcard pattern.
    pattern: Option<Vec<u8>>,
}

impl Listing {
    /// Lists `path` (a directory, or a single file), whose client-side spelling was `arg`.
    pub fn open(root: &Root, path: &VPath, arg: Option<&[u8]>, format: Format) -> io::Result<Listing> {
        let file = root.open(path)?;
        let meta = file.metadata()?;
        let mut listing = Listing {
            format,
            head: VecDeque::new(),
            dir: None,
            now: SystemTime::now(),
            prefix: Vec::new(),
            root: root.clone(),
            path: path.clone(),
            pattern: None,
        };
        if !meta.is_dir() {
            let name = match (format, arg) {
                (Format::Names, Some(arg)) => arg.to_vec(),
                _ => path.file_name().to_vec(),
            };
            listing.head.push_back(Entry { name, meta, kind: None });
            return Ok(listing);
        }
        match format {
            Format::Names => {
                if let Some(arg) = arg {
                    listing.prefix.extend_from_slice(arg.strip_suffix(b"/").unwrap_or(arg));
                    listing.prefix.push(b'/');
                }
            }
            Format::Machine { .. } => {
                listing.head.push_back(Entry { name: b".".to_vec(), meta, kind: Some("cdir") });
                if !path.is_root() {
                    let parent = root.metadata(&path.parent())?;
                    listing.head.push_back(Entry { name: b"..".to_vec(), meta: parent, kind: Some("pdir") });
                }
            }
            Format::Long => {}
        }
        listing.dir = Some(Dir::new(file)?);
        Ok(listing)
    }

    /// Lists only the directory entries whose names match `pattern` (`*` and `?`).
    pub fn only_matching(&mut self, pattern: Vec<u8>) {
        self.pattern = Some(pattern);
    }

    /// Appends whole lines to `out` while at least `MAX_LINE` bytes of `room` remain.
    /// Returns the bytes added; 0 means the listing is complete.
    pub fn produce(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut used = 0;
        let mut line = Vec::with_capacity(256);
        while out.len() - used >= MAX_LINE {
            let Some(entry) = self.next_entry()? else { break };
            line.clear();
            match self.format {
                Format::Long => long_line(&mut line, &entry.name, &entry.meta, self.now),
                Format::Names => {
                    line.extend_from_slice(&self.prefix);
                    line.extend_from_slice(&entry.name);
                }
                Format::Machine { facts, writable } => {
                    facts_line(&mut line, &entry.name, &entry.meta, entry.kind, facts, writable)
                }
            }
            line.truncate(MAX_LINE - 2);
            line.extend_from_slice(b"\r\n");
            out[used..used + line.len()].copy_from_slice(&line);
            used += line.len();
        }
        Ok(used)
    }

    fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        if let Some(entry) = self.head.pop_front() {
            return Ok(Some(entry));
        }
        let Some(dir) = self.dir.as_mut() else { return Ok(None) };
        while let Some(entry) = dir.next() {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." || self.pattern.as_ref().is_some_and(|p| !glob_match(p, name)) {
                continue;
            }
            // The entry itself, opened without following it; then a symlink is shown as what
            // it points at only when that resolves inside the root, revealing nothing otherwise.
            let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let opened = rustix::fs::openat(dir.fd()?, name, flags, Mode::empty());
            let Ok(meta) = opened.map_err(io::Error::from).and_then(|fd| File::from(fd).metadata()) else {
                continue; // vanished meanwhile
            };
            let meta = match meta.file_type().is_symlink() {
                true => self.root.metadata(&self.path.join(name)).unwrap_or(meta),
                false => meta,
            };
            return Ok(Some(Entry { name: name.to_vec(), meta, kind: None }));
        }
        Ok(None)
    }
}

/// Whether a name component holds a wildcard (`*` or `?`).
pub fn is_glob(name: &[u8]) -> bool {
    name.iter().any(|&b| b == b'*' || b == b'?')
}

/// Shell-style matching of `*` (any run) and `?` (any one byte); as in a shell, a wildcard
/// does not match a leading dot.
pub fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pattern.first() != Some(&b'.') {
        return false;
    }
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None; // where the last `*` was, and what it matched up to
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// One MLSD/MLST line without the line ending: `type=file;size=5;…; name`.
pub fn facts_line(out: &mut Vec<u8>, name: &[u8], meta: &Metadata, kind: Option<&str>, facts: Facts, writable: bool) {
    let is_dir = meta.is_dir();
    let mut text = String::new();
    if facts.has("type") {
        let kind = kind.unwrap_or(match meta.file_type() {
            t if t.is_dir() => "dir",
            t if t.is_file() => "file",
            _ => "OS.unix=symlink",
        });
        text.push_str(&format!("type={kind};"));
    }
    if facts.has("size") && !is_dir {
        text.push_str(&format!("size={};", meta.len()));
    }
    if facts.has("modify") {
        text.push_str(&format!("modify={};", mdtm(meta.modified().unwrap_or(UNIX_EPOCH))));
    }
    if facts.has("perm") {
        let perm = match (is_dir, writable) {
            (true, true) => "cdeflmp",
            (true, false) => "el",
            (false, true) => "adfrw",
            (false, false) => "r",
        };
        text.push_str(&format!("perm={perm};"));
    }
    if facts.has("unique") {
        text.push_str(&format!("unique={:x}g{:x};", meta.dev(), meta.ino()));
    }
    if facts.has("unix.mode") {
        text.push_str(&format!("unix.mode=0{:o};", meta.permissions().mode() & 0o7777));
    }
    out.extend_from_slice(text.as_bytes());
    out.push(b' ');
    out.extend_from_slice(name);
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

/// Parses `YYYYMMDDHHMMSS` (UTC) as `MFMT` sends it.
pub fn parse_mdtm(stamp: &str) -> Option<SystemTime> {
    if stamp.len() != 14 || !stamp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |range: std::ops::Range<usize>| stamp[range].parse::<i64>().ok();
    let (y, m, d) = (field(0..4)?, field(4..6)?, field(6..8)?);
    let (hh, mm, ss) = (field(8..10)?, field(10..12)?, field(12..14)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let secs = days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(if secs >= 0 {
        UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - std::time::Duration::from_secs(secs.unsigned_abs())
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
    fn mdtm_round_trips() {
        for secs in [0u64, 951_782_400, 1_796_215_045, 4_102_444_800] {
            assert_eq!(parse_mdtm(&mdtm(at(secs))), Some(at(secs)));
        }
        for bad in ["", "2001090901464", "20011309014640", "2001090901464x", "20010909254640"] {
            assert_eq!(parse_mdtm(bad), None, "{bad}");
        }
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

    #[test]
    fn wildcards() {
        assert!(glob_match(b"*.txt", b"a.txt"));
        assert!(glob_match(b"a?c*", b"abc"));
        assert!(glob_match(b"*a*b*", b"xxaybzz"));
        assert!(!glob_match(b"*.txt", b"a.bin"));
        assert!(!glob_match(b"*", b".hidden"));
        assert!(glob_match(b".*", b".hidden"));
        assert!(!glob_match(b"a?", b"a"));
        assert!(is_glob(b"*.txt") && !is_glob(b"plain"));
    }

    #[test]
    fn facts_selection_and_lines() {
        assert_eq!(Facts::parse("type;size;bogus;").selected(), "type;size;");
        assert_eq!(Facts::parse("").selected(), "");
        assert_eq!(Facts::ALL.feat(), "type*;size*;modify*;perm*;unique*;unix.mode*;");
        assert_eq!(Facts::parse("Type;PERM").feat(), "type*;size;modify;perm*;unique;unix.mode;");

        let meta = std::fs::metadata(std::env::temp_dir()).unwrap();
        let mut line = Vec::new();
        facts_line(&mut line, b"tmp", &meta, Some("cdir"), Facts::parse("type;size;perm"), false);
        assert_eq!(line, b"type=cdir;perm=el; tmp", "directories have no size fact");
    }
}
