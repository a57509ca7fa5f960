//! The AF_PACKET backend against the Linux kernel across a veth pair: the
//! stack owns 10.1.0.2 (tun-server) or 10.1.0.3 (raw-client) on `veth-a` in
//! one namespace, the kernel peers live on `veth-b` (10.1.0.1/24) in another.
//! The kernel in the stack's namespace has no address there, so it never
//! sees or resets our flows: no firewall rule is needed.

mod common;

use std::io::Read;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{
    body_sha256, curl, curl_sha256, kernel_echo_server_at, output_within, start_tun_server,
    veth_pair, NetNs,
};

const SERVER_ARGS: &[&str] = &[
    "--link", "afpacket", "--iface", "veth-a", "--addr", "10.1.0.2", "--prefix", "24",
];

/// The receive and transmit paths: both memory-mapped rings, a transmit
/// ring alone, and no rings (the default: one `sendmsg` per frame or per
/// GSO super-frame, one `recvmsg` per frame; what a kernel without rings
/// gets). Each test that moves data runs over all three.
const PATHS: &[(&str, &[&str])] = &[
    ("rings", &["--rx-ring-kib", "4096", "--tx-ring-kib", "1024"]),
    ("tx-ring", &["--tx-ring-kib", "1024"]),
    ("no-rings", &[]),
];

fn server_args(extra: &[&'static str]) -> Vec<&'static str> {
    SERVER_ARGS.iter().chain(extra).copied().collect()
}

#[test]
fn curl_gets_hello_world_and_ping_is_answered_over_afpacket() {
    let Some(p) = veth_pair("afcurl") else { return };
    let _server = start_tun_server(&p.a, SERVER_ARGS);
    let out = curl(&p.b, &["http://10.1.0.2/"]);
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello World!");

    let mut ping = p.b.command("ping");
    ping.args(["-c", "3", "-i", "0.2", "-W", "2", "10.1.0.2"]);
    let out = output_within(ping, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("3 packets transmitted, 3 received"),
        "ping: {text}"
    );

    // The kernel peer learned our MAC through ARP.
    let out = p.b.ip(&["neigh", "show", "10.1.0.2"]).expect("ip neigh");
    let neigh = String::from_utf8_lossy(&out.stdout);
    assert!(
        neigh.contains("lladdr"),
        "no ARP entry for 10.1.0.2: {neigh}"
    );
}

#[test]
fn hundred_megabyte_download_over_afpacket_is_byte_exact_on_both_paths() {
    const N: u64 = 100_000_000;
    let expected = body_sha256(N);
    for (path, extra) in PATHS {
        let Some(p) = veth_pair("afbulk") else { return };
        let _server = start_tun_server(&p.a, &server_args(extra));
        let started = Instant::now();
        let (total, got) = curl_sha256(&p.b, &format!("http://10.1.0.2/bytes/{N}"));
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{path}: 100 MB over AF_PACKET in {secs:.2} s = {:.2} Gbit/s",
            total as f64 * 8.0 / secs / 1e9
        );
        assert_eq!(total, N, "{path}");
        assert_eq!(got, expected, "{path}: download corrupted");
    }
}

/// An upload from the kernel with veth's offloads on (the default): the
/// peer's TSO hands us GSO super-packets with partial checksums. Both paths
/// must pass them up whole (frames above the MTU in the capture) with the
/// checksum finished (tshark checks every TCP checksum), and the server
/// must count every byte.
#[test]
fn upload_with_offloads_arrives_in_superframes_with_finished_checksums_on_both_paths() {
    const N: usize = 20_000_000;
    let body = std::env::temp_dir().join(format!("ustack-afup-{}.body", std::process::id()));
    std::fs::write(&body, vec![7u8; N]).expect("write the body");
    for (path, extra) in PATHS {
        let Some(p) = veth_pair("afup") else { return };
        let pcap = std::env::temp_dir().join(format!("ustack-afup-{}.pcap", std::process::id()));
        let pcap_arg = pcap.to_str().expect("utf-8 temp path");
        let mut args = server_args(extra);
        args.extend(["--pcap", pcap_arg]);
        let mut server = start_tun_server(&p.a, &args);
        let out = curl(
            &p.b,
            &[
                "--data-binary",
                &format!("@{}", body.display()),
                "http://10.1.0.2/sink",
            ],
        );
        assert!(
            out.status.success(),
            "{path}: curl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer = String::from_utf8_lossy(&out.stdout);
        assert!(
            answer.contains(&N.to_string()),
            "{path}: /sink answered {answer:?}"
        );
        // Room for many super-packets: the default (208 KiB) holds three,
        // and an upload then loses them whenever the server is busy.
        let queue = packet_socket_queue_limit(&p.a, server.0.id());
        assert!(
            queue >= 4 << 20,
            "{path}: the packet socket's receive queue is {queue} bytes"
        );
        std::thread::sleep(Duration::from_millis(200));
        let status = common::terminate(&mut server, Duration::from_secs(10));
        assert!(status.success(), "{path}: tun-server exited with {status}");
        let mut tshark = Command::new("tshark");
        tshark.args(["-r", pcap_arg, "-o", "tcp.check_checksum:TRUE"]);
        tshark.args(["-Y", "ip.dst == 10.1.0.2 && tcp.len > 0"]);
        tshark.args([
            "-T",
            "fields",
            "-e",
            "frame.len",
            "-e",
            "tcp.checksum.status",
        ]);
        let out = output_within(tshark, Duration::from_secs(120));
        let _ = std::fs::remove_file(&pcap);
        assert!(
            out.status.success(),
            "tshark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let rows: Vec<(usize, &str)> = text
            .lines()
            .filter_map(|l| {
                let (len, status) = l.split_once('\t')?;
                Some((len.parse().ok()?, status))
            })
            .collect();
        let big = rows.iter().filter(|r| r.0 > 1514).count();
        let bad = rows.iter().filter(|r| r.1 != "1").count();
        println!(
            "{path}: {} data frames in, {big} above the MTU, {bad} bad checksums",
            rows.len()
        );
        assert!(big > 0, "{path}: no GSO super-packet arrived whole");
        assert_eq!(bad, 0, "{path}: checksums not finished right");
    }
    let _ = std::fs::remove_file(&body);
}

/// The receive queue limit (`ss` `skmem` `rb`) of the packet socket that
/// process `pid` holds in `ns`.
fn packet_socket_queue_limit(ns: &NetNs, pid: u32) -> u64 {
    let mut c = ns.command("ss");
    c.args(["-0", "-a", "-m", "-p", "-H"]);
    let out = output_within(c, Duration::from_secs(10));
    assert!(out.status.success(), "ss failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let owner = format!("pid={pid},");
    text.lines()
        .filter(|l| l.contains(&owner))
        .filter_map(|l| {
            let skmem = l.split("skmem:(").nth(1)?;
            let rb = skmem.split([',', ')']).find_map(|f| f.strip_prefix("rb"))?;
            rb.parse::<u64>().ok()
        })
        .max()
        .unwrap_or_else(|| panic!("no packet socket of pid {pid} in `ss -0`: {text}"))
}

fn raw_client(ns: &NetNs, args: &[&str], input: &[u8]) -> Output {
    common::raw_client_within(ns, args, input, Duration::from_secs(60))
}

fn nft_ruleset(ns: &NetNs) -> String {
    let mut c = ns.command("nft");
    c.args(["list", "ruleset"]);
    let out = output_within(c, Duration::from_secs(10));
    assert!(
        out.status.success(),
        "nft list ruleset: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn raw_client_over_afpacket_round_trips_with_a_kernel_echo_server_without_firewall_rules() {
    for (_, extra) in PATHS {
        raw_client_round_trip(extra);
    }
}

fn raw_client_round_trip(extra: &[&str]) {
    let Some(p) = veth_pair("afraw") else { return };
    kernel_echo_server_at(&p.b, "10.1.0.1:7777");
    let mut data = vec![0u8; 512 * 1024];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut data))
        .expect("urandom");
    let mut args = vec![
        "--link",
        "afpacket",
        "--iface",
        "veth-a",
        "--src",
        "10.1.0.3/24",
    ];
    args.extend(extra);
    args.extend(["10.1.0.1", "7777"]);
    // While the client runs, look for rules in its namespace: there must be none.
    let ns_name = p.a.name().to_string();
    let watcher = std::thread::spawn(move || {
        let mut seen = String::new();
        for _ in 0..20 {
            let out = Command::new("ip")
                .args(["netns", "exec", &ns_name, "nft", "list", "ruleset"])
                .output();
            if let Ok(o) = out {
                seen.push_str(String::from_utf8_lossy(&o.stdout).trim());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        seen
    });
    let out = raw_client(&p.a, &args, &data);
    assert!(
        out.status.success(),
        "raw-client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "echoed bytes differ");
    assert_eq!(
        watcher.join().expect("watcher"),
        "",
        "a firewall rule appeared"
    );
    assert_eq!(nft_ruleset(&p.a), "", "no firewall rule at all");
}

#[test]
fn unknown_interface_fails_with_a_message_naming_it() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tun-server"));
    cmd.args([
        "--link",
        "afpacket",
        "--iface",
        "does-not-exist",
        "--addr",
        "10.1.0.2",
    ]);
    let out = output_within(cmd, Duration::from_secs(20));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "tun-server started on a missing interface"
    );
    assert!(
        err.contains("interface does-not-exist") && err.contains("not found"),
        "unclear error: {err}"
    );

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_raw-client"));
    cmd.args([
        "--link",
        "afpacket",
        "--iface",
        "does-not-exist",
        "--src",
        "10.1.0.3/24",
        "10.1.0.1",
        "7",
    ]);
    let out = output_within(cmd, Duration::from_secs(20));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("interface does-not-exist"),
        "unclear error: {err}"
    );
}

#[test]
fn afpacket_without_iface_or_src_is_refused_clearly() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tun-server"));
    cmd.args(["--link", "afpacket"]);
    let out = output_within(cmd, Duration::from_secs(20));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--iface"));

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_raw-client"));
    cmd.args(["--link", "afpacket", "--iface", "lo", "10.1.0.1", "7"]);
    let out = output_within(cmd, Duration::from_secs(20));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--src"));
}

/// A server that stalls (here: stopped with SIGSTOP) while a flood arrives
/// loses what overflows its receive ring; the `--stats` file says how much
/// in `link_rx_dropped`, counted by the kernel, and the server then serves
/// again.
#[test]
fn frames_the_kernel_drops_while_the_server_stalls_show_in_the_stats_file() {
    const SENT: u64 = 20_000;
    let Some(p) = veth_pair("afdrop") else { return };
    let stats = common::stats_path("afdrop");
    let stats_arg = stats.to_string_lossy().into_owned();
    let mut args = server_args(&["--rx-ring-kib", "256"]);
    args.extend(["--stats", &stats_arg]);
    let server = start_tun_server(&p.a, &args);
    // The peer learns our MAC, so the flood is not held waiting on ARP.
    let out = curl(&p.b, &["http://10.1.0.2/"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello World!");

    common::flood_while_stopped(&server, &p.b, "10.1.0.1:0", "10.1.0.2:9", SENT);
    let (read, dropped) = common::wait_link_rx_dropped(&stats);
    let _ = std::fs::remove_file(&stats);
    // A 256 KiB ring holds a few hundred of the 20,000 frames.
    assert!(
        dropped > SENT / 2 && dropped <= SENT,
        "{dropped} of {SENT} counted dropped ({read} frames read in all)"
    );
    let out = curl(&p.b, &["http://10.1.0.2/"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello World!");
}
