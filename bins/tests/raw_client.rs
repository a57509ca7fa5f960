//! raw-client against a kernel echo server (std::net) on 127.0.0.1:6666, in a
//! network namespace of each test's own (root needed; see common::netns).

mod common;

use std::io::Read;
use std::process::Output;
use std::time::Duration;

use common::{netns, output_within, NetNs};

fn kernel_echo_server(ns: &NetNs) {
    common::kernel_echo_server_at(ns, "127.0.0.1:6666");
}

fn raw_client(ns: &NetNs, args: &[&str], input: &[u8]) -> Output {
    common::raw_client_within(ns, args, input, Duration::from_secs(60))
}

fn our_nft_tables(ns: &NetNs) -> String {
    let mut c = ns.command("nft");
    c.args(["list", "tables"]);
    let out = output_within(c, Duration::from_secs(10));
    assert!(
        out.status.success(),
        "nft list tables: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(ustack::rst_guard::TABLE_PREFIX))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn hello_raw_is_echoed_by_the_kernel_server() {
    let Some(ns) = netns("hello") else { return };
    kernel_echo_server(&ns);
    let out = raw_client(&ns, &["127.0.0.1", "6666"], b"hello raw\n");
    assert!(
        out.status.success(),
        "raw-client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello raw\n");
    assert_eq!(our_nft_tables(&ns), "", "RST guard removed on exit");
}

#[test]
fn one_megabyte_of_random_bytes_round_trips_exactly() {
    let Some(ns) = netns("megabyte") else { return };
    kernel_echo_server(&ns);
    let mut data = vec![0u8; 1 << 20];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut data))
        .expect("urandom");
    let out = raw_client(&ns, &["127.0.0.1", "6666"], &data);
    assert!(
        out.status.success(),
        "raw-client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "echoed bytes differ");
    assert_eq!(our_nft_tables(&ns), "", "RST guard removed on exit");
}

#[test]
fn closed_port_fails_with_connection_refused() {
    let Some(ns) = netns("refused") else { return };
    let out = raw_client(&ns, &["127.0.0.1", "6667"], b"");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused"), "stderr: {err}");
    assert_eq!(
        our_nft_tables(&ns),
        "",
        "RST guard removed on the error path too"
    );
}

#[test]
fn without_the_guard_the_kernel_resets_the_connection() {
    let Some(ns) = netns("noguard") else { return };
    kernel_echo_server(&ns);
    let out = raw_client(
        &ns,
        &[
            "--no-rst-guard",
            "--connect-timeout",
            "5",
            "127.0.0.1",
            "6666",
        ],
        b"hello raw\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the kernel's RST should have killed the flow; stdout {:?}",
        out.stdout
    );
    assert!(
        err.contains("reset") || err.contains("timed out"),
        "stderr: {err}"
    );
}
