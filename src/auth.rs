//! Accounts: the users file, password hashes in standard crypt formats, and the anonymous policy.
//! No sockets and no threads: hashing is slow on purpose, so the loop hands it to `verifier`.
//!
//! Users file: one account per line, `NAME:HASH[:FLAGS]`; `#` starts a comment line.
//! - `HASH` is a crypt string: `$6$…` (SHA-512-crypt, `mkpasswd -m sha-512`), `$5$…`
//!   (SHA-256-crypt) or `$2y$`/`$2b$`/`$2a$…` (bcrypt, `htpasswd -nB`).
//! - `FLAGS` is `rw` (the default) or `ro` (read-only).
//!
//! So an `htpasswd` line pastes in unchanged, and `mioftpd users add FILE NAME` writes new ones.

use std::collections::HashMap;
use std::fmt;

/// Who a logged-in session is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub writable: bool,
}

/// The names that mean "anonymous" by FTP convention.
pub fn is_anonymous_name(name: &str) -> bool {
    name.eq_ignore_ascii_case("anonymous") || name.eq_ignore_ascii_case("ftp")
}

impl Account {
    pub fn anonymous() -> Account {
        Account { name: "anonymous".into(), writable: false }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    hash: String,
    writable: bool,
}

/// The parsed users file.
#[derive(Clone, Debug, Default)]
pub struct Users {
    entries: HashMap<String, Entry>,
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
            let err = |reason: &str| ParseError { line: i + 1, reason: reason.into() };
            let mut fields = line.splitn(3, ':');
            let name = fields.next().unwrap_or_default();
            let hash = fields.next().ok_or_else(|| err("expected NAME:HASH[:FLAGS]"))?;
            let writable = match fields.next().unwrap_or("rw") {
                "rw" => true,
                "ro" => false,
                _ => return Err(err("flags must be 'rw' or 'ro'")),
            };
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(err("empty user name or one with spaces"));
            }
            if scheme(hash).is_none() {
                return Err(err("unsupported hash: use $6$ (SHA-512-crypt), $5$, or $2y$/$2b$ (bcrypt)"));
            }
            entries.insert(name.to_string(), Entry { hash: hash.to_string(), writable });
        }
        Ok(Users { entries })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks a password. Slow (milliseconds) by design: call it off the event loop.
    /// Unknown users cost a hash too, so response time does not reveal which names exist.
    pub fn verify(&self, name: &str, password: &str) -> Option<Account> {
        const DECOY: &str =
            "$6$decoysaltdecoys$y/EO10bLSePlG.1HCvkhusY1t2pMtP3MIdCptsY5LsUqMCA3hSlv5M4dcpmViCIisBffwKpPrIBdKRsK2AiRy.";
        match self.entries.get(name) {
            Some(entry) => {
                verify_hash(&entry.hash, password).then(|| Account { name: name.to_string(), writable: entry.writable })
            }
            None => {
                verify_hash(DECOY, password);
                None
            }
        }
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

/// The users file `text` with `name`'s line added, or replaced in place if it exists.
pub fn upsert_line(text: &str, name: &str, hash: &str, writable: bool) -> String {
    let line = format!("{name}:{hash}:{}", if writable { "rw" } else { "ro" });
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
        assert_eq!(users.verify("alice", "s3cret"), Some(Account { name: "alice".into(), writable: true }));
        assert_eq!(users.verify("bob", "s3cret").map(|a| a.writable), Some(false));
        assert_eq!(users.verify("alice", "wrong"), None);
        assert_eq!(users.verify("nobody", "s3cret"), None);
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
        assert!(Users::parse("a:plaintext").unwrap_err().reason.contains("unsupported hash"));
        assert!(Users::parse("a:$6$x$y:admin").unwrap_err().reason.contains("flags"));
    }

    #[test]
    fn upsert_replaces_or_appends() {
        let text = "# users\nalice:$6$a$b:rw\nbob:$6$c$d:ro\n";
        assert_eq!(upsert_line(text, "alice", "$6$n$h", false), "# users\nalice:$6$n$h:ro\nbob:$6$c$d:ro\n");
        assert_eq!(upsert_line(text, "carol", "$6$n$h", true), format!("{text}carol:$6$n$h:rw\n"));
        assert_eq!(upsert_line("", "x", "$6$n$h", true), "x:$6$n$h:rw\n");
    }
}
