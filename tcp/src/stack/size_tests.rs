//! The per-connection cost of the table.

use super::*;

/// What an idle connection costs the table: its slot (TCB and entry),
/// its lookup entry and its timer entry. Buffers: none while idle.
#[test]
fn per_connection_state_stays_small() {
    let slot = core::mem::size_of::<Slot>();
    let key = core::mem::size_of::<(Tuple, u32)>();
    let timer = core::mem::size_of::<Reverse<(Instant, u32, u32)>>();
    let span = core::mem::size_of::<tracing::Span>();
    println!("slot {slot} (Tcb {}, span {span}), table entry {key} + 1 control byte, timer entry {timer}", core::mem::size_of::<Tcb>());
    assert!(
        slot + key + timer <= 2048,
        "{slot} + {key} + {timer} bytes per connection"
    );
}
