use std::net::Ipv4Addr;

use super::*;

const MSL2: Duration = Duration::from_secs(60);

fn tuple(port: u16) -> Tuple {
    (
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80),
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), port),
    )
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// A record whose peer's FIN was at 999 (RCV.NXT 1000), our FIN at 4999.
fn record(ts: bool) -> Record {
    Record::new(
        SeqNumber(5000),
        SeqNumber(1000),
        ts.then_some((700, 12)),
        512,
    )
}

fn seg(flags: Flags, seq: u32, tsval: Option<u32>) -> TcpRepr {
    TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq: SeqNumber(seq),
        ack: SeqNumber(5000),
        flags,
        window: 100,
        urgent: 0,
        options: TcpOptions {
            timestamps: tsval.map(|v| (v, 0)),
            ..TcpOptions::default()
        },
    }
}

fn table() -> TimeWaitTable {
    TimeWaitTable::new(4, MSL2)
}

#[test]
fn a_record_is_small() {
    let size = core::mem::size_of::<Record>();
    println!(
        "size_of::<Record>() = {size}, key {}",
        core::mem::size_of::<Tuple>()
    );
    assert!(size <= 32, "a TIME-WAIT record grew to {size} bytes");
    assert!(size + core::mem::size_of::<Tuple>() <= 64);
}

#[test]
fn records_expire_after_two_msl_and_not_before() {
    let mut t = table();
    t.insert(at(0), tuple(1), record(false));
    t.insert(at(10), tuple(2), record(false));
    assert_eq!(t.next_expiry(), Some(at(60_000)));
    assert_eq!(t.expire(at(59_999)), 0);
    assert_eq!(t.expire(at(60_000)), 1);
    assert!(!t.contains(&tuple(1)) && t.contains(&tuple(2)));
    assert_eq!(t.expire(at(60_010)), 1);
    assert_eq!(t.len(), 0);
    assert_eq!(t.next_expiry(), None);
    assert_eq!(t.stats().expired, 2);
}

#[test]
fn at_the_bound_the_oldest_record_goes() {
    let mut t = table();
    for p in 1..=6 {
        t.insert(at(p as u64), tuple(p), record(false));
    }
    assert_eq!(t.len(), 4);
    assert!(!t.contains(&tuple(1)) && !t.contains(&tuple(2)));
    assert!((3..=6).all(|p| t.contains(&tuple(p))));
    assert_eq!(t.stats().evicted, 2);
}

#[test]
fn a_bound_of_zero_keeps_nothing() {
    let mut t = TimeWaitTable::new(0, MSL2);
    t.insert(at(0), tuple(1), record(false));
    assert_eq!(t.len(), 0);
}

#[test]
fn a_retransmitted_fin_is_acked_and_restarts_the_timer() {
    let mut t = table();
    t.insert(at(0), tuple(1), record(true));
    let fin = seg(Flags::FIN | Flags::ACK, 999, Some(800));
    let Some(Verdict::Ack(ack)) = t.on_segment(at(30_000), &tuple(1), &fin, 0) else {
        panic!("a retransmitted FIN must be acknowledged");
    };
    assert_eq!(
        (ack.seq, ack.ack, ack.flags),
        (SeqNumber(5000), SeqNumber(1000), Flags::ACK)
    );
    assert_eq!((ack.src_port, ack.dst_port, ack.window), (80, 1, 512));
    // TSval on our clock with the connection's offset; TSecr the FIN's TSval.
    assert_eq!(ack.options.timestamps, Some((30_012, 800)));
    // The old deadline passes without expiring the record...
    assert_eq!(t.expire(at(60_000)), 0);
    assert!(t.contains(&tuple(1)));
    // ...which now lives 2 × MSL from the FIN.
    assert_eq!(t.expire(at(90_000)), 1);
}

#[test]
fn a_syn_with_a_newer_timestamp_reopens() {
    let mut t = table();
    t.insert(at(0), tuple(1), record(true));
    // Sequence number below RCV.NXT, but the timestamp decides (RFC 6191).
    let syn = seg(Flags::SYN, 10, Some(701));
    assert_eq!(
        t.on_segment(at(5), &tuple(1), &syn, 0),
        Some(Verdict::Reopen)
    );
    assert!(!t.contains(&tuple(1)));
    assert_eq!(t.stats().reopened, 1);
}

#[test]
fn a_syn_with_an_old_timestamp_gets_the_time_wait_ack() {
    let mut t = table();
    t.insert(at(0), tuple(1), record(true));
    // Sequence number above RCV.NXT, but the timestamp is not newer.
    let syn = seg(Flags::SYN, 9_000, Some(700));
    let v = t.on_segment(at(5), &tuple(1), &syn, 0);
    assert!(
        matches!(v, Some(Verdict::Ack(a)) if a.ack == SeqNumber(1000)),
        "{v:?}"
    );
    assert!(t.contains(&tuple(1)));
    assert_eq!(t.stats().syn_refused, 1);
}

#[test]
fn without_timestamps_the_sequence_number_decides() {
    let mut t = table();
    t.insert(at(0), tuple(1), record(false));
    t.insert(at(0), tuple(2), record(false));
    let old = seg(Flags::SYN, 1000, None);
    assert!(matches!(
        t.on_segment(at(1), &tuple(1), &old, 0),
        Some(Verdict::Ack(_))
    ));
    let newer = seg(Flags::SYN, 1001, None);
    assert_eq!(
        t.on_segment(at(1), &tuple(2), &newer, 0),
        Some(Verdict::Reopen)
    );
    // The old connection used timestamps but the SYN carries none: by sequence.
    t.insert(at(2), tuple(3), record(true));
    assert_eq!(
        t.on_segment(at(3), &tuple(3), &newer, 0),
        Some(Verdict::Reopen)
    );
}

#[test]
fn an_rst_is_ignored_rfc_1337() {
    let mut t = table();
    t.insert(at(0), tuple(1), record(false));
    let rst = seg(Flags::RST, 1000, None);
    assert_eq!(t.on_segment(at(1), &tuple(1), &rst, 0), Some(Verdict::Drop));
    assert!(t.contains(&tuple(1)));
    assert_eq!(t.stats().rst_ignored, 1);
}

#[test]
fn a_pure_ack_is_dropped_and_data_is_answered() {
    let mut t = table();
    t.insert(at(0), tuple(1), record(false));
    let ack = seg(Flags::ACK, 1000, None);
    assert_eq!(t.on_segment(at(1), &tuple(1), &ack, 0), Some(Verdict::Drop));
    let data = seg(Flags::ACK | Flags::PSH, 1000, None);
    assert!(matches!(
        t.on_segment(at(1), &tuple(1), &data, 10),
        Some(Verdict::Ack(_))
    ));
    assert_eq!(t.on_segment(at(1), &tuple(9), &ack, 0), None);
}

#[test]
fn churn_keeps_the_fifo_bounded() {
    let mut t = TimeWaitTable::new(1000, MSL2);
    // Every record reopened right away leaves a stale FIFO entry behind.
    for i in 0..100_000u32 {
        let tu = tuple((i % 50_000) as u16 + 1);
        t.insert(at(i as u64 / 100), tu, record(false));
        let syn = seg(Flags::SYN, 2000, None);
        assert_eq!(
            t.on_segment(at(i as u64 / 100), &tu, &syn, 0),
            Some(Verdict::Reopen)
        );
    }
    assert_eq!(t.len(), 0);
    assert!(
        t.fifo.len() <= 64,
        "stale FIFO entries kept: {}",
        t.fifo.len()
    );
}
