//! Placeholder until reassembly lands: every fragment is dropped and counted.
#![allow(missing_docs)]
use crate::{Instant, Ipv4Repr};
#[derive(Debug, Clone)]
pub struct FragConfig {
    pub budget: usize,
    pub timeout: core::time::Duration,
    pub max_fragments: usize,
}
impl Default for FragConfig {
    fn default() -> Self {
        FragConfig {
            budget: 4 << 20,
            timeout: core::time::Duration::from_secs(30),
            max_fragments: 128,
        }
    }
}
#[derive(Debug, Default, Clone)]
pub struct FragStats {
    pub fragments: u64,
}
pub struct Datagram<'a> {
    pub repr: Ipv4Repr,
    pub payload: &'a [u8],
}
#[derive(Debug)]
pub struct Reassembler {
    cfg: FragConfig,
    stats: FragStats,
}
#[derive(Debug)]
pub enum FragError {
    Mtu,
}
impl Reassembler {
    pub fn new(cfg: FragConfig) -> Reassembler {
        Reassembler {
            cfg,
            stats: FragStats::default(),
        }
    }
    pub fn push(&mut self, _now: Instant, _ip: &Ipv4Repr, _payload: &[u8]) -> Option<Datagram<'_>> {
        self.stats.fragments += 1;
        None
    }
    pub fn expire(&mut self, _now: Instant) -> usize {
        0
    }
    pub fn poll_at(&self) -> Option<Instant> {
        None
    }
    pub fn memory(&self) -> usize {
        0
    }
    pub fn pending(&self) -> usize {
        0
    }
    pub fn stats(&self) -> &FragStats {
        &self.stats
    }
    pub fn config(&self) -> &FragConfig {
        &self.cfg
    }
}
pub fn fragment(
    _repr: &Ipv4Repr,
    _payload: &[u8],
    _mtu: usize,
    _emit: impl FnMut(&[u8; 20], &[u8]),
) -> Result<usize, FragError> {
    Err(FragError::Mtu)
}
