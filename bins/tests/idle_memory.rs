//! Idle keep-alive connections hold no buffer memory: tun-server's ring
//! storage (its `--stats` file) stays at the pool's bound however many
//! connections sit idle after a request, and returns when they close.
//! Privileged: a namespace with a TUN device.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{netns, start_tun_server};

const CONNECTIONS: usize = 300;

/// (connections, buffer bytes) from the stats file's CSV line.
fn stats(path: &std::path::Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().nth(1)?;
    let mut f = line
        .split(',')
        .skip(1)
        .map(|v| v.trim().parse::<u64>().ok());
    Some((f.next()??, f.next()??))
}

/// Waits (bounded) for the stats file to satisfy `ok`; returns the last line.
fn wait_stats(path: &std::path::Path, ok: impl Fn((u64, u64)) -> bool) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = stats(path);
        match s {
            Some(s) if ok(s) => return s,
            Some(s) if Instant::now() > deadline => return s,
            _ if Instant::now() > deadline => panic!("no stats in {}", path.display()),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn idle_keep_alive_connections_hold_no_ring_memory() {
    let Some(ns) = netns("idle-mem") else { return };
    let dir = std::env::temp_dir().join(format!("ustack-idle-mem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("stats.csv");
    let _server = start_tun_server(&ns, &["--stats", file.to_str().expect("utf-8 path")]);
    let handle = std::thread::spawn(move || {
        ns.enter_current_thread().expect("enter namespace");
        let mut held = Vec::new();
        for i in 0..CONNECTIONS {
            let mut s = TcpStream::connect(("10.0.0.2", 80)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                .expect("request");
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.windows(12).any(|w| w == b"Hello World!") {
                let n = s
                    .read(&mut buf)
                    .unwrap_or_else(|e| panic!("response {i}: {e}"));
                assert!(n > 0, "connection {i} closed before its response");
                got.extend_from_slice(&buf[..n]);
            }
            held.push(s);
        }
        held
    });
    let held = handle.join().expect("clients");
    let (conns, bytes) = wait_stats(&file, |(c, _)| c as usize >= CONNECTIONS);
    println!("{conns} connections idle: {bytes} bytes of ring storage");
    assert!(
        conns as usize >= CONNECTIONS,
        "{conns} connections in the stats"
    );
    // Held rings would be 2 x 64 KiB each (37.5 MiB); only the pool's
    // spare storage may remain: at most 64 rings of a size.
    assert!(
        bytes <= 64 * 64 * 1024,
        "{bytes} bytes of rings for {conns} idle connections"
    );
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
}
