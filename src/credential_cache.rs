//! Verified-credential cache: a login repeated with a password that was verified recently is
//! answered at once, without running the slow hash again, so clients that reconnect for every
//! transfer (curl, wget, scripts) log in at the rate of the loop, not of bcrypt.
//!
//! As in Dovecot's auth cache, entries are keyed by a SHA-256 of a per-process random secret,
//! the user name and the password: the map holds no passwords, its keys are useless to
//! precomputed tables and change at every start. Only successful logins are cached, so a
//! wrong password always costs the full hash and the failed-login delay. Reloading the users
//! file (`SIGHUP`) clears the cache, so a removed user or a changed password stops working at
//! once; a file edited without a reload takes effect for cached logins when their entry
//! expires (`--credential-cache-secs`).

use crate::auth::Account;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

/// Most entries kept; past it, expired entries go, and if none have, everything does. A bound,
/// not a tuning knob: each entry is about a hundred bytes.
const MAX_ENTRIES: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key([u8; 32]);

pub struct CredentialCache {
    secret: [u8; 32],
    ttl: Duration,
    entries: HashMap<Key, (Account, Instant)>,
}

impl CredentialCache {
    /// A cache whose entries live `ttl`; a zero `ttl` caches nothing.
    pub fn new(ttl: Duration) -> io::Result<CredentialCache> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| io::Error::other(format!("no randomness for the cache key: {e}")))?;
        Ok(CredentialCache { secret, ttl, entries: HashMap::new() })
    }

    pub fn key(&self, user: &str, password: &str) -> Key {
        let mut hash = Sha256::new();
        hash.update(self.secret);
        // The length keeps `ab`+`c` and `a`+`bc` apart.
        hash.update((user.len() as u64).to_le_bytes());
        hash.update(user.as_bytes());
        hash.update(password.as_bytes());
        Key(hash.finalize().into())
    }

    pub fn get(&mut self, key: &Key) -> Option<Account> {
        match self.entries.get(key) {
            Some((account, expires)) if Instant::now() < *expires => Some(account.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&mut self, key: Key, account: Account) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.retain(|_, (_, expires)| now < *expires);
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert(key, (account, now + self.ttl));
    }

    /// Forgets everything, for when the accounts change.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Account {
        Account { name: "alice".into(), writable: true, ..Account::default() }
    }

    #[test]
    fn hits_only_the_same_user_and_password_until_expiry() {
        let mut cache = CredentialCache::new(Duration::from_millis(50)).unwrap();
        let key = cache.key("alice", "pw");
        assert_eq!(cache.get(&key), None);
        cache.insert(key, alice());
        assert_eq!(cache.get(&cache.key("alice", "pw")), Some(alice()));
        assert_eq!(cache.get(&cache.key("alice", "pW")), None);
        assert_eq!(cache.get(&cache.key("alicep", "w")), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&key), None, "expired");
        cache.insert(key, alice());
        cache.clear();
        assert_eq!(cache.get(&key), None);
    }

    #[test]
    fn keys_differ_between_processes_and_zero_ttl_caches_nothing() {
        let (a, b) = (CredentialCache::new(Duration::ZERO).unwrap(), CredentialCache::new(Duration::ZERO).unwrap());
        assert_ne!(a.key("alice", "pw"), b.key("alice", "pw"), "a fresh secret each time");
        let mut a = a;
        let key = a.key("alice", "pw");
        a.insert(key, alice());
        assert_eq!(a.get(&key), None);
    }

    #[test]
    fn stays_bounded() {
        let mut cache = CredentialCache::new(Duration::from_secs(60)).unwrap();
        for i in 0..MAX_ENTRIES + 10 {
            let key = cache.key(&format!("u{i}"), "pw");
            cache.insert(key, alice());
        }
        assert!(cache.entries.len() <= MAX_ENTRIES);
    }
}
