//! # ustack runtime (being written)
