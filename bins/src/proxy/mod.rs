//! The pieces of tun-proxy: policy routing into its TUN device
//! ([`routing`]), the per-flow dial and relay ([`relay`]) and the SOCKS5
//! client ([`socks5`]). TCP flows only: UDP is not relayed.

pub mod relay;
pub mod routing;
pub mod socks5;
