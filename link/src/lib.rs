//! # ustack-link (being written)
