//! The one thread besides the loop: checks passwords. A SHA-512-crypt hash takes about a
//! millisecond and bcrypt about a hundred, far too long to run on a loop that is moving other
//! clients' data, so `PASS` becomes a request here and the verdict comes back through a channel
//! and a `mio::Waker`. Logins verified recently are answered from `CredentialCache` without
//! a trip to the thread.
//!
//! The thread owns the `Users`; a reload hands it new ones through the same channel as the
//! requests, so every request sent after `replace_users` is checked against the new file.
//! Verdicts reached with the old file may still be on their way back: they are delivered (the
//! login was asked for before the reload) but not cached, so the cleared cache stays clear
//! of accounts the new file may have removed.

use crate::auth::{Account, Users};
use crate::credential_cache::{CredentialCache, Key};
use log::error;
use mio::{Token, Waker};
use std::io;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};

pub struct Request {
    pub token: Token,
    pub session_id: u64,
    pub user: String,
    pub password: String,
}

pub struct Verdict {
    pub token: Token,
    /// With the token, identifies the session: a slot may have been reused since the request.
    pub session_id: u64,
    pub account: Option<Account>,
}

/// What the loop sends the thread.
enum Work {
    Verify(Request, Key),
    Replace(Users),
}

/// Counts `replace_users` calls: which users file a verdict was reached with.
type Generation = u64;

pub struct Verifier {
    requests: Option<Sender<Work>>,
    verdicts: Receiver<(Verdict, Key, Generation)>,
    thread: Option<JoinHandle<()>>,
    cache: CredentialCache,
    generation: Generation,
}

impl Verifier {
    pub fn spawn(users: Users, cache: CredentialCache, waker: Arc<Waker>) -> io::Result<Verifier> {
        let (requests, inbox) = mpsc::channel::<Work>();
        let (outbox, verdicts) = mpsc::channel();
        let thread = thread::Builder::new().name("mioftpd-verifier".into()).spawn(move || {
            let (mut users, mut generation) = (users, 0);
            for work in inbox {
                let (request, key) = match work {
                    Work::Verify(request, key) => (request, key),
                    Work::Replace(new) => {
                        (users, generation) = (new, generation + 1);
                        continue;
                    }
                };
                let account = users.verify(&request.user, &request.password);
                let verdict = Verdict { token: request.token, session_id: request.session_id, account };
                if outbox.send((verdict, key, generation)).is_err() {
                    return; // the loop is gone
                }
                if let Err(e) = waker.wake() {
                    error!("cannot wake the event loop: {e}");
                }
            }
        })?;
        Ok(Verifier { requests: Some(requests), verdicts, thread: Some(thread), cache, generation: 0 })
    }

    /// The verdict at once when the cache knows these credentials; otherwise `None`, and the
    /// verdict comes later from `verdicts`.
    pub fn submit(&mut self, request: Request) -> Option<Verdict> {
        let key = self.cache.key(&request.user, &request.password);
        if let Some(account) = self.cache.get(&key) {
            return Some(Verdict { token: request.token, session_id: request.session_id, account: Some(account) });
        }
        if let Some(requests) = &self.requests {
            let _ = requests.send(Work::Verify(request, key));
        }
        None
    }

    /// Verdicts that have arrived, without waiting.
    pub fn verdicts(&mut self) -> Vec<Verdict> {
        let mut arrived = Vec::new();
        for (verdict, key, generation) in self.verdicts.try_iter() {
            if let Some(account) = verdict.account.as_ref().filter(|_| generation == self.generation) {
                self.cache.insert(key, account.clone());
            }
            arrived.push(verdict);
        }
        arrived
    }
}

impl Verifier {
    /// From now on, logins are checked against `users`; every cached login is forgotten, so
    /// that a removed user or a changed password no longer logs in.
    pub fn replace_users(&mut self, users: Users) {
        if let Some(requests) = &self.requests {
            let _ = requests.send(Work::Replace(users));
        }
        self.generation += 1;
        self.cache.clear();
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        self.requests = None; // ends the thread's loop
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn request(password: &str) -> Request {
        Request { token: Token(7), session_id: 1, user: "alice".into(), password: password.into() }
    }

    fn wait_for_verdict(verifier: &mut Verifier) -> Verdict {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(verdict) = verifier.verdicts().pop() {
                return verdict;
            }
            assert!(Instant::now() < deadline, "no verdict");
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_repeated_login_is_answered_from_the_cache_and_a_wrong_one_never() {
        let hash = crate::auth::hash_password("pw").unwrap();
        let users = Users::parse(&format!("alice:{hash}\n")).unwrap();
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), Token(0)).unwrap());
        let cache = CredentialCache::new(Duration::from_secs(60)).unwrap();
        let mut verifier = Verifier::spawn(users, cache, waker).unwrap();

        assert!(verifier.submit(request("pw")).is_none(), "the first login goes to the thread");
        assert_eq!(wait_for_verdict(&mut verifier).account.map(|a| a.name), Some("alice".into()));
        let cached = verifier.submit(request("pw")).expect("the second one is answered at once");
        assert_eq!((cached.token, cached.session_id), (Token(7), 1));
        assert!(cached.account.is_some());

        for _ in 0..2 {
            assert!(verifier.submit(request("wrong")).is_none(), "failures are never cached");
            assert!(wait_for_verdict(&mut verifier).account.is_none());
        }
    }

    #[test]
    fn replaced_users_apply_at_once_even_to_cached_logins() {
        let hash = crate::auth::hash_password("pw").unwrap();
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), Token(0)).unwrap());
        let cache = CredentialCache::new(Duration::from_secs(60)).unwrap();
        let users = Users::parse(&format!("alice:{hash}\n")).unwrap();
        let mut verifier = Verifier::spawn(users, cache, waker).unwrap();
        assert!(verifier.submit(request("pw")).is_none());
        assert!(wait_for_verdict(&mut verifier).account.is_some());
        assert!(verifier.submit(request("pw")).is_some(), "cached");
        verifier.replace_users(Users::parse(&format!("alice:{hash}\ncarol:{hash}\n")).unwrap());
        assert!(verifier.submit(request("pw")).is_none(), "a reload empties the cache");
        assert!(wait_for_verdict(&mut verifier).account.is_some());
        assert!(verifier.submit(request("pw")).is_some(), "cached again, from the new file");

        // A request in flight when the users change: answered by the old file, but not cached.
        verifier.cache.clear();
        assert!(verifier.submit(request("pw")).is_none());
        verifier.replace_users(Users::parse(&format!("bob:{hash}\n")).unwrap());
        assert!(wait_for_verdict(&mut verifier).account.is_some(), "asked before the reload");
        assert!(verifier.submit(request("pw")).is_none(), "not cached from the old file");
        assert!(wait_for_verdict(&mut verifier).account.is_none(), "alice is gone");
    }
}
