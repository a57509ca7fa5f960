//! A short SYN flood against tun-server (the figures are in bench-flood):
//! spoofed SYNs from an on-link address that never answers, while a real
//! client keeps connecting. Root needed (see common::netns).

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use common::{netns, start_tun_server};
use ustack::flood::{hello, SynFlooder};
use ustack::netns::NetNsHandle;

const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);

/// The named column of tun-server's `--stats` file (None before it exists).
fn stat(path: &Path, column: &str) -> Option<u64> {
    common::stats_column(&std::fs::read_to_string(path).ok()?, column)
}

#[test]
fn real_clients_are_served_through_a_spoofed_syn_flood() {
    const BACKLOG: u64 = 64;
    let Some(ns) = netns("flood") else { return };
    let stats = common::stats_path("flood");
    let path = stats.to_string_lossy().to_string();
    let stats_for_client = stats.clone();
    let _server = start_tun_server(&ns, &["--backlog", &BACKLOG.to_string(), "--stats", &path]);
    let name = ns.name().to_string();
    let flooder = std::thread::spawn(move || {
        NetNsHandle::named(&name)
            .enter_current_thread()
            .expect("enter the namespace");
        let mut f = SynFlooder::new(Ipv4Addr::new(10, 0, 0, 99), SERVER, 7).expect("raw socket");
        f.run(20_000, Duration::from_secs(3), &AtomicBool::new(false))
            .expect("flood")
    });
    let name = ns.name().to_string();
    let (answered, most, after) = std::thread::spawn(move || {
        let stats = stats_for_client;
        NetNsHandle::named(&name)
            .enter_current_thread()
            .expect("enter the namespace");
        let (mut answered, mut most) = (0u64, 0);
        while !flooder.is_finished() {
            let r = hello(SERVER, Duration::from_secs(5));
            assert!(r.is_ok(), "a real request failed during the flood: {r:?}");
            answered += 1;
            most = most.max(stat(&stats, "connections").unwrap_or(0));
            std::thread::sleep(Duration::from_millis(50));
        }
        let syns = flooder.join().expect("flooder");
        assert!(syns > 20_000, "only {syns} SYNs sent");
        let ended = Instant::now();
        let after = hello(SERVER, Duration::from_secs(2)).map(|_| ended.elapsed());
        (answered, most, after)
    })
    .join()
    .expect("client");
    std::thread::sleep(Duration::from_millis(1100));
    let cookies = stat(&stats, "syncookies_sent").unwrap_or(0);
    let _ = std::fs::remove_file(&stats);
    assert!(answered >= 10, "only {answered} requests in 3 s of flood");
    assert!(after.is_ok(), "no answer right after the flood: {after:?}");
    assert!(
        cookies > 10_000,
        "the flood was answered with {cookies} cookies"
    );
    // Half-open state stays within the backlog, the rest was stateless;
    // the server closed each real connection, so keeps its TIME-WAIT.
    assert!(
        most <= BACKLOG + answered + 16,
        "{most} connections during the flood ({answered} requests)"
    );
}
