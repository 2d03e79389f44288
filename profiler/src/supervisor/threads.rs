//! Per-thread state in a bounded table: memory is bounded whatever the container does.
//!
//! Open addressing with linear probing over a slot array that starts small and doubles while
//! the threads it tracks fill three quarters of it, up to the slots `max_threads` needs: a
//! container of a few threads keeps a few kilobytes, not the whole bound (a growth is the only
//! allocation, seven at most with the default bound, never one per event). A thread's entry goes
//! away when it calls `exit`/`exit_group` (the supervisor removes it), when a sweep finds its tid
//! gone (sweeps run when the table fills, at most once per `capacity / 4` insertions, and the
//! supervisor's at the first event a second or more after its last), or, when every tracked thread is alive,
//! by evicting the least recently active one.

/// Marks an empty slot (no tid reaches it: `pid_max` is at most 2^22).
const EMPTY: u32 = u32::MAX;
/// Slots a table starts with (fewer when its bound needs fewer).
const INITIAL_SLOTS: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Slot<S> {
    tid: u32,
    last: u64,
    state: S,
}

/// What an insertion had to do to make room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Made {
    /// A new entry was created.
    pub inserted: bool,
    /// Entries of dead threads freed by a sweep.
    pub reclaimed: u32,
    /// Entries of live threads evicted (least recently active first).
    pub evicted: u32,
}

/// A bounded map from thread id to per-thread state `S`.
#[derive(Debug, Clone)]
pub struct ThreadTable<S> {
    slots: Vec<Slot<S>>,
    mask: usize,
    len: usize,
    /// Most entries kept (at most 3/4 of `max_slots`, so probe chains stay short).
    limit: usize,
    /// The slots the table grows to at most.
    max_slots: usize,
    /// The state of an empty slot.
    filler: S,
    /// Insertions since the last sweep; a sweep of a full table needs `sweep_every`.
    since_sweep: usize,
    /// `limit / 4`, doubled (up to 16 × `limit`) after each sweep that frees nothing: with more
    /// live threads than the table holds, every insertion evicts, and a sweep finding all of
    /// them alive cost about four `kill(2)` calls per insertion (measured 2026-12-07).
    sweep_every: usize,
}

impl<S: Copy> ThreadTable<S> {
    /// A table holding at most `max_threads` entries (at least 4), built with `filler` as the
    /// state stored in empty slots.
    pub fn new(max_threads: usize, filler: S) -> Self {
        let max_threads = max_threads.max(4);
        let max_slots = (max_threads * 4 / 3 + 1).next_power_of_two();
        let slots = INITIAL_SLOTS.min(max_slots);
        Self {
            slots: Self::empty_slots(slots, filler),
            mask: slots - 1,
            len: 0,
            limit: max_threads,
            max_slots,
            filler,
            since_sweep: usize::MAX / 2,
            sweep_every: max_threads / 4,
        }
    }

    fn empty_slots(n: usize, filler: S) -> Vec<Slot<S>> {
        vec![
            Slot {
                tid: EMPTY,
                last: 0,
                state: filler,
            };
            n
        ]
    }

    /// The slots allocated now (they grow with the threads tracked, up to the bound's).
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Doubles the slot array and re-inserts every entry.
    fn grow(&mut self) {
        let n = self.slots.len() * 2;
        let old = std::mem::replace(&mut self.slots, Self::empty_slots(n, self.filler));
        self.mask = n - 1;
        for slot in old.into_iter().filter(|s| s.tid != EMPTY) {
            let mut i = self.home(slot.tid);
            while self.slots[i].tid != EMPTY {
                i = (i + 1) & self.mask;
            }
            self.slots[i] = slot;
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no thread is tracked.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most entries ever held.
    pub fn limit(&self) -> usize {
        self.limit
    }

    #[inline]
    fn home(&self, tid: u32) -> usize {
        // Fibonacci hashing: sequential tids spread over the table.
        let h = u64::from(tid).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // The shift leaves 32 bits, which fit usize on every supported target.
        (h >> 32) as usize & self.mask
    }

    #[inline]
    fn find(&self, tid: u32) -> Result<usize, usize> {
        let mut i = self.home(tid);
        loop {
            let t = self.slots[i].tid;
            if t == tid {
                return Ok(i);
            }
            if t == EMPTY {
                return Err(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The states of every tracked thread, in no particular order.
    pub fn states(&self) -> impl Iterator<Item = &S> + '_ {
        self.slots
            .iter()
            .filter(|s| s.tid != EMPTY)
            .map(|s| &s.state)
    }

    /// The state of `tid`, if tracked.
    pub fn get(&self, tid: u32) -> Option<&S> {
        self.find(tid).ok().map(|i| &self.slots[i].state)
    }

    /// The state of `tid` to change, if tracked.
    pub fn get_mut(&mut self, tid: u32) -> Option<&mut S> {
        self.find(tid).ok().map(|i| &mut self.slots[i].state)
    }

    /// The state of `tid`, created with `init` if it is not tracked. `now` orders activity for
    /// eviction; `alive` tells a sweep whether a tid still exists.
    #[inline]
    pub fn entry(
        &mut self,
        tid: u32,
        now: u64,
        alive: impl FnMut(u32) -> bool,
        init: impl FnOnce() -> S,
    ) -> (&mut S, Made) {
        let mut made = Made::default();
        let at = match self.find(tid) {
            Ok(i) => i,
            Err(mut i) => {
                if self.len >= self.limit {
                    (made.reclaimed, made.evicted) = self.make_room(alive, |_, _, _| {});
                    i = match self.find(tid) {
                        Ok(i) | Err(i) => i,
                    };
                } else if (self.len + 1) * 4 > self.slots.len() * 3
                    && self.slots.len() < self.max_slots
                {
                    self.grow();
                    i = match self.find(tid) {
                        Ok(i) | Err(i) => i,
                    };
                }
                self.slots[i] = Slot {
                    tid,
                    last: now,
                    state: init(),
                };
                self.len += 1;
                self.since_sweep = self.since_sweep.saturating_add(1);
                made.inserted = true;
                i
            }
        };
        let slot = &mut self.slots[at];
        slot.last = now;
        (&mut slot.state, made)
    }

    /// Whether `tid` is not tracked and the table is full: its insertion would make room first,
    /// which a caller that must see what goes does itself ([`ThreadTable::make_room`]).
    pub fn full_for(&self, tid: u32) -> bool {
        self.len >= self.limit && self.find(tid).is_err()
    }

    /// Makes room for one more entry in a full table: a sweep of dead threads when one is due,
    /// then, if it freed nothing, the least recently active entry evicted. `ended` gets each
    /// removed entry, and whether its thread is dead (swept) rather than evicted alive.
    /// Returns how many were reclaimed and evicted.
    pub fn make_room(
        &mut self,
        alive: impl FnMut(u32) -> bool,
        mut ended: impl FnMut(u32, &S, bool),
    ) -> (u32, u32) {
        let mut reclaimed = 0;
        if self.since_sweep >= self.sweep_every {
            reclaimed = self.sweep(alive, |tid, state| ended(tid, state, true));
            self.sweep_every = if reclaimed == 0 {
                (self.sweep_every * 2).min(self.limit * 16)
            } else {
                self.limit / 4
            };
        }
        if self.len < self.limit {
            return (reclaimed, 0);
        }
        let oldest = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.tid != EMPTY)
            .min_by_key(|(_, s)| s.last)
            .map(|(i, _)| i);
        let Some(i) = oldest else {
            return (reclaimed, 0);
        };
        ended(self.slots[i].tid, &self.slots[i].state, false);
        self.remove_at(i);
        (reclaimed, 1)
    }

    /// Forgets `tid`; returns whether it was tracked.
    pub fn remove(&mut self, tid: u32) -> bool {
        match self.find(tid) {
            Ok(i) => {
                self.remove_at(i);
                true
            }
            Err(_) => false,
        }
    }

    /// Frees the entries of threads `alive` says are gone, passing each one's state to `ended`
    /// first; returns how many.
    pub fn sweep(
        &mut self,
        mut alive: impl FnMut(u32) -> bool,
        mut ended: impl FnMut(u32, &S),
    ) -> u32 {
        self.since_sweep = 0;
        let mut freed = 0;
        let mut i = 0;
        while i < self.slots.len() {
            let tid = self.slots[i].tid;
            if tid != EMPTY && !alive(tid) {
                ended(tid, &self.slots[i].state);
                self.remove_at(i);
                freed += 1;
                // Backward shifting may have moved an unvisited entry into slot i.
                continue;
            }
            i += 1;
        }
        freed
    }

    /// Backward-shift deletion: keeps every probe chain unbroken without tombstones.
    fn remove_at(&mut self, mut hole: usize) {
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let tid = self.slots[j].tid;
            if tid == EMPTY {
                break;
            }
            let home = self.home(tid);
            // The entry at j may move to the hole unless its home lies cyclically in (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.slots[hole] = self.slots[j];
                hole = j;
            }
        }
        self.slots[hole].tid = EMPTY;
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_remove() {
        let mut t = ThreadTable::new(16, 0u32);
        for tid in 1..=10 {
            let (s, made) = t.entry(tid, 0, |_| true, || tid * 10);
            assert!(made.inserted);
            assert_eq!(*s, tid * 10);
        }
        assert_eq!(t.len(), 10);
        let (s, made) = t.entry(3, 1, |_| true, || 0);
        assert!(!made.inserted);
        *s += 1;
        assert_eq!(t.get(3), Some(&31));
        assert!(t.remove(3));
        assert!(!t.remove(3));
        for tid in (1..=10).filter(|&t| t != 3) {
            assert_eq!(t.get(tid), Some(&(tid * 10)), "{tid} survives removals");
        }
    }

    #[test]
    fn stays_bounded_by_sweeping_dead_threads() {
        let mut t = ThreadTable::new(8, ());
        let mut reclaimed = 0;
        for tid in 0..10_000u32 {
            // Only the current tid is alive: everything older is reclaimable.
            let (_, made) = t.entry(tid, u64::from(tid), |x| x == tid, || ());
            reclaimed += made.reclaimed;
            assert!(t.len() <= 8);
        }
        assert!(reclaimed > 9_000, "{reclaimed}");
    }

    /// More live threads than the table holds: sweeps that find every thread alive come less
    /// and less often, so the liveness checks per insertion fall off.
    #[test]
    fn sweeps_back_off_while_every_thread_is_alive() {
        let mut t = ThreadTable::new(64, ());
        let mut checks = 0u64;
        let inserts = 100_000u32;
        for i in 0..inserts {
            // 65 threads in turn: each lookup misses.
            let tid = i % 65;
            t.entry(
                tid,
                u64::from(i),
                |_| {
                    checks += 1;
                    true
                },
                || (),
            );
        }
        // Without the back-off: a sweep of 64 every 16 insertions, 4 checks per insertion.
        assert!(checks < u64::from(inserts) / 10, "{checks} liveness checks");
        assert_eq!(t.sweep_every, 64 * 16, "backed off to its bound");
    }

    #[test]
    fn evicts_least_recent_when_all_alive() {
        let mut t = ThreadTable::new(4, 0u64);
        for tid in 0..4u32 {
            t.entry(tid, u64::from(tid), |_| true, || 0);
        }
        t.entry(0, 10, |_| true, || 0);
        let (_, made) = t.entry(99, 11, |_| true, || 0);
        assert_eq!(made.evicted, 1);
        assert!(t.get(1).is_none(), "tid 1 was the least recently active");
        assert!(t.get(0).is_some() && t.get(99).is_some());
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn grows_with_the_threads_it_tracks_up_to_its_bound() {
        let mut t = ThreadTable::new(1024, 0u32);
        assert_eq!(t.slots(), INITIAL_SLOTS, "a new table is small");
        for tid in 0..12u32 {
            t.entry(tid, 0, |_| true, || tid);
        }
        assert_eq!(t.slots(), INITIAL_SLOTS, "12 threads fit 3/4 of 16 slots");
        t.entry(12, 0, |_| true, || 12);
        assert_eq!(t.slots(), 2 * INITIAL_SLOTS, "the 13th doubles it");
        for tid in 13..5_000u32 {
            t.entry(tid, u64::from(tid), |_| true, || tid);
            assert!(t.len() * 4 <= t.slots() * 3, "load stays at most 3/4");
        }
        assert_eq!(t.slots(), 2048, "never beyond what the bound needs");
        assert_eq!(t.len(), 1024, "the bound holds");
        // Every entry kept survived the re-insertions of each growth with its state.
        let kept: Vec<u32> = t.states().copied().collect();
        assert_eq!(kept.len(), 1024);
        for tid in kept {
            assert_eq!(t.get(tid), Some(&tid));
        }
    }

    #[test]
    fn survives_collisions_and_wraparound() {
        let mut t = ThreadTable::new(48, 0u32);
        let mut model = std::collections::HashMap::new();
        let mut x = 12345u32;
        for step in 0..20_000u32 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let tid = (x >> 8) % 97;
            if x.is_multiple_of(3) {
                assert_eq!(t.remove(tid), model.remove(&tid).is_some());
            } else {
                let (s, _) = t.entry(tid, u64::from(step), |_| true, || 0);
                *s += 1;
                let m = model.entry(tid).or_insert(0);
                *m += 1;
                if t.len() < model.len() {
                    // An eviction happened: resynchronise the reference.
                    model.retain(|k, _| t.get(*k).is_some());
                }
            }
            for (k, v) in &model {
                assert_eq!(t.get(*k), Some(v), "step {step} tid {k}");
            }
            assert_eq!(t.len(), model.len());
        }
    }
}
