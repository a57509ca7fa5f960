//! A deterministic network simulator for two ustack hosts: impaired links
//! ([`link::SimLink`]), a driver that runs both applications and stacks on one
//! virtual clock ([`driver::run`]), and the seeded randomness both share.
//!
//! Everything is a pure function of a seed: a failing case is replayed exactly
//! by running it again with the same seed.
#![allow(dead_code)]

pub mod driver;
pub mod link;
pub mod rng;

#[path = "../support/host.rs"]
pub mod host;
