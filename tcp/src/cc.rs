//! Congestion control behind one small trait: NewReno (RFC 5681, RFC 6582) and
//! CUBIC (RFC 9438).
//!
//! A controller owns only the congestion window (`cwnd`) and the slow-start
//! threshold (`ssthresh`). Loss *detection* and the fast-recovery state machine
//! (the recovery point, partial ACKs, retransmission, `pipe`) stay in the
//! connection; it reports events here and reads back [`CongestionControl::cwnd`].
//!
//! **Units.** Every window is in bytes; `SMSS` is the sender MSS in bytes. CUBIC's
//! formulas are written in segments and seconds in RFC 9438; here they are scaled
//! to bytes and microseconds and evaluated in integer arithmetic (no floating
//! point, no heap), with an integer cube root for `K`.
//!
//! **Sans-I/O.** Time is the caller's [`Instant`]; nothing here reads a clock.
//!
//! **What the connection must do.**
//! - Call [`CongestionControl::on_ack`] for every ACK that acknowledges new data
//!   outside fast recovery, with the number of newly acknowledged bytes (RFC 3465
//!   byte counting), the flight size *before* the ACK, and an RTT sample if one was
//!   taken. Both controllers treat a sender using less than half its window as
//!   application-limited and do not grow `cwnd` then (RFC 7661 §4.3's concern).
//! - On entering fast recovery call [`CongestionControl::on_congestion_event`]
//!   once; `cwnd` is then already `ssthresh`. The RFC 5681 §3.2 step 3/4 inflation
//!   (`+3*SMSS`, then `+SMSS` per further duplicate ACK) is *not* applied here: a
//!   connection that wants it adds it to [`CongestionControl::cwnd`] itself while in
//!   recovery (or uses RFC 6675 `pipe` instead, which needs no inflation).
//! - When the recovery point is cumulatively acknowledged call
//!   [`CongestionControl::on_recovery_exit`] and drop its own inflation.

use core::fmt;
use core::time::Duration;

use crate::time::Instant;

/// What the connection tells its congestion controller. All byte counts are in bytes.
pub trait CongestionControl: fmt::Debug {
    /// Congestion window in bytes.
    fn cwnd(&self) -> usize;

    /// Slow-start threshold in bytes (`usize::MAX` until the first congestion event).
    fn ssthresh(&self) -> usize;

    /// New data acknowledged (cumulatively or, during SACK recovery, newly SACKed —
    /// caller decides) outside recovery: `bytes_acked`, the flight size before the
    /// ACK (`in_flight`), an RTT sample if this ACK produced one, and `now`.
    fn on_ack(&mut self, now: Instant, bytes_acked: usize, in_flight: usize, rtt: Option<Duration>);

    /// Loss detected by duplicate ACKs / SACK (entering fast recovery):
    /// RFC 5681 §3.2 step 2 / RFC 6675 §5 / RFC 9438 §4.6.
    fn on_congestion_event(&mut self, now: Instant, in_flight: usize);

    /// Recovery ended (the recovery point was cumulatively acknowledged):
    /// RFC 6582 §3.2 step 3 / RFC 9438.
    fn on_recovery_exit(&mut self, now: Instant);

    /// Retransmission timeout: RFC 5681 §3.1 eq. (4), and a loss window of 1 SMSS.
    fn on_rto(&mut self, now: Instant, in_flight: usize);

    /// The connection was idle longer than an RTO: RFC 5681 §4.1 restart window.
    fn on_idle_restart(&mut self, _now: Instant) {}

    /// Sender MSS changed / was learned.
    fn set_mss(&mut self, mss: usize);
}

/// Which congestion controller a connection runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// RFC 5681 with RFC 6582 recovery.
    NewReno,
    /// RFC 9438 CUBIC, the default.
    #[default]
    Cubic,
}

/// RFC 6928 §2 initial window: `min(10*MSS, max(2*MSS, 14600))` bytes.
pub fn initial_window(mss: usize) -> usize {
    let mss = mss.max(1);
    (10 * mss).min((2 * mss).max(14_600))
}

/// A controller of either kind, without boxing.
#[derive(Debug, Clone)]
pub enum AnyCc {
    NewReno(NewReno),
    Cubic(Cubic),
}

/// A fresh controller of kind `alg` for a sender MSS of `mss` bytes.
pub fn new(alg: Algorithm, mss: usize) -> AnyCc {
    match alg {
        Algorithm::NewReno => AnyCc::NewReno(NewReno::new(mss)),
        Algorithm::Cubic => AnyCc::Cubic(Cubic::new(mss)),
    }
}

/// Static dispatch: the connection asks for `cwnd` before every segment and
/// reports every ACK, and a `&dyn` call could not be inlined.
macro_rules! dispatch {
    ($self:ident, $c:ident => $e:expr) => {
        match $self {
            AnyCc::NewReno($c) => $e,
            AnyCc::Cubic($c) => $e,
        }
    };
}

impl CongestionControl for AnyCc {
    #[inline]
    fn cwnd(&self) -> usize {
        dispatch!(self, c => c.cwnd())
    }
    #[inline]
    fn ssthresh(&self) -> usize {
        dispatch!(self, c => c.ssthresh())
    }
    #[inline]
    fn on_ack(
        &mut self,
        now: Instant,
        bytes_acked: usize,
        in_flight: usize,
        rtt: Option<Duration>,
    ) {
        dispatch!(self, c => c.on_ack(now, bytes_acked, in_flight, rtt))
    }
    fn on_congestion_event(&mut self, now: Instant, in_flight: usize) {
        dispatch!(self, c => c.on_congestion_event(now, in_flight))
    }
    fn on_recovery_exit(&mut self, now: Instant) {
        dispatch!(self, c => c.on_recovery_exit(now))
    }
    fn on_rto(&mut self, now: Instant, in_flight: usize) {
        dispatch!(self, c => c.on_rto(now, in_flight))
    }
    fn on_idle_restart(&mut self, now: Instant) {
        dispatch!(self, c => c.on_idle_restart(now))
    }
    fn set_mss(&mut self, mss: usize) {
        dispatch!(self, c => c.set_mss(mss))
    }
}

/// The window state both controllers share: RFC 5681 slow start, the loss window
/// and the restart window.
#[derive(Debug, Clone)]
struct Window {
    smss: usize,
    cwnd: usize,
    ssthresh: usize,
    /// Set by an RTO and cleared by the next new ACK: RFC 5681 §3.1 holds
    /// `ssthresh` constant when a retransmission made by the timer is lost again.
    backed_off: bool,
    /// No ACK, loss or timeout yet, so a newly learned MSS may resize the IW.
    pristine: bool,
}

impl Window {
    fn new(mss: usize) -> Window {
        let smss = mss.max(1);
        Window {
            smss,
            cwnd: initial_window(smss),
            // RFC 5681 §3.1: "arbitrarily high" initially.
            ssthresh: usize::MAX,
            backed_off: false,
            pristine: true,
        }
    }

    fn in_slow_start(&self) -> bool {
        self.cwnd < self.ssthresh
    }

    /// A sender that kept less than half of `cwnd` in flight was limited by the
    /// application, not the network, and has not validated a larger window.
    fn app_limited(&self, in_flight: usize) -> bool {
        in_flight.saturating_mul(2) < self.cwnd
    }

    /// RFC 5681 §3.1 slow start with byte counting (RFC 3465 §2.2), every
    /// acknowledged byte counted as Linux's `tcp_slow_start` does: a
    /// receiver that coalesces (GRO) acknowledges a 64 KB super-frame with
    /// one ACK, and the one-SMSS cap of eq. (2) would then grow cwnd by a
    /// fraction per round trip instead of doubling it. Bursts stay bounded:
    /// one ACK can at most double cwnd, and only by what left the network.
    fn slow_start(&mut self, bytes_acked: usize) {
        self.cwnd = self.cwnd.saturating_add(bytes_acked.min(self.cwnd));
    }

    /// RFC 5681 §3.1 eq. (4) with `ssthresh` computed by the caller; loss window 1 SMSS.
    fn rto(&mut self, new_ssthresh: usize) {
        if !self.backed_off {
            self.ssthresh = new_ssthresh.max(2 * self.smss);
        }
        self.cwnd = self.smss;
        self.backed_off = true;
        self.pristine = false;
    }

    /// RFC 5681 §4.1: cwnd = min(RW, cwnd) with RW = min(IW, cwnd).
    fn idle_restart(&mut self) {
        self.cwnd = self.cwnd.min(initial_window(self.smss));
    }

    fn set_mss(&mut self, mss: usize) {
        self.smss = mss.max(1);
        if self.pristine {
            self.cwnd = initial_window(self.smss);
        }
        self.cwnd = self.cwnd.max(self.smss);
        if self.ssthresh != usize::MAX {
            self.ssthresh = self.ssthresh.max(2 * self.smss);
        }
    }
}

/// NewReno window arithmetic: RFC 5681 slow start and congestion avoidance with
/// RFC 3465 byte counting, and the RFC 6582 `ssthresh`/`cwnd` settings. The
/// recovery state machine (recover point, partial ACKs) is the connection's.
#[derive(Debug, Clone)]
pub struct NewReno {
    w: Window,
    /// RFC 3465 §2.1: bytes acknowledged in congestion avoidance not yet turned
    /// into a window increase.
    bytes_acked: usize,
}

impl NewReno {
    pub fn new(mss: usize) -> NewReno {
        NewReno {
            w: Window::new(mss),
            bytes_acked: 0,
        }
    }
}

impl CongestionControl for NewReno {
    #[inline]
    fn cwnd(&self) -> usize {
        self.w.cwnd
    }

    #[inline]
    fn ssthresh(&self) -> usize {
        self.w.ssthresh
    }

    fn on_ack(
        &mut self,
        _now: Instant,
        bytes_acked: usize,
        in_flight: usize,
        _rtt: Option<Duration>,
    ) {
        if bytes_acked == 0 {
            return;
        }
        self.w.backed_off = false;
        self.w.pristine = false;
        if self.w.app_limited(in_flight) {
            return;
        }
        if self.w.in_slow_start() {
            self.w.slow_start(bytes_acked);
        } else {
            // RFC 3465 §2.1 / RFC 5681 §3.1: one SMSS per cwnd's worth of ACKed bytes.
            self.bytes_acked = self.bytes_acked.saturating_add(bytes_acked);
            if self.bytes_acked >= self.w.cwnd {
                self.bytes_acked -= self.w.cwnd;
                self.w.cwnd = self.w.cwnd.saturating_add(self.w.smss);
            }
        }
    }

    /// RFC 5681 §3.2 step 2 (eq. 4) and RFC 6582 §3.2 step 2: ssthresh =
    /// max(FlightSize/2, 2*SMSS) and cwnd = ssthresh, without the +3 SMSS inflation.
    fn on_congestion_event(&mut self, _now: Instant, in_flight: usize) {
        self.w.ssthresh = (in_flight / 2).max(2 * self.w.smss);
        self.w.cwnd = self.w.ssthresh;
        self.w.pristine = false;
        self.bytes_acked = 0;
    }

    /// RFC 6582 §3.2 step 3, the "full deflation" choice: cwnd = ssthresh. No
    /// inflation was applied here, so this only guarantees cwnd <= ssthresh (and
    /// keeps the loss window if an RTO struck during recovery).
    fn on_recovery_exit(&mut self, _now: Instant) {
        self.w.cwnd = self.w.cwnd.min(self.w.ssthresh);
        self.bytes_acked = 0;
    }

    fn on_rto(&mut self, _now: Instant, in_flight: usize) {
        self.w.rto(in_flight / 2);
        self.bytes_acked = 0;
    }

    fn on_idle_restart(&mut self, _now: Instant) {
        self.w.idle_restart();
    }

    fn set_mss(&mut self, mss: usize) {
        self.w.set_mss(mss);
    }
}

// RFC 9438 §5: C = 0.4 and beta_cubic = 0.7, kept as exact fractions.
const C_NUM: u128 = 2;
const C_DEN: u128 = 5;
const BETA_NUM: usize = 7;
const BETA_DEN: usize = 10;
/// §4.3: alpha_cubic = 3 * (1 - beta) / (1 + beta) = 9/17.
const ALPHA_NUM: u128 = 9;
const ALPHA_DEN: u128 = 17;
/// Fractional bits of the fixed-point `W_est`.
const EST_FRAC_BITS: u32 = 16;
/// One second cubed, in µs³: turns `C * t³` with `t` in µs into segments.
const MICROS3_PER_S3: u128 = 1_000_000_000_000_000_000;
/// Bound on `t - K` (about 28 hours) so that `C * SMSS * t³` stays within u128
/// for any 16-bit MSS; beyond it the window is capped anyway.
const MAX_DT_MICROS: u128 = 100_000_000_000;

/// CUBIC (RFC 9438) with RFC 5681 slow start (no HyStart).
#[derive(Debug, Clone)]
pub struct Cubic {
    w: Window,
    /// `W_max`, bytes: the window just before the last reduction (§4.6, §4.7).
    w_max: usize,
    /// `cwnd_prior`, bytes: cwnd when `ssthresh` was last set (§4.3 alpha switch).
    cwnd_prior: usize,
    /// Start of the current congestion-avoidance stage; `None` until its first ACK.
    epoch_start: Option<Instant>,
    /// `K` of §4.2 eq. (2), in microseconds.
    k_micros: u64,
    /// `W_est` of §4.3, bytes in fixed point with `EST_FRAC_BITS` fractional bits.
    w_est: u128,
    /// Concave/convex growth not yet applied, in bytes·cwnd (the remainder of
    /// `(target - cwnd) * bytes_acked / cwnd`).
    growth_acc: u128,
    /// The first congestion-avoidance stage after an RTO uses `K = 0` and
    /// `W_max = cwnd_epoch` (§4.8).
    after_rto: bool,
    /// The connection's smoothed RTT (RFC 6298), for the `t + RTT`
    /// look-ahead of §4.2.
    srtt: Option<Duration>,
}

impl Cubic {
    pub fn new(mss: usize) -> Cubic {
        Cubic {
            w: Window::new(mss),
            w_max: 0,
            cwnd_prior: 0,
            epoch_start: None,
            k_micros: 0,
            w_est: 0,
            growth_acc: 0,
            after_rto: false,
            srtt: None,
        }
    }

    /// `W_max` in bytes.
    #[cfg(test)]
    pub fn w_max(&self) -> usize {
        self.w_max
    }

    /// `K` of the current epoch (zero before the first congestion-avoidance ACK).
    #[cfg(test)]
    pub fn k(&self) -> Duration {
        Duration::from_micros(self.k_micros)
    }

    /// `W_est` in bytes.
    pub fn w_est(&self) -> usize {
        sat_usize(self.w_est >> EST_FRAC_BITS)
    }

    /// `W_cubic(t)` of §4.2 eq. (1) in bytes, with `t` in µs since the epoch:
    /// `W_max + C * (t - K)³`, where `C` is in segments per second³.
    fn w_cubic(&self, t_micros: u128) -> usize {
        let k = u128::from(self.k_micros);
        let smss = self.w.smss as u128;
        let cube = |d: u128| {
            let d = d.min(MAX_DT_MICROS);
            C_NUM.saturating_mul(smss).saturating_mul(d * d * d) / (C_DEN * MICROS3_PER_S3)
        };
        if t_micros >= k {
            sat_usize((self.w_max as u128).saturating_add(cube(t_micros - k)))
        } else {
            sat_usize((self.w_max as u128).saturating_sub(cube(k - t_micros)))
        }
    }

    /// §4.2: start a congestion-avoidance stage at `now` with `cwnd_epoch = cwnd`.
    fn start_epoch(&mut self, now: Instant) {
        let cwnd_epoch = self.w.cwnd;
        self.epoch_start = Some(now);
        if self.after_rto || cwnd_epoch >= self.w_max {
            // §4.8 after a timeout, and also when slow start has already carried
            // cwnd past W_max: the plateau is where we are now.
            self.w_max = cwnd_epoch;
            self.k_micros = 0;
        } else {
            // §4.2 eq. (2): K = cbrt((W_max - cwnd_epoch) / C), in segments and
            // seconds; scaled here to µs: cbrt(diff_bytes / SMSS / C * 10^18).
            let diff = (self.w_max - cwnd_epoch) as u128;
            let k3 = diff.saturating_mul(C_DEN * MICROS3_PER_S3) / (C_NUM * self.w.smss as u128);
            self.k_micros = icbrt(k3);
        }
        // §4.3: W_est starts at cwnd_epoch.
        self.w_est = (cwnd_epoch as u128) << EST_FRAC_BITS;
        self.growth_acc = 0;
        self.after_rto = false;
    }

    /// Out of line: its 128-bit arithmetic needs registers that every ACK
    /// would otherwise save and restore, app-limited or not.
    #[inline(never)]
    fn congestion_avoidance(&mut self, now: Instant, bytes_acked: usize) {
        if self.epoch_start.is_none() {
            self.start_epoch(now);
        }
        let epoch_start = self.epoch_start.unwrap_or(now);
        let cwnd = self.w.cwnd.max(1) as u128;
        let smss = self.w.smss as u128;

        // §4.3: W_est += alpha * segments_acked / cwnd (segments); alpha becomes 1
        // once W_est has reached cwnd_prior.
        let (a_num, a_den) = if self.w_est() >= self.cwnd_prior {
            (1, 1)
        } else {
            (ALPHA_NUM, ALPHA_DEN)
        };
        let est_inc = (a_num * smss)
            .saturating_mul(bytes_acked as u128)
            .saturating_mul(1 << EST_FRAC_BITS)
            / (a_den * cwnd);
        self.w_est = self.w_est.saturating_add(est_inc);

        let t = now.saturating_duration_since(epoch_start).as_micros();
        let w_est = self.w_est();
        if self.w_cubic(t) < w_est {
            // §4.3 Reno-friendly region: cwnd = W_est (never a decrease).
            self.w.cwnd = self.w.cwnd.max(w_est);
            self.growth_acc = 0;
            return;
        }

        // §4.4 concave / §4.5 convex regions: target = W_cubic(t + RTT) clamped to
        // [cwnd, 1.5 * cwnd]; cwnd grows by (target - cwnd) / cwnd per SMSS acked.
        let rtt = self.srtt.map_or(0, |d| d.as_micros());
        let cwnd_b = self.w.cwnd;
        let target = self
            .w_cubic(t.saturating_add(rtt))
            .clamp(cwnd_b, cwnd_b.saturating_add(cwnd_b / 2));
        self.growth_acc = self
            .growth_acc
            .saturating_add((target - cwnd_b) as u128 * bytes_acked as u128);
        let inc = self.growth_acc / cwnd;
        self.growth_acc -= inc * cwnd;
        self.w.cwnd = cwnd_b.saturating_add(sat_usize(inc));
    }

    /// §4.6 with §4.7 fast convergence: W_max, cwnd_prior and the new ssthresh.
    fn reduce(&mut self, in_flight: usize) -> usize {
        let cwnd = self.w.cwnd;
        self.w_max = if cwnd < self.w_max {
            // §4.7: released bandwidth for newer flows.
            cwnd.saturating_mul(BETA_DEN + BETA_NUM) / (2 * BETA_DEN)
        } else {
            cwnd
        };
        self.cwnd_prior = cwnd;
        self.epoch_start = None;
        self.growth_acc = 0;
        // §4.6: ssthresh = flight_size * beta_cubic (equal to cwnd * beta when
        // the sender is cwnd-limited).
        in_flight.saturating_mul(BETA_NUM) / BETA_DEN
    }
}

impl CongestionControl for Cubic {
    #[inline]
    fn cwnd(&self) -> usize {
        self.w.cwnd
    }

    #[inline]
    fn ssthresh(&self) -> usize {
        self.w.ssthresh
    }

    #[inline]
    fn on_ack(
        &mut self,
        now: Instant,
        bytes_acked: usize,
        in_flight: usize,
        rtt: Option<Duration>,
    ) {
        // The connection's SRTT (RFC 6298) is already smoothed: §4.2's
        // look-ahead takes it as it is.
        if rtt.is_some() {
            self.srtt = rtt;
        }
        if bytes_acked == 0 {
            return;
        }
        self.w.backed_off = false;
        self.w.pristine = false;
        if self.w.app_limited(in_flight) {
            return;
        }
        if self.w.in_slow_start() {
            // §4.10 / RFC 5681: slow start below ssthresh.
            self.w.slow_start(bytes_acked);
        } else {
            self.congestion_avoidance(now, bytes_acked);
        }
    }

    /// §4.6: ssthresh = max(flight_size * beta, 2 SMSS); cwnd = max(ssthresh, 2 SMSS).
    fn on_congestion_event(&mut self, _now: Instant, in_flight: usize) {
        let ssthresh = self.reduce(in_flight).max(2 * self.w.smss);
        self.w.ssthresh = ssthresh;
        self.w.cwnd = ssthresh;
        self.w.pristine = false;
    }

    /// cwnd was already set to ssthresh on entry (§4.6); the next ACK outside
    /// recovery starts a fresh congestion-avoidance epoch (§4.2).
    fn on_recovery_exit(&mut self, _now: Instant) {
        self.w.cwnd = self.w.cwnd.min(self.w.ssthresh);
        self.epoch_start = None;
        self.growth_acc = 0;
    }

    /// §4.8: Reno's loss window with ssthresh from beta_cubic; the next
    /// congestion-avoidance stage starts with K = 0.
    fn on_rto(&mut self, _now: Instant, in_flight: usize) {
        if self.w.backed_off {
            self.w.rto(0);
        } else {
            let ssthresh = self.reduce(in_flight);
            self.w.rto(ssthresh);
        }
        self.epoch_start = None;
        self.after_rto = true;
    }

    /// RFC 5681 §4.1; the idle time must not count as epoch time (RFC 9438 §5.8).
    fn on_idle_restart(&mut self, _now: Instant) {
        self.w.idle_restart();
        self.epoch_start = None;
    }

    fn set_mss(&mut self, mss: usize) {
        self.w.set_mss(mss);
    }
}

fn sat_usize(v: u128) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Floor of the cube root of `n`.
fn icbrt(n: u128) -> u64 {
    // The cube root of u128::MAX is below 2^43.
    let (mut lo, mut hi) = (0u128, 1u128 << 43);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if mid
            .checked_mul(mid)
            .and_then(|sq| sq.checked_mul(mid))
            .is_some_and(|c| c <= n)
        {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo as u64
}

#[cfg(test)]
mod tests;
