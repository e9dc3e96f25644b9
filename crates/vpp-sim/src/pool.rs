//! VPP's `pool`: a vector of slots with a free list. Indexes are the ids VPP hands out, so
//! the simulator must allocate them exactly as `vppinfra/pool.h` does: a freed index goes on
//! a stack and the next allocation takes the most recently freed one; only when no index is
//! free does the pool grow by one.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

/// Beyond any index a test re-creates an object at (`insert_at` grows the pool to it).
const MAX_INDEX: u32 = 1 << 20;

#[derive(Debug, Clone)]
pub struct Pool<T> {
    slots: Vec<Option<T>>,
    /// Freed indexes; `get` pops from the end (LIFO), as `_pool_get` does.
    free: Vec<u32>,
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Pool {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Pool<T> {
    /// Stores `v` and returns its index.
    pub fn insert(&mut self, v: T) -> u32 {
        if let Some(i) = self.free.pop() {
            self.slots[i as usize] = Some(v);
            return i;
        }
        self.slots.push(Some(v));
        // Pools never get near u32::MAX entries in the simulator (the driver would need
        // billions of objects); saturate rather than wrap if it ever happens.
        u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
    }

    /// Stores `v` at index `i`, which must be free (tests re-create an object with the index
    /// it had); indexes skipped on the way become free. Returns `v` back when `i` is taken
    /// or beyond what a pool holds.
    pub fn insert_at(&mut self, i: u32, v: T) -> Result<(), T> {
        if self.contains(i) || i >= MAX_INDEX {
            return Err(v);
        }
        let at = i as usize;
        while self.slots.len() <= at {
            let free = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
            self.slots.push(None);
            if free != i {
                self.free.push(free);
            }
        }
        self.free.retain(|f| *f != i);
        self.slots[at] = Some(v);
        Ok(())
    }

    pub fn get(&self, i: u32) -> Option<&T> {
        self.slots.get(i as usize).and_then(Option::as_ref)
    }

    pub fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.slots.get_mut(i as usize).and_then(Option::as_mut)
    }

    pub fn contains(&self, i: u32) -> bool {
        self.get(i).is_some()
    }

    /// Frees index `i`, returning what it held (`None`, and no change, if it was free).
    pub fn remove(&mut self, i: u32) -> Option<T> {
        let v = self.slots.get_mut(i as usize)?.take()?;
        self.free.push(i);
        Some(v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((u32::try_from(i).ok()?, s.as_ref()?)))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut T)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| Some((u32::try_from(i).ok()?, s.as_mut()?)))
    }

    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Serialize> Serialize for Pool<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m: BTreeMap<u32, &T> = self.iter().collect();
        m.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_grow_from_zero() {
        let mut p = Pool::default();
        assert_eq!((p.insert('a'), p.insert('b'), p.insert('c')), (0, 1, 2));
    }

    #[test]
    fn most_recently_freed_index_is_reused_first() {
        let mut p = Pool::default();
        for c in "abcd".chars() {
            p.insert(c);
        }
        p.remove(1);
        p.remove(3);
        p.remove(0);
        assert_eq!(p.insert('x'), 0);
        assert_eq!(p.insert('y'), 3);
        assert_eq!(p.insert('z'), 1);
        assert_eq!(p.insert('w'), 4);
    }

    #[test]
    fn removing_a_free_index_changes_nothing() {
        let mut p = Pool::default();
        p.insert(1);
        assert_eq!(p.remove(0), Some(1));
        assert_eq!(p.remove(0), None);
        assert_eq!(p.remove(7), None);
        assert_eq!(p.insert(2), 0);
        assert_eq!(p.insert(3), 1);
    }
}
