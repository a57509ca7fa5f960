//! # ustack-http (being written)
