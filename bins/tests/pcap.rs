//! `--pcap FILE` captures that tshark reads: over TUN (raw IP) and over
//! AF_PACKET (Ethernet, ARP included). Each test serves one curl, stops the
//! server (which flushes the file) and looks for the handshake, the HTTP
//! exchange and the teardown in tshark's dissection.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{curl, netns, output_within, start_tun_server, terminate, veth_pair, NetNs};

fn capture_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ustack-{tag}-{}.pcap", std::process::id()))
}

/// Serves one curl with `--pcap`, stops the server, returns tshark's text.
fn capture_one_curl(
    client: &NetNs,
    server: &NetNs,
    args: &[&str],
    url: &str,
    path: &Path,
) -> String {
    let path_arg = path.to_str().expect("utf-8 temp path");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--pcap", path_arg]);
    let mut srv = start_tun_server(server, &all);
    let out = curl(client, &[url]);
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello World!");
    // Let the teardown finish (curl's FIN and our last ACK) before stopping.
    std::thread::sleep(Duration::from_millis(300));
    let status = terminate(&mut srv, Duration::from_secs(10));
    assert!(status.success(), "tun-server exited with {status}");

    let mut tshark = Command::new("tshark");
    tshark.args(["-r", path_arg, "-o", "tcp.relative_sequence_numbers:FALSE"]);
    let out = output_within(tshark, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "tshark -r {path_arg} failed (is tshark installed? scripts/test installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(path);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_has_a_whole_connection(text: &str) {
    let has = |s: &str| text.lines().any(|l| l.contains(s));
    assert!(has("[SYN]"), "no SYN in:\n{text}");
    assert!(has("[SYN, ACK]"), "no SYN-ACK in:\n{text}");
    assert!(has("GET / HTTP/1.1"), "no HTTP request in:\n{text}");
    assert!(has("HTTP/1.1 200 OK"), "no HTTP response in:\n{text}");
    assert!(has("FIN"), "no FIN in:\n{text}");
    assert!(!has("Malformed"), "tshark found malformed packets:\n{text}");
}

#[test]
fn tun_capture_shows_handshake_http_and_teardown() {
    let Some(ns) = netns("pcaptun") else { return };
    let path = capture_path("tun");
    let text = capture_one_curl(&ns, &ns, &[], "http://10.0.0.2/", &path);
    assert_has_a_whole_connection(&text);
}

#[test]
fn afpacket_capture_is_ethernet_with_arp_and_the_whole_connection() {
    let Some(p) = veth_pair("pcapaf") else { return };
    let path = capture_path("afpacket");
    let args = [
        "--link", "afpacket", "--iface", "veth-a", "--addr", "10.1.0.2", "--prefix", "24",
    ];
    let text = capture_one_curl(&p.b, &p.a, &args, "http://10.1.0.2/", &path);
    assert_has_a_whole_connection(&text);
    assert!(
        text.contains("ARP") && text.contains("10.1.0.2 is at"),
        "no ARP reply in:\n{text}"
    );
}

/// With offloads on, the device hands over super-frames with partial TCP
/// checksums (both ways); the capture's copies carry completed ones, so
/// Wireshark's checksum checks find nothing wrong.
#[test]
fn offload_capture_has_superframes_with_correct_checksums() {
    let Some(ns) = netns("pcapsum") else { return };
    let path = capture_path("csum");
    let path_arg = path.to_str().expect("utf-8 temp path");
    let mut srv = start_tun_server(&ns, &["--pcap", path_arg]);
    let (total, _) = common::curl_sha256(&ns, "http://10.0.0.2/bytes/1000000");
    assert_eq!(total, 1_000_000);
    std::thread::sleep(Duration::from_millis(300));
    let status = terminate(&mut srv, Duration::from_secs(10));
    assert!(status.success(), "tun-server exited with {status}");

    let mut tshark = Command::new("tshark");
    tshark.args([
        "-r",
        path_arg,
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
    ]);
    tshark.args([
        "-T",
        "fields",
        "-e",
        "frame.len",
        "-e",
        "ip.checksum.status",
    ]);
    tshark.args(["-e", "tcp.checksum.status"]);
    let out = output_within(tshark, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert!(rows.len() > 10, "too few packets captured:\n{text}");
    // Wireshark's checksum status: 1 is good, 0 bad, 2 unverified.
    let bad: Vec<_> = rows
        .iter()
        .filter(|r| r.get(1) != Some(&"1") || r.get(2) != Some(&"1"))
        .collect();
    assert!(bad.is_empty(), "checksums not good (len, ip, tcp): {bad:?}");
    let largest = rows
        .iter()
        .filter_map(|r| r[0].parse::<usize>().ok())
        .max()
        .unwrap_or(0);
    assert!(
        largest > 1500,
        "no super-frame in the capture (largest {largest} B): are offloads on?"
    );
}
