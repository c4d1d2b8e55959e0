//! Accounts: the users file, password hashes in standard crypt formats, and the anonymous policy.
//! No sockets and no threads: hashing is slow on purpose, so the loop hands it to `verifier`.
//!
//! Users file: one account per line, `NAME:HASH[:FLAGS]`; `#` starts a comment line.
//! - `HASH` is a crypt string: `$6$…` (SHA-512-crypt, `mkpasswd -m sha-512`), `$5$…`
//!   (SHA-256-crypt) or `$2y$`/`$2b$`/`$2a$…` (bcrypt, `htpasswd -nB`).
//! - `FLAGS` is a comma-separated list, each item at most once:
//!   - `rw` (the default) or `ro` (read-only);
//!   - `home=DIR`: the user's `/`. A relative `DIR` is a directory inside `--root` (no `..`;
//!     one whose real path leads out of the root is refused at login); an absolute one is
//!     served instead of the root. The directory must exist when the user logs in, or the
//!     login gets `530`. `DIR` may not contain a comma.
//!   - `rate=BYTES_PER_SEC`: the user's bandwidth limit, with an optional binary suffix
//!     (`512k`, `10M`); carried on `Account::max_rate`, enforced by throttling.
//!
//! ```text
//! alice:$6$Jq0Gx1yN3hZ2$Vb0…:rw,home=alice,rate=10M
//! bob:$2y$05$Qm3…:ro,home=/srv/ftp/bob
//! carol:$6$saltsalt$TVLl…
//! ```
//!
//! So an `htpasswd` line pastes in unchanged, and `mioftpd users add FILE NAME` writes new ones.

use crate::units;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Who a logged-in session is, and what the users file grants them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub writable: bool,
    /// The user's `/`: relative to the served root (inside it), or absolute (instead of it).
    /// `None`: the served root.
    pub home: Option<PathBuf>,
    /// Bytes per second this user's transfers may move, enforced by throttling. `None`: no
    /// per-user limit.
    pub max_rate: Option<u64>,
}

/// The names that mean "anonymous" by FTP convention.
pub fn is_anonymous_name(name: &str) -> bool {
    name.eq_ignore_ascii_case("anonymous") || name.eq_ignore_ascii_case("ftp")
}

impl Account {
    pub fn anonymous() -> Account {
        Account { name: "anonymous".into(), ..Account::default() }
    }

    /// The `FLAGS` field of this account's users-file line.
    pub fn flags(&self) -> String {
        let mut flags = vec![if self.writable { "rw".to_string() } else { "ro".to_string() }];
        if let Some(home) = &self.home {
            flags.push(format!("home={}", home.display()));
        }
        if let Some(rate) = self.max_rate {
            flags.push(format!("rate={rate}"));
        }
        flags.join(",")
    }

    /// Parses a `FLAGS` field (see the module doc) onto a read-write account without a home.
    fn parse_flags(name: &str, text: &str) -> Result<Account, String> {
        let mut account = Account { name: name.to_string(), writable: true, home: None, max_rate: None };
        let mut seen = Vec::new();
        for flag in text.split(',').map(str::trim) {
            let (key, value) = flag.split_once('=').unwrap_or((flag, ""));
            let setting = if matches!(key, "rw" | "ro") { "rw/ro" } else { key };
            if seen.contains(&setting) {
                return Err(format!("{setting} given twice"));
            }
            seen.push(setting);
            match (key, value) {
                ("rw", "") => account.writable = true,
                ("ro", "") => account.writable = false,
                ("home", dir) => account.home = Some(parse_home(dir)?),
                ("rate", rate) => account.max_rate = Some(units::parse_rate(rate).map_err(|e| format!("rate: {e}"))?),
                _ => return Err(format!("unknown flag {flag:?}: expected rw, ro, home=DIR or rate=BYTES_PER_SEC")),
            }
        }
        Ok(account)
    }
}

fn parse_home(dir: &str) -> Result<PathBuf, String> {
    let home = PathBuf::from(dir);
    if dir.is_empty() {
        return Err("home= needs a directory".into());
    }
    // A relative home is inside the root by definition; `..` would make that a lie.
    if home.is_relative() && home.components().any(|c| c == Component::ParentDir) {
        return Err(format!("home {dir:?}: a relative home may not contain '..'"));
    }
    Ok(home)
}

/// The parsed users file: each name's hash and the account it logs in to.
#[derive(Clone, Debug, Default)]
pub struct Users {
    entries: HashMap<String, (String, Account)>,
}

/// A users-file line that could not be read.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl Users {
    pub fn parse(text: &str) -> Result<Users, ParseError> {
        let mut entries = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |reason: String| ParseError { line: i + 1, reason };
            let mut fields = line.splitn(3, ':');
            let name = fields.next().unwrap_or_default();
            let hash = fields.next().ok_or_else(|| err("expected NAME:HASH[:FLAGS]".into()))?;
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(err("empty user name or one with spaces".into()));
            }
            if scheme(hash).is_none() {
                return Err(err("unsupported hash: use $6$ (SHA-512-crypt), $5$, or $2y$/$2b$ (bcrypt)".into()));
            }
            let account = Account::parse_flags(name, fields.next().unwrap_or("rw")).map_err(err)?;
            entries.insert(name.to_string(), (hash.to_string(), account));
        }
        Ok(Users { entries })
    }

    /// Reads and parses the users file at `path`; the error names the file (and the line).
    pub fn load(path: &Path) -> io::Result<Users> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot read users file {}: {e}", path.display())))?;
        Users::parse(&text)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("users file {}: {e}", path.display())))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every account, by name: what each may do, without the hashes.
    pub fn accounts(&self) -> Vec<&Account> {
        let mut accounts: Vec<&Account> = self.entries.values().map(|(_, account)| account).collect();
        accounts.sort_by(|a, b| a.name.cmp(&b.name));
        accounts
    }

    /// Checks a password. Slow (milliseconds) by design: call it off the event loop.
    /// Unknown users cost a hash too, so response time does not reveal which names exist.
    pub fn verify(&self, name: &str, password: &str) -> Option<Account> {
        const DECOY: &str =
            "$6$decoysaltdecoys$y/EO10bLSePlG.1HCvkhusY1t2pMtP3MIdCptsY5LsUqMCA3hSlv5M4dcpmViCIisBffwKpPrIBdKRsK2AiRy.";
        match self.entries.get(name) {
            Some((hash, account)) => verify_hash(hash, password).then(|| account.clone()),
            None => {
                verify_hash(DECOY, password);
                None
            }
        }
    }

    /// `name`'s account, if the file has one (for `users add`, which keeps what it is not told to change).
    pub fn account(&self, name: &str) -> Option<&Account> {
        self.entries.get(name).map(|(_, account)| account)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    ShaCrypt,
    Bcrypt,
}

fn scheme(hash: &str) -> Option<Scheme> {
    if hash.starts_with("$6$") || hash.starts_with("$5$") {
        Some(Scheme::ShaCrypt)
    } else if ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p)) {
        Some(Scheme::Bcrypt)
    } else {
        None
    }
}

/// Whether `password` matches a crypt-format `hash`.
pub fn verify_hash(hash: &str, password: &str) -> bool {
    use sha_crypt::{PasswordHashRef, PasswordVerifier, ShaCrypt};
    match scheme(hash) {
        Some(Scheme::ShaCrypt) => PasswordHashRef::new(hash)
            .map(|parsed| ShaCrypt::default().verify_password(password.as_bytes(), parsed).is_ok())
            .unwrap_or(false),
        Some(Scheme::Bcrypt) => bcrypt::verify(password, hash).unwrap_or(false),
        None => false,
    }
}

/// A new SHA-512-crypt hash with a random salt and the default 5000 rounds, as `mkpasswd -m sha-512` makes.
pub fn hash_password(password: &str) -> Result<String, String> {
    use sha_crypt::{PasswordHasher, ShaCrypt};
    ShaCrypt::default().hash_password(password.as_bytes()).map(|h| h.as_str().to_string()).map_err(|e| e.to_string())
}

/// The users file `text` with `account`'s line added, or replaced in place if it exists.
pub fn upsert_line(text: &str, account: &Account, hash: &str) -> String {
    let name = account.name.as_str();
    let line = format!("{name}:{hash}:{}", account.flags());
    let mut out = String::with_capacity(text.len() + line.len() + 1);
    let mut replaced = false;
    for existing in text.lines() {
        let is_it = !existing.trim_start().starts_with('#') && existing.split(':').next() == Some(name);
        if is_it && !replaced {
            out.push_str(&line);
            replaced = true;
        } else if !is_it {
            out.push_str(existing);
        } else {
            continue; // a duplicate line for the same user: drop it, the first one wins
        }
        out.push('\n');
    }
    if !replaced {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha512_round_trip_and_flags() {
        let hash = hash_password("s3cret").unwrap();
        assert!(hash.starts_with("$6$"));
        let users = Users::parse(&format!("# comment\n\nalice:{hash}\nbob:{hash}:ro\n")).unwrap();
        let alice = Account { name: "alice".into(), writable: true, ..Account::default() };
        assert_eq!(users.verify("alice", "s3cret"), Some(alice));
        assert_eq!(users.verify("bob", "s3cret").map(|a| a.writable), Some(false));
        assert_eq!(users.verify("alice", "wrong"), None);
        assert_eq!(users.verify("nobody", "s3cret"), None);
    }

    #[test]
    fn homes_and_rates() {
        let text = "a:$6$x$y:rw,home=a,rate=512k\nb:$6$x$y:home=/srv/b, ro ,rate=10M\nc:$6$x$y:rate=100\n";
        let users = Users::parse(text).unwrap();
        let [a, b, c] = users.accounts()[..] else { panic!("three accounts") };
        assert_eq!((a.writable, a.home.as_deref(), a.max_rate), (true, Some(Path::new("a")), Some(512 * 1024)));
        assert_eq!((b.writable, b.home.as_deref(), b.max_rate), (false, Some(Path::new("/srv/b")), Some(10 << 20)));
        assert_eq!((c.writable, c.home.as_deref(), c.max_rate), (true, None, Some(100)));
        for account in [a, b, c] {
            let line = upsert_line("", account, "$6$x$y");
            assert_eq!(Users::parse(&line).unwrap().account(&account.name), Some(account), "{line}");
        }
    }

    #[test]
    fn accepts_mkpasswd_and_htpasswd_formats() {
        // `mkpasswd -m sha-512 -S saltsalt secret` and `htpasswd -nbB u secret`.
        let sha = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
        assert!(verify_hash(sha, "secret"));
        assert!(!verify_hash(sha, "Secret"));
        let bcrypt = bcrypt::hash("secret", 4).unwrap().replacen("$2b$", "$2y$", 1);
        assert!(verify_hash(&bcrypt, "secret"));
    }

    #[test]
    fn bad_lines_name_the_line() {
        assert_eq!(Users::parse("a:$6$x$y\nb").unwrap_err().line, 2);
        let reason = |text: &str| Users::parse(text).unwrap_err().reason;
        assert!(reason("a:plaintext").contains("unsupported hash"));
        assert!(reason("a:$6$x$y:admin").contains("unknown flag \"admin\""));
        assert!(reason("a:$6$x$y:").contains("unknown flag"));
        assert!(reason("a:$6$x$y:ro,rw").contains("rw/ro given twice"));
        assert!(reason("a:$6$x$y:home=../etc").contains("'..'"));
        assert!(reason("a:$6$x$y:home=").contains("needs a directory"));
        assert!(reason("a:$6$x$y:rate=0").contains("rate: a rate must be above zero"));
        assert!(reason("a:$6$x$y:rate=fast").contains("rate:"));
    }

    #[test]
    fn upsert_replaces_or_appends() {
        let text = "# users\nalice:$6$a$b:rw\nbob:$6$c$d:ro\n";
        let account = |name: &str, writable| Account { name: name.into(), writable, ..Account::default() };
        assert_eq!(upsert_line(text, &account("alice", false), "$6$n$h"), "# users\nalice:$6$n$h:ro\nbob:$6$c$d:ro\n");
        assert_eq!(upsert_line(text, &account("carol", true), "$6$n$h"), format!("{text}carol:$6$n$h:rw\n"));
        assert_eq!(upsert_line("", &account("x", true), "$6$n$h"), "x:$6$n$h:rw\n");
    }
}
