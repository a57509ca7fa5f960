//! An interface address with its prefix: which destinations are on-link.

use core::fmt;
use core::net::Ipv4Addr;

/// An address and the length of its network prefix, as `10.0.0.2/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Subnet {
    addr: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Subnet {
    /// `addr/prefix_len`; `None` when the prefix is longer than 32 bits.
    pub const fn new(addr: Ipv4Addr, prefix_len: u8) -> Option<Ipv4Subnet> {
        if prefix_len > 32 {
            return None;
        }
        Some(Ipv4Subnet { addr, prefix_len })
    }

    /// The address itself.
    pub const fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// Length of the network prefix in bits (0–32).
    pub const fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The netmask, e.g. 255.255.255.0 for /24.
    pub const fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(netmask_bits(self.prefix_len))
    }

    /// The network address (all host bits clear).
    pub const fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.addr.to_bits() & netmask_bits(self.prefix_len))
    }

    /// The directed broadcast address (all host bits set).
    pub const fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.addr.to_bits() | !netmask_bits(self.prefix_len))
    }

    /// True when `other` is inside this subnet (on-link).
    pub const fn contains(&self, other: Ipv4Addr) -> bool {
        let mask = netmask_bits(self.prefix_len);
        other.to_bits() & mask == self.addr.to_bits() & mask
    }

    /// True when the two subnets share any address.
    pub const fn overlaps(&self, other: &Ipv4Subnet) -> bool {
        let shorter = if self.prefix_len < other.prefix_len {
            self.prefix_len
        } else {
            other.prefix_len
        };
        let mask = netmask_bits(shorter);
        self.addr.to_bits() & mask == other.addr.to_bits() & mask
    }
}

impl fmt::Display for Ipv4Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

const fn netmask_bits(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        n if n >= 32 => u32::MAX,
        n => u32::MAX << (32 - n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(a: [u8; 4], p: u8) -> Ipv4Subnet {
        Ipv4Subnet::new(Ipv4Addr::from(a), p).expect("prefix <= 32")
    }

    #[test]
    fn masks_networks_and_broadcasts() {
        assert_eq!(net([10, 0, 0, 2], 0).netmask(), Ipv4Addr::new(0, 0, 0, 0));
        assert_eq!(
            net([10, 0, 0, 2], 24).netmask(),
            Ipv4Addr::new(255, 255, 255, 0)
        );
        assert_eq!(
            net([10, 0, 0, 2], 31).netmask(),
            Ipv4Addr::new(255, 255, 255, 254)
        );
        assert_eq!(net([10, 0, 0, 2], 32).netmask(), Ipv4Addr::BROADCAST);
        assert_eq!(net([10, 0, 0, 2], 24).network(), Ipv4Addr::new(10, 0, 0, 0));
        assert_eq!(
            net([10, 0, 0, 2], 24).broadcast(),
            Ipv4Addr::new(10, 0, 0, 255)
        );
        assert!(Ipv4Subnet::new(Ipv4Addr::LOCALHOST, 33).is_none());
        assert_eq!(net([10, 1, 2, 3], 16).to_string(), "10.1.2.3/16");
    }

    #[test]
    fn containment_and_overlap() {
        let a = net([10, 0, 0, 2], 24);
        assert!(a.contains(Ipv4Addr::new(10, 0, 0, 200)));
        assert!(!a.contains(Ipv4Addr::new(10, 0, 1, 1)));
        assert!(net([0, 0, 0, 0], 0).contains(Ipv4Addr::new(1, 2, 3, 4)));
        assert!(a.overlaps(&net([10, 0, 0, 0], 16)));
        assert!(net([10, 0, 0, 0], 16).overlaps(&a));
        assert!(!a.overlaps(&net([10, 0, 1, 0], 24)));
    }
}
