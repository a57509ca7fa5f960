//! The IP layer against the Linux kernel: datagrams larger than the MTU in
//! both directions (fragment reassembly and fragmentation, with `ping -s`),
//! path-MTU discovery from a kernel router's "fragmentation needed", and
//! ICMP errors that end or explain a connect.

mod common;

use std::time::{Duration, Instant};

use common::{
    body_sha256, curl_sha256_within, netns, nft_apply, output_within, raw_client_within,
    start_tun_server, veth_pair, NetNs,
};

const AFPACKET_SERVER: &[&str] = &[
    "--link", "afpacket", "--iface", "veth-a", "--addr", "10.1.0.2", "--prefix", "24",
];

/// `ping -s SIZE` from `ns` to `addr`: every request is a datagram the
/// kernel fragments, every reply one the stack must fragment.
fn assert_large_pings(ns: &NetNs, addr: &str) {
    for size in ["4000", "30000", "65507"] {
        let mut ping = ns.command("ping");
        ping.args(["-c", "2", "-i", "0.3", "-W", "3", "-s", size, addr]);
        let out = output_within(ping, Duration::from_secs(20));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("2 packets transmitted, 2 received"),
            "ping -s {size} {addr}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn large_pings_are_answered_over_tun() {
    let Some(ns) = netns("bigping") else { return };
    let _server = start_tun_server(&ns, &[]);
    assert_large_pings(&ns, "10.0.0.2");
}

#[test]
fn large_pings_are_answered_without_offloads() {
    let Some(ns) = netns("bigping-plain") else {
        return;
    };
    let _server = start_tun_server(&ns, &["--no-offload", "--mtu", "1280"]);
    assert_large_pings(&ns, "10.0.0.2");
}

#[test]
fn large_pings_are_answered_over_afpacket() {
    let Some(p) = veth_pair("afbigping") else {
        return;
    };
    let _server = start_tun_server(&p.a, AFPACKET_SERVER);
    assert_large_pings(&p.b, "10.1.0.2");
}

/// tun-server in `a` behind the kernel of `a` acting as a router onto a
/// veth link of MTU 1280 towards the client namespace `d`. The stack's
/// 1500-byte segments (DF set) cannot cross it: the router answers with
/// ICMP "fragmentation needed, MTU 1280", and the stack must lower its path
/// MTU or the download stalls for good.
fn pmtu_download(tag: &str, server_args: &[&str]) {
    let Some(a) = netns(&format!("{tag}-a")) else {
        return;
    };
    let Some(d) = netns(&format!("{tag}-d")) else {
        return;
    };
    let setup = || -> Result<(), ustack::netns::NetNsError> {
        a.ip(&[
            "link",
            "add",
            "rt-a",
            "type",
            "veth",
            "peer",
            "name",
            "rt-d",
            "netns",
            d.name(),
        ])?;
        a.ip(&["addr", "add", "10.9.0.1/24", "dev", "rt-a"])?;
        a.ip(&["link", "set", "rt-a", "mtu", "1280", "up"])?;
        d.ip(&["addr", "add", "10.9.0.2/24", "dev", "rt-d"])?;
        d.ip(&["link", "set", "rt-d", "up"])?;
        d.ip(&["route", "add", "default", "via", "10.9.0.1"])?;
        Ok(())
    };
    setup().expect("router namespaces");
    let mut sysctl = a.command("sysctl");
    sysctl.args(["-qw", "net.ipv4.ip_forward=1"]);
    assert!(output_within(sysctl, Duration::from_secs(10))
        .status
        .success());
    let _server = start_tun_server(&a, server_args);

    const N: u64 = 20_000_000;
    let (total, sha, elapsed, ok) =
        curl_sha256_within(&d, &format!("http://10.0.0.2/bytes/{N}"), 30);
    assert!(
        ok && total == N,
        "download stalled at {total} of {N} bytes after {elapsed:?}"
    );
    assert_eq!(sha, body_sha256(N), "download corrupted");
}

#[test]
fn path_mtu_follows_fragmentation_needed_from_a_router() {
    pmtu_download("pmtu", &["--no-offload"]);
}

#[test]
fn path_mtu_follows_fragmentation_needed_with_offloads() {
    pmtu_download("pmtu-tso", &[]);
}

/// raw-client over AF_PACKET towards 10.1.0.1:`port`, where the kernel's
/// firewall answers every SYN with the ICMP error `icmp_type`.
fn connect_against_icmp(tag: &str, icmp_type: &str, timeout: &str) -> (String, Duration) {
    let p = veth_pair(tag).expect("veth pair");
    nft_apply(
        &p.b,
        &format!(
            "table ip icmp_test {{\n chain input {{\n type filter hook input priority 0;\n \
             tcp dport 9 reject with icmp type {icmp_type}\n }}\n}}\n"
        ),
    );
    let args = [
        "--link",
        "afpacket",
        "--iface",
        "veth-a",
        "--src",
        "10.1.0.3/24",
        "--connect-timeout",
        timeout,
        "10.1.0.1",
        "9",
    ];
    let started = Instant::now();
    let out = raw_client_within(&p.a, &args, b"", Duration::from_secs(60));
    assert!(
        !out.status.success(),
        "raw-client connected through a reject rule"
    );
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn icmp_port_unreachable_refuses_a_connect_at_once() {
    if ustack::netns::skip_requested() {
        return;
    }
    let (stderr, elapsed) = connect_against_icmp("icmpport", "port-unreachable", "20");
    assert!(stderr.contains("refused"), "raw-client said: {stderr}");
    assert!(
        elapsed < Duration::from_secs(5),
        "took {elapsed:?}: waited out its timeout"
    );
}

#[test]
fn icmp_host_unreachable_is_reported_when_the_connect_gives_up() {
    if ustack::netns::skip_requested() {
        return;
    }
    let (stderr, elapsed) = connect_against_icmp("icmphost", "host-unreachable", "3");
    assert!(stderr.contains("unreachable"), "raw-client said: {stderr}");
    assert!(
        elapsed >= Duration::from_secs(3),
        "gave up before its timeout: {elapsed:?}"
    );
}
