//! Bandwidth limits: one token bucket (`Bucket`) per limit, and the rule (`Buckets::grant`,
//! `Buckets::charge`) by which a data connection moves bytes under the global limit and its
//! session's. Pure arithmetic on `Instant`s: no I/O, no sleeping, no threads. The loop asks for
//! a grant before each turn of a data connection and caps the turn at it; a connection that
//! finds no tokens reserves its next few bytes and the loop sleeps it on a timer until they are
//! paid for.
//!
//! Fairness among connections sharing a bucket comes from the reservations: a reservation puts
//! the bucket in debt, and a bucket in debt grants nothing to anyone, so a connection that just
//! had its turn queues behind every connection already waiting, and they are served in the order
//! they ran dry (first come, first served), each for one `quantum`. While tokens are plentiful,
//! the per-turn byte budget of the data connections keeps them fair, as without limits.
//!
//! ```text
//!  grant: credit not yet due ──────────────────────────────────▶ Asleep (a timer is set)
//!         credit due ──────────────────────────────────────────▶ Bytes(credit)
//!         every bucket has ≥ quantum ──────────────────────────▶ Bytes(min(tokens, turn))
//!         otherwise: take a quantum from every bucket (debt) ──▶ SleepUntil(debt repaid)
//! ```

use std::time::{Duration, Instant};

/// Token balances are kept in byte-nanoseconds, so refills at any rate lose no fractions.
const NANOS: i128 = 1_000_000_000;

/// The least a connection waits for before it is woken: this much of a second's rate...
const QUANTUM_PER_SECOND: u64 = 50;
/// ...but at least this many bytes, so that slow limits do not mean tiny writes.
const MIN_QUANTUM: u64 = 1024;

/// A token bucket: `rate` tokens (bytes) per second, holding at most `burst`.
#[derive(Debug)]
pub struct Bucket {
    rate: u64,
    burst: u64,
    /// Tokens × 10⁹ as of `at`; negative while reservations wait for the refill to pay them.
    balance: i128,
    at: Instant,
}

impl Bucket {
    /// A full bucket of `rate` bytes per second. The burst is a tenth of a second of `rate`, or
    /// `min_burst` (the loop passes a data connection's turn budget) if that is more: a bucket
    /// smaller than one turn would split turns into more wake-ups for nothing, and a tenth of a
    /// second absorbs the loop's timer lateness at high rates without letting a burst exceed
    /// the limit by more than 10 % over any second.
    pub fn new(rate: u64, min_burst: u64, now: Instant) -> Bucket {
        let rate = rate.max(1);
        let burst = min_burst.max(rate / 10).max(1);
        Bucket { rate, burst, balance: i128::from(burst) * NANOS, at: now }
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    fn refill(&mut self, now: Instant) {
        if now > self.at {
            let elapsed = i128::try_from(now.duration_since(self.at).as_nanos()).unwrap_or(i128::MAX);
            let added = elapsed.saturating_mul(i128::from(self.rate));
            self.balance = self.balance.saturating_add(added).min(i128::from(self.burst) * NANOS);
            self.at = now;
        }
    }

    /// Whole tokens there now (none while in debt).
    pub fn available(&mut self, now: Instant) -> u64 {
        self.refill(now);
        u64::try_from(self.balance / NANOS).unwrap_or(0)
    }

    /// Spends `bytes` tokens, going into debt if there are not that many.
    pub fn take(&mut self, bytes: u64) {
        self.balance -= i128::from(bytes) * NANOS;
    }

    /// How long until `bytes` tokens are there (zero if they are now).
    pub fn time_until(&mut self, bytes: u64, now: Instant) -> Duration {
        self.refill(now);
        let missing = i128::from(bytes) * NANOS - self.balance;
        if missing <= 0 {
            return Duration::ZERO;
        }
        let rate = i128::from(self.rate);
        let nanos = (missing + rate - 1) / rate; // rounded up: never wake before the tokens are there
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// What a connection that ran dry reserves: 1/50 s of rate (20 ms of sleep per wake-up),
    /// at least `MIN_QUANTUM`, at most the burst.
    pub fn quantum(&self) -> u64 {
        (self.rate / QUANTUM_PER_SECOND).max(MIN_QUANTUM).min(self.burst)
    }
}

/// A data connection's side of its limits: tokens it reserved while it waited, usable from
/// `due` on. Lives as long as the connection; leftovers vanish with it.
#[derive(Debug, Default)]
pub struct Credit {
    bytes: u64,
    due: Option<Instant>,
}

impl Credit {
    /// When the reserved tokens become usable, while the connection sleeps for them.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }
}

/// What a data connection may do this turn.
#[derive(Debug, PartialEq, Eq)]
pub enum Grant {
    /// Move at most this many bytes.
    Bytes(usize),
    /// Out of tokens: the next quantum is reserved; run the connection again at this instant.
    SleepUntil(Instant),
    /// Still sleeping for an earlier reservation, whose wake-up is already scheduled.
    Asleep,
}

/// The buckets one data connection is under: the global one, its session's, either, or none.
pub struct Buckets<'a> {
    pub global: Option<&'a mut Bucket>,
    pub session: Option<&'a mut Bucket>,
}

impl Buckets<'_> {
    fn buckets(&mut self) -> impl Iterator<Item = &mut Bucket> {
        self.global.iter_mut().chain(self.session.iter_mut()).map(|bucket| &mut **bucket)
    }

    /// How much a connection holding `credit` may move now, at most `turn` bytes.
    pub fn grant(&mut self, credit: &mut Credit, turn: usize, now: Instant) -> Grant {
        if self.global.is_none() && self.session.is_none() {
            return Grant::Bytes(turn);
        }
        match credit.due {
            Some(due) if now < due => return Grant::Asleep,
            _ => credit.due = None,
        }
        let turn_bytes = u64::try_from(turn).unwrap_or(u64::MAX);
        if credit.bytes > 0 {
            return Grant::Bytes(usize::try_from(credit.bytes.min(turn_bytes)).unwrap_or(turn));
        }
        let available = self.buckets().map(|bucket| bucket.available(now)).min().unwrap_or(0);
        let quantum = self.buckets().map(|bucket| bucket.quantum()).min().unwrap_or(1).min(turn_bytes);
        if available >= quantum {
            return Grant::Bytes(usize::try_from(available.min(turn_bytes)).unwrap_or(turn));
        }
        for bucket in self.buckets() {
            bucket.take(quantum);
        }
        let wait = self.buckets().map(|bucket| bucket.time_until(0, now)).max().unwrap_or_default();
        let due = now + wait;
        *credit = Credit { bytes: quantum, due: Some(due) };
        Grant::SleepUntil(due)
    }

    /// Pays for `moved` bytes: out of `credit` first, the rest out of every bucket.
    pub fn charge(&mut self, credit: &mut Credit, moved: u64) {
        let prepaid = moved.min(credit.bytes);
        credit.bytes -= prepaid;
        for bucket in self.buckets() {
            bucket.take(moved - prepaid);
        }
    }
}

/// The stricter of two optional limits (`None`: unlimited); how a session's limit is chosen
/// from the per-session setting and the user's own.
pub fn stricter(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;
    const TURN: usize = 256 * 1024;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn refills_at_the_rate_and_caps_at_the_burst() {
        let t0 = Instant::now();
        let mut bucket = Bucket::new(MIB, TURN as u64, t0);
        assert_eq!(bucket.available(t0), TURN as u64, "starts full");
        bucket.take(TURN as u64);
        assert_eq!(bucket.available(t0), 0);
        assert_eq!(bucket.available(t0 + ms(100)), MIB / 10);
        assert_eq!(bucket.available(t0 + ms(250)), MIB / 4);
        assert_eq!(bucket.available(t0 + Duration::from_secs(60)), TURN as u64, "capped at the burst");
    }

    #[test]
    fn burst_is_a_turn_or_a_tenth_of_a_second_whichever_is_more() {
        let t0 = Instant::now();
        assert_eq!(Bucket::new(MIB, TURN as u64, t0).available(t0), TURN as u64);
        assert_eq!(Bucket::new(100 * MIB, TURN as u64, t0).available(t0), 10 * MIB);
    }

    #[test]
    fn refills_keep_fractions_of_a_token() {
        let t0 = Instant::now();
        let mut bucket = Bucket::new(3, 10, t0); // 3 bytes/s: one token every 333.3 ms
        bucket.take(10);
        let mut t = t0;
        for _ in 0..1000 {
            t += ms(1);
            bucket.available(t);
        }
        assert_eq!(bucket.available(t), 3, "1000 refills of 1 ms make exactly one second");
    }

    #[test]
    fn time_until_tokens_rounds_up_and_counts_debt() {
        let t0 = Instant::now();
        let mut bucket = Bucket::new(1000, 1000, t0);
        assert_eq!(bucket.time_until(1000, t0), Duration::ZERO);
        bucket.take(1000);
        assert_eq!(bucket.time_until(1, t0), ms(1));
        bucket.take(500); // in debt by 500
        assert_eq!(bucket.available(t0), 0);
        assert_eq!(bucket.time_until(0, t0), ms(500));
        assert_eq!(bucket.time_until(250, t0 + ms(100)), ms(650));
        let mut slow = Bucket::new(3, 10, t0);
        slow.take(10);
        assert_eq!(slow.time_until(1, t0), Duration::from_nanos(333_333_334));
    }

    #[test]
    fn quantum_is_a_fiftieth_of_a_second_within_bounds() {
        let t0 = Instant::now();
        assert_eq!(Bucket::new(MIB, TURN as u64, t0).quantum(), MIB / 50);
        assert_eq!(Bucket::new(10, TURN as u64, t0).quantum(), MIN_QUANTUM);
        assert_eq!(Bucket::new(100, 100, t0).quantum(), 100, "never more than the burst");
    }

    #[test]
    fn without_limits_every_turn_gets_the_full_budget() {
        let mut credit = Credit::default();
        let mut limits = Buckets { global: None, session: None };
        assert_eq!(limits.grant(&mut credit, TURN, Instant::now()), Grant::Bytes(TURN));
    }

    #[test]
    fn a_connection_out_of_tokens_sleeps_then_spends_its_reservation() {
        let t0 = Instant::now();
        let mut bucket = Bucket::new(MIB, TURN as u64, t0);
        let mut credit = Credit::default();
        let mut limits = Buckets { global: None, session: Some(&mut bucket) };
        assert_eq!(limits.grant(&mut credit, TURN, t0), Grant::Bytes(TURN));
        limits.charge(&mut credit, TURN as u64);
        let quantum = MIB / 50;
        let due = t0 + Duration::from_nanos((quantum * 1_000_000_000).div_ceil(MIB));
        assert_eq!(limits.grant(&mut credit, TURN, t0), Grant::SleepUntil(due));
        assert_eq!(credit.due(), Some(due));
        assert_eq!(limits.grant(&mut credit, TURN, t0 + ms(1)), Grant::Asleep, "a socket event does not wake it");
        assert_eq!(limits.grant(&mut credit, TURN, due), Grant::Bytes(quantum as usize));
        assert_eq!(credit.due(), None);
        limits.charge(&mut credit, 1000); // a short write: the rest of the credit stays
        assert_eq!(limits.grant(&mut credit, TURN, due), Grant::Bytes(quantum as usize - 1000));
        limits.charge(&mut credit, quantum - 1000);
        assert!(matches!(limits.grant(&mut credit, TURN, due), Grant::SleepUntil(_)));
    }

    #[test]
    fn waiting_connections_are_served_in_turn() {
        let t0 = Instant::now();
        let mut global = Bucket::new(MIB, TURN as u64, t0);
        global.take(TURN as u64);
        let (mut a, mut b) = (Credit::default(), Credit::default());
        let due = |grant| match grant {
            Grant::SleepUntil(at) => at,
            other => panic!("expected a sleep, got {other:?}"),
        };
        let a1 = due(Buckets { global: Some(&mut global), session: None }.grant(&mut a, TURN, t0));
        let b1 = due(Buckets { global: Some(&mut global), session: None }.grant(&mut b, TURN, t0));
        assert!(a1 < b1, "b queues behind a");
        let mut limits = Buckets { global: Some(&mut global), session: None };
        assert!(matches!(limits.grant(&mut a, TURN, a1), Grant::Bytes(_)));
        limits.charge(&mut a, MIB / 50);
        let a2 = due(limits.grant(&mut a, TURN, a1));
        assert!(b1 < a2, "a, having had its turn, queues behind b");
        assert!(matches!(limits.grant(&mut b, TURN, b1), Grant::Bytes(_)));
    }

    #[test]
    fn the_stricter_bucket_decides_and_both_are_charged() {
        let t0 = Instant::now();
        let mut global = Bucket::new(10 * MIB, TURN as u64, t0);
        let mut session = Bucket::new(MIB, 4096, t0);
        let mut credit = Credit::default();
        let mut limits = Buckets { global: Some(&mut global), session: Some(&mut session) };
        assert_eq!(limits.grant(&mut credit, TURN, t0), Grant::Bytes((MIB / 10) as usize));
        limits.charge(&mut credit, MIB / 10);
        assert!(matches!(limits.grant(&mut credit, TURN, t0), Grant::SleepUntil(_)));
        assert_eq!(global.available(t0), MIB - MIB / 10 - MIB / 50);
    }

    #[test]
    fn stricter_of_optional_limits() {
        assert_eq!(stricter(Some(5), Some(3)), Some(3));
        assert_eq!(stricter(None, Some(3)), Some(3));
        assert_eq!(stricter(Some(5), None), Some(5));
        assert_eq!(stricter(None, None), None);
    }
}
