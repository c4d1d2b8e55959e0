//! `--max-sessions` and `--max-per-ip`, counted once for the whole process.
//!
//! With `--workers N` the kernel hands each new connection to one worker by a hash of its
//! addresses and ports, so one client's sessions are spread over the workers at random. Shares
//! of a limit per worker (N × limit/N) would refuse a client early on one worker while another
//! has room, so the workers share these counts instead: one mutex, taken when a session opens
//! and when it closes, for a hash-map update of a few nanoseconds. With one worker it is never
//! contended.

use crate::ftp::addr::canonical;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

pub struct SessionLimits {
    max_sessions: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    sessions: usize,
    per_ip: HashMap<IpAddr, usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    TooManySessions,
    TooManyFromAddress,
}

impl Refusal {
    /// The text of the `421` reply.
    pub fn text(self) -> &'static str {
        match self {
            Refusal::TooManySessions => "Too many users; try again later.",
            Refusal::TooManyFromAddress => "Too many connections from your address.",
        }
    }
}

impl SessionLimits {
    pub fn new(max_sessions: usize, max_per_ip: usize) -> SessionLimits {
        SessionLimits { max_sessions, max_per_ip, counts: Mutex::default() }
    }

    /// The most sessions at once (`--max-sessions`).
    pub fn max_sessions(&self) -> usize {
        self.max_sessions
    }

    /// Counts a new session from `ip`, or says which limit it would break.
    pub fn admit(&self, ip: IpAddr) -> Result<(), Refusal> {
        // `::ffff:192.0.2.7` (a dual-stack listener, or a PROXY header) is `192.0.2.7`.
        let ip = canonical(ip);
        let mut counts = self.counts();
        if counts.sessions >= self.max_sessions {
            return Err(Refusal::TooManySessions);
        }
        if counts.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
            return Err(Refusal::TooManyFromAddress);
        }
        *counts.per_ip.entry(ip).or_default() += 1;
        counts.sessions += 1;
        Ok(())
    }

    /// A session `admit` counted has ended. (A release for an address with no session counts
    /// nothing, so a mistake cannot free another address's place.)
    pub fn release(&self, ip: IpAddr) {
        let ip = canonical(ip);
        let mut counts = self.counts();
        let Some(from_ip) = counts.per_ip.get_mut(&ip) else { return };
        *from_ip -= 1;
        if *from_ip == 0 {
            counts.per_ip.remove(&ip);
        }
        counts.sessions -= 1;
    }

    fn counts(&self) -> MutexGuard<'_, Counts> {
        // A worker that panicked while holding the lock left plain counters behind, still
        // consistent (each update is one step): keep counting.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_mapped_address_counts_as_its_ipv4_address() {
        let limits = SessionLimits::new(10, 1);
        assert_eq!(limits.admit("192.0.2.7".parse().unwrap()), Ok(()));
        assert_eq!(limits.admit("::ffff:192.0.2.7".parse().unwrap()), Err(Refusal::TooManyFromAddress));
        limits.release("::ffff:192.0.2.7".parse().unwrap());
        assert_eq!(limits.admit("192.0.2.7".parse().unwrap()), Ok(()));
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn per_address_and_total_limits() {
        let limits = SessionLimits::new(3, 2);
        assert_eq!(limits.admit(A), Ok(()));
        assert_eq!(limits.admit(A), Ok(()));
        assert_eq!(limits.admit(A), Err(Refusal::TooManyFromAddress));
        assert_eq!(limits.admit(B), Ok(()));
        assert_eq!(limits.admit(B), Err(Refusal::TooManySessions));
        assert_eq!(limits.counts().sessions, 3);
        limits.release(A);
        assert_eq!(limits.admit(A), Ok(()), "a closed session frees its place");
        for _ in 0..3 {
            limits.release(A); // the third is one too many, and counts nothing
        }
        assert_eq!(limits.counts().sessions, 1, "B's session is still counted");
        assert!(!limits.counts().per_ip.contains_key(&A), "no entry stays for an address with no session");
    }

    #[test]
    fn shared_between_threads() {
        let limits = std::sync::Arc::new(SessionLimits::new(1000, 150));
        let admitted: usize = std::thread::scope(|scope| {
            let workers: Vec<_> =
                (0..4).map(|_| scope.spawn(|| (0..100).filter(|_| limits.admit(A).is_ok()).count())).collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert_eq!(admitted, 150, "exactly the per-address limit, however the threads interleave");
    }

    #[test]
    fn zero_per_ip_refuses_everyone_and_keeps_no_entries() {
        let limits = SessionLimits::new(10, 0);
        assert_eq!(limits.admit(A), Err(Refusal::TooManyFromAddress));
        assert!(limits.counts().per_ip.is_empty());
    }
}
