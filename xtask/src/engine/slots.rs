//! The per-host connection ceiling: however many files are fetched at once and however
//! many connections each asks for, one host gets at most so many. A connection beyond
//! each file's first takes a [`Slot`], and gives it back when the slot is dropped, on
//! every path out (a finished piece, a refusal, a panic), so no count can leak.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Extra connections open per host right now, against the ceiling.
#[derive(Debug)]
pub(crate) struct HostSlots {
    open: Mutex<HashMap<String, usize>>,
    ceiling: usize,
    /// Per host, what was learnt this run: a lower ceiling after a refusal, and the
    /// connection count an earlier file settled at (where the next one starts).
    learnt: Mutex<HashMap<String, Learnt>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Learnt {
    ceiling: Option<usize>,
    settled: Option<usize>,
}

/// One extra connection to `host`, held until dropped.
#[derive(Debug)]
pub(crate) struct Slot<'s> {
    slots: &'s HostSlots,
    host: String,
}

impl HostSlots {
    pub(crate) fn new(ceiling: usize) -> HostSlots {
        HostSlots { open: Mutex::new(HashMap::new()), ceiling, learnt: Mutex::new(HashMap::new()) }
    }

    /// Connections one file may have open to `host`: its first, plus the extra slots.
    pub(crate) fn file_ceiling(&self, host: &str) -> usize {
        (1 + self.ceiling_of(host)).min(self.ceiling.max(1))
    }

    /// Where a file from `host` starts its connection count: where the last one settled.
    pub(crate) fn start(&self, host: &str) -> usize {
        self.learnt(host).settled.unwrap_or(1).min(self.file_ceiling(host))
    }

    /// A file from `host` settled at `count` connections.
    pub(crate) fn settle(&self, host: &str, count: usize) {
        self.learn().entry(host.to_owned()).or_default().settled = Some(count);
    }

    /// `host` refused one connection of those open: its ceiling is what it took without
    /// that one, for the rest of the run (the caller still holds the refused one's slot).
    pub(crate) fn lower(&self, host: &str) {
        let open = self.lock().get(host).copied().unwrap_or(0);
        let mut learnt = self.learn();
        let entry = learnt.entry(host.to_owned()).or_default();
        let lowered = open.saturating_sub(1).min(entry.ceiling.unwrap_or(self.ceiling));
        entry.ceiling = Some(lowered);
        entry.settled = entry.settled.map(|s| s.min(lowered + 1));
    }

    fn ceiling_of(&self, host: &str) -> usize {
        self.learnt(host).ceiling.unwrap_or(self.ceiling)
    }

    fn learnt(&self, host: &str) -> Learnt {
        self.learn().get(host).copied().unwrap_or_default()
    }

    fn learn(&self) -> MutexGuard<'_, HashMap<String, Learnt>> {
        // Each update is one field written whole: a poisoned lock's map is still right.
        self.learnt.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot at `host`, when it has room under the ceiling.
    pub(crate) fn take(&self, host: &str) -> Option<Slot<'_>> {
        let ceiling = self.ceiling_of(host);
        let mut open = self.lock();
        let count = open.entry(host.to_owned()).or_default();
        if *count >= ceiling {
            return None;
        }
        *count += 1;
        Some(Slot { slots: self, host: host.to_owned() })
    }

    /// Extra connections open to `host` now.
    #[cfg(test)]
    pub(crate) fn open(&self, host: &str) -> usize {
        self.lock().get(host).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        // Each update is one increment or decrement: a panic elsewhere cannot leave a
        // count half-written, so a poisoned lock's map is still right.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(count) = self.slots.lock().get_mut(&self.host) {
            *count = count.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_given_back_when_dropped_and_the_ceiling_holds() {
        let slots = HostSlots::new(2);
        let a = slots.take("h").unwrap();
        let b = slots.take("h").unwrap();
        assert!(slots.take("h").is_none(), "the ceiling");
        assert!(slots.take("other").is_some(), "per host");
        drop(a);
        assert_eq!(slots.open("h"), 1);
        let c = slots.take("h");
        assert!(c.is_some());
        drop((b, c));
        assert_eq!(slots.open("h"), 0);
    }

    #[test]
    fn a_refusal_lowers_the_hosts_ceiling_and_a_settled_count_is_where_the_next_file_starts() {
        let slots = HostSlots::new(16);
        assert_eq!((slots.start("h"), slots.file_ceiling("h")), (1, 16));
        slots.settle("h", 8);
        assert_eq!(slots.start("h"), 8);
        let held: Vec<_> = (0..5).map(|_| slots.take("h").unwrap()).collect();
        slots.lower("h");
        drop(held);
        assert_eq!(slots.file_ceiling("h"), 5, "the first plus the four extra it took");
        assert_eq!(slots.start("h"), 5, "never past the lowered ceiling");
        let taken: Vec<_> = (0..6).filter_map(|_| slots.take("h")).collect();
        assert_eq!(taken.len(), 4);
        assert_eq!(slots.file_ceiling("other"), 16, "per host");
    }
}
