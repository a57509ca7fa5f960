//! A TCP/IPv4 host for the engine tests: the real [`IpStack`] carrying the
//! real [`Tcp`], configured in one struct, with packets in and out as whole
//! byte vectors (the tests inspect, drop and replay them).
#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::ops::{Deref, DerefMut};

use ustack_ipv4::{DeviceCaps, IpConfig, IpStack, Ipv4Subnet, RxChecksum, RxInfo};
use ustack_tcp::{Instant, Rng, Tcp, TcpConfig, TcpLayerConfig};

/// Everything one test host is made of.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub addr: Ipv4Addr,
    pub mtu: usize,
    /// TCP segmentation offload of the host's device (0: none).
    pub tso_max: usize,
    pub max_connections: usize,
    pub max_time_wait: usize,
    /// Stack-wide budget for buffer storage.
    pub buffer_budget: usize,
    pub ephemeral_ports: (u16, u16),
    pub tcp: TcpConfig,
}

impl HostConfig {
    pub fn new(addr: Ipv4Addr, mtu: usize) -> HostConfig {
        let d = TcpLayerConfig::default();
        HostConfig {
            addr,
            mtu,
            tso_max: 0,
            max_connections: d.max_connections,
            max_time_wait: d.max_time_wait,
            buffer_budget: d.buffer_budget,
            ephemeral_ports: d.ephemeral_ports,
            tcp: d.tcp,
        }
    }
}

/// One host: IP layer and TCP.
pub struct Host {
    stack: IpStack<Tcp>,
}

impl Host {
    pub fn new(cfg: HostConfig, rng: Box<dyn Rng>) -> Host {
        let tcp = Tcp::new(
            TcpLayerConfig {
                max_connections: cfg.max_connections,
                max_time_wait: cfg.max_time_wait,
                buffer_budget: cfg.buffer_budget,
                ephemeral_ports: cfg.ephemeral_ports,
                tcp: cfg.tcp,
            },
            rng,
        );
        let subnet = Ipv4Subnet::new(cfg.addr, 24).expect("a /24");
        let caps = DeviceCaps {
            tso_max: cfg.tso_max,
            ..DeviceCaps::ip(cfg.mtu)
        };
        Host {
            stack: IpStack::new(IpConfig::new(subnet), caps, tcp),
        }
    }

    /// A packet whose checksum the device did not vouch for.
    pub fn handle_packet(&mut self, now: Instant, pkt: &[u8], tx: &mut impl FnMut(&[u8])) {
        self.input(now, pkt, RxInfo::default(), tx);
    }

    /// A packet whose transport checksum the device vouches for (a GRO
    /// super-frame of a local sender: left partial).
    pub fn handle_packet_trusted(&mut self, now: Instant, pkt: &[u8], tx: &mut impl FnMut(&[u8])) {
        let info = RxInfo {
            checksum: RxChecksum::Partial,
            gro_segment: None,
        };
        self.input(now, pkt, info, tx);
    }

    fn input(&mut self, now: Instant, pkt: &[u8], info: RxInfo, tx: &mut impl FnMut(&[u8])) {
        self.stack
            .handle_packet(now, pkt, info, &mut |p| tx(&p.parts.concat()));
    }

    /// Everything the host sends now, each packet whole; super-frames
    /// (only with `tso_max`) come with their segment size, others with 0.
    pub fn poll_segmented(&mut self, now: Instant, tx: &mut impl FnMut(&[u8], u16)) {
        self.stack.poll(now, &mut |p| {
            tx(&p.parts.concat(), p.segment.unwrap_or(0));
        });
    }

    /// [`Host::poll_segmented`] for a host without TSO.
    pub fn poll(&mut self, now: Instant, tx: &mut impl FnMut(&[u8])) {
        self.stack.poll(now, &mut |p| {
            assert!(p.segment.is_none(), "a super-frame from a host without TSO");
            tx(&p.parts.concat());
        });
    }

    pub fn poll_at(&self) -> Option<Instant> {
        self.stack.poll_at()
    }
}

impl Deref for Host {
    type Target = IpStack<Tcp>;
    fn deref(&self) -> &IpStack<Tcp> {
        &self.stack
    }
}

impl DerefMut for Host {
    fn deref_mut(&mut self) -> &mut IpStack<Tcp> {
        &mut self.stack
    }
}
