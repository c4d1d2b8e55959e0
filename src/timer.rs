//! `Timers<T>`: a min-heap of (deadline, item) that tells the loop how long `poll` may sleep and
//! which items are due. Entries are never removed early: an item whose deadline moved is simply
//! checked again when its old entry pops (lazy invalidation), so touching a deadline on every
//! command costs nothing here. No I/O.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

pub struct Timers<T> {
    heap: BinaryHeap<Reverse<Entry<T>>>,
    next_seq: u64,
}

/// Ordered by deadline, then by insertion, so items never need `Ord` themselves.
struct Entry<T> {
    at: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Timers { heap: BinaryHeap::new(), next_seq: 0 }
    }
}

impl<T> Timers<T> {
    pub fn schedule(&mut self, at: Instant, item: T) {
        self.heap.push(Reverse(Entry { at, seq: self.next_seq, item }));
        self.next_seq += 1;
    }

    /// How long until the earliest deadline (zero if one has passed); `None` if there is none.
    pub fn next_timeout(&self, now: Instant) -> Option<Duration> {
        self.heap.peek().map(|Reverse(entry)| entry.at.saturating_duration_since(now))
    }

    /// Removes and returns the items whose deadline is at or before `now`, earliest first,
    /// each with the deadline it was scheduled for.
    pub fn expired(&mut self, now: Instant) -> Vec<(Instant, T)> {
        let mut due = Vec::new();
        while self.heap.peek().is_some_and(|Reverse(entry)| entry.at <= now) {
            if let Some(Reverse(entry)) = self.heap.pop() {
                due.push((entry.at, entry.item));
            }
        }
        due
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Drops the entries `keep` rejects: the owner's way to shed stale entries in one O(n) pass
    /// when they pile up, instead of paying for removal on every re-arm.
    pub fn retain(&mut self, mut keep: impl FnMut(Instant, &T) -> bool) {
        self.heap.retain(|Reverse(entry)| keep(entry.at, &entry.item));
        self.heap.shrink_to_fit();
    }
}

/// The shorter of two optional timeouts (`None` means "no limit").
pub fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_and_reports_the_next_timeout() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        assert_eq!(timers.next_timeout(t0), None);
        timers.schedule(t0 + Duration::from_secs(3), "c");
        timers.schedule(t0 + Duration::from_secs(1), "a");
        timers.schedule(t0 + Duration::from_secs(1), "b");
        assert_eq!(timers.next_timeout(t0), Some(Duration::from_secs(1)));
        assert!(timers.expired(t0).is_empty());
        let items = |due: Vec<(Instant, &'static str)>| due.into_iter().map(|(_, item)| item).collect::<Vec<_>>();
        assert_eq!(items(timers.expired(t0 + Duration::from_secs(2))), ["a", "b"]);
        assert_eq!(timers.next_timeout(t0 + Duration::from_secs(5)), Some(Duration::ZERO));
        assert_eq!(timers.expired(t0 + Duration::from_secs(5)), [(t0 + Duration::from_secs(3), "c")]);
        assert!(timers.is_empty());
    }

    #[test]
    fn retain_sheds_entries_and_keeps_order() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        for i in 0..100u64 {
            timers.schedule(t0 + Duration::from_secs(100 - i), i);
        }
        timers.retain(|_, item| item % 10 == 0);
        assert_eq!(timers.len(), 10);
        let items: Vec<u64> = timers.expired(t0 + Duration::from_secs(1000)).into_iter().map(|(_, i)| i).collect();
        assert_eq!(items, [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]);
    }

    #[test]
    fn earliest_of_optional_timeouts() {
        let s = Duration::from_secs;
        assert_eq!(earliest(Some(s(2)), Some(s(1))), Some(s(1)));
        assert_eq!(earliest(None, Some(s(1))), Some(s(1)));
        assert_eq!(earliest(None, None), None);
    }
}
