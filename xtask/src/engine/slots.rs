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
}

/// One extra connection to `host`, held until dropped.
#[derive(Debug)]
pub(crate) struct Slot<'s> {
    slots: &'s HostSlots,
    host: String,
}

impl HostSlots {
    pub(crate) fn new(ceiling: usize) -> HostSlots {
        HostSlots { open: Mutex::new(HashMap::new()), ceiling }
    }

    /// A slot at `host`, when it has room under the ceiling.
    pub(crate) fn take(&self, host: &str) -> Option<Slot<'_>> {
        let mut open = self.lock();
        let count = open.entry(host.to_owned()).or_default();
        if *count >= self.ceiling {
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
}
