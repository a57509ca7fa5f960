use super::filter::bpf;
use super::*;
use crate::ethernet::{EthernetRepr, ETHERTYPE_ARP, ETHERTYPE_IPV4};

const MAC: MacAddr = MacAddr([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
const ADDR: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);

/// A classic-BPF interpreter for the instructions `frame_filter` uses.
fn run(prog: &[libc::sock_filter], pkt: &[u8]) -> u32 {
    let (mut a, mut pc) = (0u32, 0usize);
    loop {
        let ins = prog[pc];
        pc += 1;
        match ins.code {
            bpf::RET_K => return ins.k,
            bpf::LD_W_ABS | bpf::LD_H_ABS => {
                let size = if ins.code == bpf::LD_W_ABS { 4 } else { 2 };
                let off = ins.k as usize;
                let Some(b) = pkt.get(off..off + size) else {
                    return 0;
                };
                a = b.iter().fold(0, |acc, x| acc << 8 | u32::from(*x));
            }
            bpf::JEQ_K => pc += usize::from(if a == ins.k { ins.jt } else { ins.jf }),
            c => panic!("unexpected opcode {c:#x}"),
        }
    }
}

fn frame(dst: MacAddr, src: MacAddr, ethertype: u16, ip_dst: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 28];
    EthernetRepr {
        destination: dst,
        source: src,
        ethertype,
    }
    .emit((&mut f[..14]).try_into().unwrap());
    f[14] = 0x45;
    f[30..34].copy_from_slice(&ip_dst.octets());
    f
}

#[test]
fn filter_admits_exactly_our_traffic() {
    let prog = frame_filter(MAC, ADDR);
    let peer = MacAddr([0x02, 1, 2, 3, 4, 5]);
    let ok = |f: &[u8]| run(&prog, f) != 0;
    assert!(ok(&frame(MAC, peer, ETHERTYPE_IPV4, ADDR)));
    assert!(ok(&frame(MAC, peer, ETHERTYPE_ARP, ADDR)));
    assert!(ok(&frame(
        MacAddr::BROADCAST,
        peer,
        ETHERTYPE_ARP,
        Ipv4Addr::UNSPECIFIED
    )));
    // Not to us, from us, other addresses and types.
    assert!(!ok(&frame(peer, peer, ETHERTYPE_IPV4, ADDR)));
    assert!(!ok(&frame(
        MacAddr([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xef]),
        peer,
        ETHERTYPE_IPV4,
        ADDR
    )));
    assert!(!ok(&frame(MacAddr::BROADCAST, MAC, ETHERTYPE_ARP, ADDR)));
    assert!(!ok(&frame(
        MAC,
        peer,
        ETHERTYPE_IPV4,
        Ipv4Addr::new(10, 1, 0, 1)
    )));
    assert!(!ok(&frame(MAC, peer, 0x86dd, ADDR)));
    assert!(!ok(&frame(
        MacAddr([0xff, 0xff, 0xff, 0xff, 0, 0]),
        peer,
        ETHERTYPE_ARP,
        ADDR
    )));
    assert!(!ok(&frame(MAC, peer, ETHERTYPE_IPV4, ADDR)[..20]));
}

#[test]
fn configs_are_validated() {
    let good = AfPacketConfig {
        iface: "veth0".into(),
        addr: ADDR,
        prefix_len: 24,
        gateway: Some(Ipv4Addr::new(10, 1, 0, 1)),
        mtu: None,
        rings: Some(RingConfig::default()),
    };
    assert!(validate(&good).is_ok());
    let bad = |c: AfPacketConfig| validate(&c).unwrap_err().to_string();
    assert!(bad(AfPacketConfig {
        iface: "x".repeat(16),
        ..good.clone()
    })
    .contains("interface name"));
    assert!(bad(AfPacketConfig {
        addr: Ipv4Addr::new(10, 1, 0, 255),
        ..good.clone()
    })
    .contains("broadcast"));
    assert!(bad(AfPacketConfig {
        gateway: Some(Ipv4Addr::new(10, 2, 0, 1)),
        ..good.clone()
    })
    .contains("gateway"));
    assert!(bad(AfPacketConfig {
        prefix_len: 31,
        ..good.clone()
    })
    .contains("prefix"));
    assert!(bad(AfPacketConfig {
        mtu: Some(40),
        ..good.clone()
    })
    .contains("MTU"));
    let rings = |r: RingConfig| AfPacketConfig {
        rings: Some(r),
        ..good.clone()
    };
    assert!(bad(rings(RingConfig {
        rx_bytes: RingConfig::MAX_BYTES + 1,
        ..RingConfig::default()
    }))
    .contains("receive ring"));
    assert!(bad(rings(RingConfig {
        tx_bytes: RingConfig::MAX_BYTES + 1,
        ..RingConfig::default()
    }))
    .contains("transmit ring"));
    assert!(bad(rings(RingConfig {
        block_timeout: std::time::Duration::ZERO,
        ..RingConfig::default()
    }))
    .contains("block timeout"));
    // No rings at all is a configuration, not a mistake.
    assert!(validate(&AfPacketConfig {
        rings: None,
        ..good
    })
    .is_ok());
}

#[test]
fn unknown_interface_is_named_in_the_error() {
    let cfg = AfPacketConfig {
        iface: "does-not-exist".into(),
        addr: ADDR,
        prefix_len: 24,
        gateway: None,
        mtu: None,
        rings: Some(RingConfig::default()),
    };
    match AfPacketLink::open(&cfg) {
        Err(e) => {
            let msg = e.to_string();
            // Unprivileged runs fail earlier, at socket creation.
            assert!(msg.contains("does-not-exist"), "{msg}");
        }
        Ok(_) => panic!("opened a nonexistent interface"),
    }
}
