//! The connection table's invariants, checked by the fuzz targets and the
//! tests after every step.

use super::Tcp;

impl Tcp {
    /// Checks the table's invariants and every connection's
    /// (`Tcb::check_invariants`): the connection count within
    /// `max_connections` and equal to the slots in use and to the lookup
    /// table's size, every listener's pending count within twice its
    /// backlog (see `Listener::pending`).
    /// Returns what is broken. For the fuzz targets; not a stable API.
    #[doc(hidden)]
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.live > self.cfg.max_connections {
            return Err(format!(
                "{} connections, at most {} allowed",
                self.live, self.cfg.max_connections
            ));
        }
        let used = self.slots.iter().filter(|s| s.entry.is_some()).count();
        if used != self.live || self.table.len() != self.live {
            return Err(format!(
                "{} live connections, {used} slots in use, {} in the table",
                self.live,
                self.table.len()
            ));
        }
        for (port, l) in &self.listeners {
            if l.pending > 2 * l.backlog {
                return Err(format!(
                    "listener on {port}: {} pending, backlog {} (twice that allowed)",
                    l.pending, l.backlog
                ));
            }
        }
        self.check_capture()?;
        let mut held = self.pool.held_bytes();
        for e in self.slots.iter().filter_map(|s| s.entry.as_ref()) {
            e.tcb
                .check_invariants(&self.cfg.tcp)
                .map_err(|m| format!("{} -> {}: {m}", e.tcb.local(), e.tcb.remote()))?;
            held += e.tcb.buffer_bytes();
        }
        let allocated = self.pool.allocated();
        if held != allocated || allocated > self.pool.budget() {
            return Err(format!(
                "buffers: {held} bytes held, {allocated} accounted, budget {}",
                self.pool.budget()
            ));
        }
        Ok(())
    }
}
