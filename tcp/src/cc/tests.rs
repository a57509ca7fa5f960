use super::*;

const MSS: usize = 1460;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// ACK one full window, one SMSS per ACK spread over `rtt`, starting at `*now`.
fn ack_one_rtt(cc: &mut dyn CongestionControl, now: &mut Instant, rtt: Duration) {
    let cwnd = cc.cwnd();
    let segs = (cwnd / MSS).max(1);
    let step = rtt / segs as u32;
    for _ in 0..segs {
        *now += step;
        cc.on_ack(*now, MSS, cwnd, Some(rtt));
    }
}

#[test]
fn initial_window_rfc6928_2() {
    assert_eq!(initial_window(536), 5360, "10 * 536 < 14600");
    assert_eq!(initial_window(1460), 14600);
    assert_eq!(initial_window(9000), 18000, "2 * 9000 > 14600");
    assert_eq!(new(Algorithm::default(), 1460).cwnd(), 14600);
    assert_eq!(Algorithm::default(), Algorithm::Cubic);
}

#[test]
fn initial_ssthresh_is_arbitrarily_high_rfc5681_3_1() {
    assert_eq!(NewReno::new(MSS).ssthresh(), usize::MAX);
    assert_eq!(Cubic::new(MSS).ssthresh(), usize::MAX);
}

#[test]
fn slow_start_doubles_per_rtt_rfc5681_3_1_eq2() {
    let mut cc = NewReno::new(MSS);
    let mut now = Instant::ZERO;
    for expect_segs in [20, 40, 80] {
        ack_one_rtt(&mut cc, &mut now, ms(100));
        assert_eq!(cc.cwnd(), expect_segs * MSS);
    }
}

/// A stretch ACK (a GRO receiver's one ACK for a super-frame) counts every
/// byte it acknowledges (RFC 3465 §2.2, Linux `tcp_slow_start`), but one ACK
/// at most doubles cwnd.
#[test]
fn slow_start_counts_every_byte_a_stretch_ack_acknowledges() {
    let mut cc = NewReno::new(MSS);
    cc.on_ack(Instant::ZERO, 6 * MSS, 10 * MSS, None);
    assert_eq!(cc.cwnd(), 16 * MSS);
    cc.on_ack(Instant::ZERO, 100 * MSS, 16 * MSS, None);
    assert_eq!(cc.cwnd(), 32 * MSS);
}

#[test]
fn congestion_avoidance_one_smss_per_cwnd_acked_rfc3465_2_1() {
    let mut cc = NewReno::new(MSS);
    cc.on_congestion_event(Instant::ZERO, 40 * MSS);
    cc.on_recovery_exit(Instant::ZERO);
    assert_eq!(cc.cwnd(), 20 * MSS);
    let mut now = Instant::ZERO;
    ack_one_rtt(&mut cc, &mut now, ms(100));
    assert_eq!(cc.cwnd(), 21 * MSS);
    ack_one_rtt(&mut cc, &mut now, ms(100));
    assert_eq!(cc.cwnd(), 22 * MSS);
}

#[test]
fn congestion_event_halves_rfc5681_3_2_step2() {
    let mut cc = NewReno::new(MSS);
    cc.on_congestion_event(Instant::ZERO, 40 * MSS);
    assert_eq!(cc.ssthresh(), 20 * MSS);
    assert_eq!(cc.cwnd(), 20 * MSS, "no +3 SMSS inflation here");
    cc.on_congestion_event(Instant::ZERO, 3 * MSS);
    assert_eq!(cc.ssthresh(), 2 * MSS, "floor of 2 SMSS");
}

#[test]
fn rto_loss_window_and_ssthresh_rfc5681_3_1_eq4() {
    let mut cc = NewReno::new(MSS);
    cc.on_rto(Instant::ZERO, 40 * MSS);
    assert_eq!(cc.cwnd(), MSS);
    assert_eq!(cc.ssthresh(), 20 * MSS);
    let mut cc = NewReno::new(MSS);
    cc.on_rto(Instant::ZERO, MSS);
    assert_eq!((cc.cwnd(), cc.ssthresh()), (MSS, 2 * MSS));
}

#[test]
fn repeated_rto_holds_ssthresh_rfc5681_3_1() {
    for alg in [Algorithm::NewReno, Algorithm::Cubic] {
        let mut cc = new(alg, MSS);
        cc.on_rto(Instant::ZERO, 40 * MSS);
        let ssthresh = cc.ssthresh();
        cc.on_rto(Instant::from_millis(1000), MSS);
        assert_eq!(cc.ssthresh(), ssthresh, "{alg:?}");
        assert_eq!(cc.cwnd(), MSS);
    }
}

#[test]
fn idle_restart_window_rfc5681_4_1() {
    let mut cc = new(Algorithm::NewReno, MSS);
    let mut now = Instant::ZERO;
    ack_one_rtt(&mut cc, &mut now, ms(10));
    assert!(cc.cwnd() > initial_window(MSS));
    cc.on_idle_restart(now);
    assert_eq!(cc.cwnd(), initial_window(MSS));
    cc.on_rto(now, 2 * MSS);
    cc.on_idle_restart(now);
    assert_eq!(cc.cwnd(), MSS, "min(IW, cwnd)");
}

#[test]
fn app_limited_sender_does_not_grow_rfc7661() {
    let mut cc = NewReno::new(MSS);
    cc.on_ack(Instant::ZERO, MSS, 2 * MSS, None);
    assert_eq!(cc.cwnd(), initial_window(MSS));
}

#[test]
fn mss_learned_before_data_resizes_iw_rfc6928() {
    let mut cc = new(Algorithm::Cubic, 536);
    cc.set_mss(1460);
    assert_eq!(cc.cwnd(), 14600);
    cc.on_ack(Instant::ZERO, 1460, 14600, None);
    cc.set_mss(9000);
    assert_eq!(cc.cwnd(), 16060, "window kept in bytes once running");
}

/// Cubic right after recovering from a loss at cwnd = 100 segments.
fn cubic_after_loss_at_100(rtt: Duration) -> (Cubic, Instant) {
    let mut cc = Cubic::new(MSS);
    let now = Instant::from_millis(1000);
    cc.w.cwnd = 100 * MSS;
    cc.srtt = Some(rtt);
    cc.on_congestion_event(now, 100 * MSS);
    cc.on_recovery_exit(now);
    (cc, now)
}

#[test]
fn cubic_multiplicative_decrease_beta_0_7_rfc9438_4_6() {
    let (cc, _) = cubic_after_loss_at_100(ms(100));
    assert_eq!(cc.w_max(), 100 * MSS);
    assert_eq!(cc.cwnd(), 70 * MSS);
    assert_eq!(cc.ssthresh(), 70 * MSS);
}

#[test]
fn cubic_k_for_w_max_100_rfc9438_4_2_eq2() {
    let (mut cc, now) = cubic_after_loss_at_100(ms(100));
    cc.on_ack(now, MSS, 70 * MSS, None);
    // K = cbrt(100 * 0.3 / 0.4) = cbrt(75) = 4.2172 s
    let k = cc.k().as_secs_f64();
    assert!((k - 4.2172).abs() < 0.001, "K = {k}");
}

#[test]
fn cubic_concave_plateau_convex_rfc9438_4_4_4_5() {
    let rtt = ms(100);
    let (mut cc, mut now) = cubic_after_loss_at_100(rtt);
    let start = now;
    let mut samples = [0usize; 80]; // cwnd in bytes after each RTT
    for s in samples.iter_mut() {
        ack_one_rtt(&mut cc, &mut now, rtt);
        *s = cc.cwnd();
        // The Reno-friendly estimate must not be what drives growth here.
        assert!(cc.w_est() <= cc.cwnd());
    }
    let k_rtts = (cc.k().as_millis() / 100) as usize; // 42
    assert_eq!(k_rtts, 42);
    let growth = |i: usize| samples[i + 1] - samples[i];
    // Concave: fast growth early, slowing towards W_max.
    assert!(growth(1) > 3 * growth(k_rtts - 2), "{samples:?}");
    // Plateau: cwnd near W_max at t ~ K.
    let at_k = samples[k_rtts] as f64 / MSS as f64;
    assert!(
        (97.0..=103.0).contains(&at_k),
        "cwnd at K = {at_k} segments"
    );
    // Convex: growth accelerates again beyond W_max.
    assert!(growth(75) > 3 * growth(k_rtts), "{samples:?}");
    assert!(samples[79] > 110 * MSS);
    assert!(now.saturating_duration_since(start) >= ms(7_900));
}

#[test]
fn cubic_reno_friendly_region_at_small_rtt_rfc9438_4_3() {
    let rtt = ms(1);
    let mut cc = Cubic::new(MSS);
    cc.w.cwnd = 20 * MSS;
    cc.on_congestion_event(Instant::ZERO, 20 * MSS);
    cc.on_recovery_exit(Instant::ZERO);
    assert_eq!(cc.cwnd(), 14 * MSS);
    let mut now = Instant::ZERO;
    for _ in 0..100 {
        ack_one_rtt(&mut cc, &mut now, rtt);
    }
    // After 0.1 s W_cubic is still ~14.7 segments (K = cbrt(15) = 2.47 s) but
    // W_est has grown by >= alpha per RTT: cwnd follows W_est.
    let t = now.saturating_duration_since(Instant::ZERO).as_micros();
    assert!(cc.w_cubic(t) < 15 * MSS);
    assert_eq!(cc.cwnd(), cc.w_est());
    assert!(cc.cwnd() > 60 * MSS, "cwnd = {}", cc.cwnd() / MSS);
}

#[test]
fn cubic_reno_friendly_alpha_rfc9438_4_3() {
    // Below cwnd_prior, W_est grows by alpha = 9/17 segments per RTT.
    let rtt = ms(100);
    let (mut cc, mut now) = cubic_after_loss_at_100(rtt);
    for _ in 0..10 {
        ack_one_rtt(&mut cc, &mut now, rtt);
    }
    let est = cc.w_est() as f64 / MSS as f64;
    assert!(
        (est - (70.0 + 10.0 * 9.0 / 17.0)).abs() < 0.2,
        "W_est = {est}"
    );
}

#[test]
fn cubic_fast_convergence_rfc9438_4_7() {
    let (mut cc, _) = cubic_after_loss_at_100(ms(100));
    // Loss again at 80 segments, below W_max = 100.
    cc.w.cwnd = 80 * MSS;
    cc.on_congestion_event(Instant::ZERO, 80 * MSS);
    assert_eq!(
        cc.w_max(),
        80 * MSS * 17 / 20,
        "W_max = cwnd * (1 + beta) / 2"
    );
    assert_eq!(cc.cwnd(), 56 * MSS);
}

#[test]
fn cubic_rto_rfc9438_4_8() {
    let (mut cc, mut now) = cubic_after_loss_at_100(ms(100));
    cc.on_rto(now, 70 * MSS);
    assert_eq!(cc.cwnd(), MSS);
    assert_eq!(cc.ssthresh(), 49 * MSS);
    // Slow start back to ssthresh, then congestion avoidance with K = 0 and
    // W_max = cwnd_epoch.
    while cc.cwnd() < cc.ssthresh() {
        ack_one_rtt(&mut cc, &mut now, ms(100));
    }
    // The epoch began on the ACK that took cwnd to exactly ssthresh.
    assert_eq!(cc.k(), Duration::ZERO);
    assert_eq!(cc.w_max(), 49 * MSS);
    assert!(cc.cwnd() > 49 * MSS);
}

#[test]
fn floors_never_crossed_rfc9438_4_6_rfc5681() {
    for alg in [Algorithm::NewReno, Algorithm::Cubic] {
        let mut cc = new(alg, MSS);
        for _ in 0..10 {
            cc.on_congestion_event(Instant::ZERO, 0);
            assert!(cc.cwnd() >= 2 * MSS && cc.ssthresh() >= 2 * MSS, "{alg:?}");
            cc.on_recovery_exit(Instant::ZERO);
            assert!(cc.cwnd() >= 2 * MSS, "{alg:?}");
        }
        cc.on_rto(Instant::ZERO, 0);
        assert!(cc.cwnd() >= MSS && cc.ssthresh() >= 2 * MSS, "{alg:?}");
        cc.set_mss(9000);
        assert!(cc.cwnd() >= 9000 && cc.ssthresh() >= 18000, "{alg:?}");
    }
}

#[test]
fn integer_cube_root() {
    assert_eq!(icbrt(0), 0);
    assert_eq!(icbrt(26), 2);
    assert_eq!(icbrt(27), 3);
    assert_eq!(icbrt(u128::MAX), 6_981_463_658_331);
}

/// Fluid model: one call per ACKed segment, a window per RTT, and a loss
/// (recovered within one RTT) every `loss_every` RTTs or whenever cwnd exceeds
/// the bottleneck's 1000-segment buffer. Returns the mean cwnd, in segments,
/// over the second half of the run (after the start-up transient).
fn fluid_mean_cwnd(alg: Algorithm, rtt: Duration, rtts: usize, loss_every: usize) -> f64 {
    let mut cc = new(alg, MSS);
    let mut now = Instant::ZERO;
    let mut sum = 0usize;
    for i in 1..=rtts {
        if i % loss_every == 0 || cc.cwnd() > 1000 * MSS {
            cc.on_congestion_event(now, cc.cwnd());
            now += rtt;
            cc.on_recovery_exit(now);
        } else {
            ack_one_rtt(&mut cc, &mut now, rtt);
        }
        if i > rtts / 2 {
            sum += cc.cwnd();
        }
    }
    sum as f64 / (rtts - rtts / 2) as f64 / MSS as f64
}

#[test]
fn fluid_cubic_outgrows_newreno_on_long_rtt_rfc9438_1() {
    let reno = fluid_mean_cwnd(Algorithm::NewReno, ms(100), 4000, 50);
    let cubic = fluid_mean_cwnd(Algorithm::Cubic, ms(100), 4000, 50);
    assert!(cubic > 1.3 * reno, "cubic {cubic:.1} vs reno {reno:.1}");
}

#[test]
fn fluid_cubic_is_reno_friendly_on_short_rtt_rfc9438_4_3() {
    let reno = fluid_mean_cwnd(Algorithm::NewReno, ms(1), 4000, 50);
    let cubic = fluid_mean_cwnd(Algorithm::Cubic, ms(1), 4000, 50);
    assert!(
        (0.8 * reno..=1.2 * reno).contains(&cubic),
        "cubic {cubic:.1} vs reno {reno:.1}"
    );
}
