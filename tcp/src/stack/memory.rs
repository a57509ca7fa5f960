//! The table's side of the buffer budget: the memory gauges in the stats,
//! and the applications that were refused memory, woken once it is no
//! longer short.

use super::{Owner, Tcp};

impl Tcp {
    /// Once memory is no longer short, applications refused it try again.
    #[inline]
    pub(super) fn wake_mem_waiters(&mut self) {
        if !self.mem_waiters.is_empty() && !self.pool.under_pressure() {
            self.wake_mem_waiters_now();
        }
    }

    fn wake_mem_waiters_now(&mut self) {
        let mut waiters = core::mem::take(&mut self.mem_waiters);
        for id in waiters.drain(..) {
            if let Some(e) = self.entry_by_id_mut(id) {
                if e.owner == Owner::User && !e.in_ready {
                    e.in_ready = true;
                    self.ready.push_back(id);
                }
            }
        }
        // Keep the (empty) allocation for next time.
        self.mem_waiters = waiters;
    }

    #[inline]
    pub(super) fn sync_mem_stats(&mut self) {
        if !self.pool.take_changed() {
            return;
        }
        let p = self.pool.stats();
        self.stats.tcp_mem_allocated = p.allocated as u64;
        self.stats.tcp_mem_pressure = u64::from(p.pressure);
        self.stats.tcp_mem_pressure_events = p.pressure_events;
        self.stats.tcp_mem_refused = p.refused;
    }
}
