//! # ustack-ipv4 (being written)
