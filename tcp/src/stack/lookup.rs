//! The connection table's index: 4-tuple to slot, with the connection that
//! last received a segment remembered in front of the hash map.
//!
//! Segments come in runs per connection (a bulk transfer, a batch of frames
//! from one read of the device), so the slot that took the last segment is
//! the likeliest one for the next: BSD's one-entry PCB cache (`tcp_last_inpcb`
//! in 4.4BSD) and the first half of Van Jacobson's header prediction. A hit
//! costs two comparisons instead of a SipHash over the tuple; a miss costs
//! those two comparisons more than before.
//!
//! The map keeps std's randomly keyed SipHash: the tuples come from the
//! network, and a hash an attacker can predict turns the table into a list
//! (HashDoS). What it hashes is the tuple packed into one 128-bit word, one
//! call into the hasher where `SocketAddrV4`'s own `Hash` makes six.

use core::hash::{Hash, Hasher};
use core::net::SocketAddrV4;
use std::collections::HashMap;

use super::Tuple;

/// A 4-tuple packed for hashing: both addresses and both ports in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key(u128);

impl Key {
    #[inline]
    fn new(&(local, remote): &Tuple) -> Key {
        let ips = u64::from(local.ip().to_bits()) << 32 | u64::from(remote.ip().to_bits());
        let ports = u32::from(local.port()) << 16 | u32::from(remote.port());
        Key(u128::from(ips) << 32 | u128::from(ports))
    }
}

impl Hash for Key {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(self.0);
    }
}

/// 4-tuple to slot index, with a one-entry cache of the last hit.
#[derive(Debug, Default)]
pub(super) struct ConnTable {
    map: HashMap<Key, u32>,
    /// The tuple and slot of the last successful [`ConnTable::lookup`];
    /// forgotten when that tuple is removed.
    last: Option<(SocketAddrV4, SocketAddrV4, u32)>,
}

impl ConnTable {
    /// The slot of `key`, trying the last hit first and remembering this one.
    /// The hit is in line at the caller; the map is not.
    #[inline(always)]
    pub(super) fn lookup(&mut self, key: &Tuple) -> Option<u32> {
        match self.last {
            Some((local, remote, idx)) if local == key.0 && remote == key.1 => Some(idx),
            _ => self.lookup_map(key),
        }
    }

    #[inline(never)]
    fn lookup_map(&mut self, key: &Tuple) -> Option<u32> {
        let idx = *self.map.get(&Key::new(key))?;
        self.last = Some((key.0, key.1, idx));
        Some(idx)
    }

    /// The slot of `key`, without touching the cache.
    pub(super) fn get(&self, key: &Tuple) -> Option<u32> {
        self.map.get(&Key::new(key)).copied()
    }

    pub(super) fn contains_key(&self, key: &Tuple) -> bool {
        self.map.contains_key(&Key::new(key))
    }

    pub(super) fn insert(&mut self, key: Tuple, idx: u32) {
        self.forget(&key);
        self.map.insert(Key::new(&key), idx);
    }

    pub(super) fn remove(&mut self, key: &Tuple) {
        self.forget(key);
        self.map.remove(&Key::new(key));
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    fn forget(&mut self, key: &Tuple) {
        if self
            .last
            .is_some_and(|(local, remote, _)| local == key.0 && remote == key.1)
        {
            self.last = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use core::net::Ipv4Addr;

    use super::*;

    fn tuple(last_octet: u8, port: u16) -> Tuple {
        (
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80),
            SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, last_octet), port),
        )
    }

    #[test]
    fn cached_slot_is_forgotten_with_its_tuple() {
        let mut t = ConnTable::default();
        let (a, b) = (tuple(2, 5000), tuple(2, 5001));
        t.insert(a, 7);
        t.insert(b, 8);
        assert_eq!(t.lookup(&a), Some(7));
        assert_eq!(t.lookup(&a), Some(7), "a hit on the cache");
        assert_eq!(
            t.lookup(&b),
            Some(8),
            "the cache does not answer for another tuple"
        );
        t.remove(&b);
        assert_eq!(
            t.lookup(&b),
            None,
            "a removed tuple is not served from the cache"
        );
        t.insert(b, 9);
        assert_eq!(t.lookup(&b), Some(9), "a reused tuple finds its new slot");
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn every_field_of_the_tuple_tells_connections_apart() {
        let base = tuple(2, 5000);
        let variants = [
            (SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), 80), base.1),
            (SocketAddrV4::new(*base.0.ip(), 81), base.1),
            (base.0, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), 5000)),
            (base.0, SocketAddrV4::new(*base.1.ip(), 5001)),
        ];
        let mut t = ConnTable::default();
        t.insert(base, 0);
        for v in variants {
            assert_eq!(t.lookup(&v), None, "{v:?}");
            assert!(!t.contains_key(&v));
        }
        assert_eq!(t.get(&base), Some(0));
    }
}
