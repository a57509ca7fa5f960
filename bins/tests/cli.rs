//! The command-line rules of tun-server, raw-client and tun-proxy: every
//! argument is checked before anything is created, with a one-line error
//! that names the problem; each binary offers only the backends it can run
//! over; `--help` puts the essential options first, in groups; logs carry
//! no colour codes unless stderr is a terminal and `NO_COLOR` is unset;
//! `--version` names the binary.
//!
//! The refusals run inside a fresh namespace (root), so "nothing was
//! created" is checked on a namespace no one else touches.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{netns, output_within, start_tun_server, terminate, NetNs};

const TUN_SERVER: &str = env!("CARGO_BIN_EXE_tun-server");
const RAW_CLIENT: &str = env!("CARGO_BIN_EXE_raw-client");
const TUN_PROXY: &str = env!("CARGO_BIN_EXE_tun-proxy");

fn run_in(ns: &NetNs, program: &str, args: &[&str]) -> Output {
    let mut cmd = ns.command(program);
    cmd.args(args);
    output_within(cmd, Duration::from_secs(20))
}

fn run_here(program: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args);
    output_within(cmd, Duration::from_secs(20))
}

/// Interfaces, addresses, routes, rules and nftables rules of `ns`.
fn state(ns: &NetNs) -> String {
    let mut all = String::new();
    for args in [
        &["-o", "link", "show"][..],
        &["-o", "addr", "show"][..],
        &["route", "show", "table", "all"][..],
        &["rule", "show"][..],
    ] {
        let out = ns.ip(args).expect("ip");
        all += &String::from_utf8_lossy(&out.stdout);
    }
    let nft = run_in(ns, "nft", &["list", "ruleset"]);
    all + &String::from_utf8_lossy(&nft.stdout)
}

/// Runs `program args` in `ns`, expects a refusal whose first stderr line
/// contains `needle`, and that the namespace is as it was.
fn refused(ns: &NetNs, program: &str, args: &[&str], needle: &str) {
    let before = state(ns);
    let out = run_in(ns, program, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} was accepted: {err}");
    let first = err.lines().next().unwrap_or("");
    assert!(
        first.contains(needle),
        "{args:?}: first line of the error {first:?} does not say {needle:?}; all of it:\n{err}"
    );
    assert_eq!(state(ns), before, "{args:?} left something behind");
}

#[test]
fn tun_server_checks_every_argument_before_creating_the_device() {
    let Some(ns) = netns("cli-srv") else { return };
    for (args, needle) in [
        (
            &["--addr", "192.168.77.2"][..],
            "is outside --host-addr 10.0.0.1/24",
        ),
        (
            &["--host-addr", "10.0.0.0"][..],
            "network or broadcast address",
        ),
        (
            &["--host-addr", "10.0.0.255"][..],
            "network or broadcast address",
        ),
        (&["--addr", "10.0.0.1"][..], "both 10.0.0.1"),
        (
            &["--port", "0"][..],
            "'--port <PORT>': 0 is not in 1..=65535",
        ),
        (&["--drop", "-0.1"][..], "out of range"),
        (&["--drop", "1.5"][..], "out of range"),
        (&["--corrupt", "-1"][..], "out of range"),
        (
            &["--pcap", "/nonexistent/x.pcap"][..],
            "--pcap /nonexistent/x.pcap: cannot write",
        ),
        (
            &["--link", "raw"][..],
            "invalid value 'raw' for '--link <LINK>'",
        ),
    ] {
        refused(&ns, TUN_SERVER, args, needle);
    }
}

#[test]
fn tun_server_refuses_a_subnet_that_overlaps_a_host_route_unless_told() {
    let Some(ns) = netns("cli-route") else { return };
    ns.ip(&["route", "add", "10.0.0.0/16", "dev", "lo"])
        .expect("route");
    refused(
        &ns,
        TUN_SERVER,
        &[],
        "overlaps the route 10.0.0.0/16 dev lo",
    );
    // The override starts it, and a subnet clear of the route is accepted.
    let mut srv = start_tun_server(&ns, &["--allow-route-overlap"]);
    assert!(terminate(&mut srv, Duration::from_secs(10)).success());
    let mut srv = start_tun_server(&ns, &["--addr", "10.9.0.2", "--host-addr", "10.9.0.1"]);
    // A second server on the first one's subnet would be unreachable.
    let args = [
        "--tun",
        "tun1",
        "--addr",
        "10.9.0.3",
        "--host-addr",
        "10.9.0.4",
    ];
    refused(
        &ns,
        TUN_SERVER,
        &args,
        "overlaps the route 10.9.0.0/24 dev tun0",
    );
    assert!(terminate(&mut srv, Duration::from_secs(10)).success());
}

#[test]
fn raw_client_checks_every_argument_before_any_socket_or_rule() {
    let Some(ns) = netns("cli-raw") else { return };
    for (args, needle) in [
        (&["127.0.0.1", "0"][..], "0 is not in 1..=65535"),
        (
            &["--src-port", "0", "127.0.0.1", "80"][..],
            "0 is not in 1..=65535",
        ),
        (&["--drop", "-0.1", "127.0.0.1", "80"][..], "out of range"),
        (&["--dup", "2", "127.0.0.1", "80"][..], "out of range"),
        (
            &["--pcap", "/nonexistent/x.pcap", "127.0.0.1", "80"][..],
            "cannot write",
        ),
        (
            &["--link", "tun", "127.0.0.1", "80"][..],
            "invalid value 'tun'",
        ),
        (
            &["--src", "10.1.0.3/24", "127.0.0.1", "80"][..],
            "--src is for --link afpacket",
        ),
        (
            &["--connect-timeout", "-1", "127.0.0.1", "80"][..],
            "out of range",
        ),
    ] {
        refused(&ns, RAW_CLIENT, args, needle);
    }
}

#[test]
fn tun_proxy_checks_every_argument_before_creating_anything() {
    let Some(ns) = netns("cli-pxy") else { return };
    let route = ["--route", "10.77.0.0/24"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        route.iter().copied().chain(extra.iter().copied()).collect()
    };
    for (args, needle) in [
        (
            with(&["--host-addr", "198.18.0.0"]),
            "network or broadcast address",
        ),
        (with(&["--host-addr", "198.18.1.1"]), "is outside --addr"),
        (with(&["--reorder", "-0.5"]), "out of range"),
        (with(&["--pcap", "/nonexistent/x.pcap"]), "cannot write"),
        (with(&["--link", "afpacket"]), "invalid value 'afpacket'"),
    ] {
        refused(&ns, TUN_PROXY, &args, needle);
    }
    ns.ip(&["route", "add", "198.18.0.0/15", "dev", "lo"])
        .expect("route");
    refused(
        &ns,
        TUN_PROXY,
        &route,
        "overlaps the route 198.18.0.0/15 dev lo",
    );
}

#[test]
fn each_binary_lists_only_the_backends_it_runs_over() {
    for (bin, values) in [
        (TUN_SERVER, "[possible values: tun, afpacket]"),
        (RAW_CLIENT, "[possible values: raw, afpacket]"),
        (TUN_PROXY, "[possible values: tun]"),
    ] {
        let out = run_here(bin, &["-h"]);
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains(values), "{bin} -h lacks {values}:\n{help}");
    }
    // Refused by the parser, so the program's name is not repeated.
    let out = run_here(TUN_SERVER, &["--link", "raw"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!err.contains("tun-server: tun-server"), "{err}");
    assert!(err.contains("[possible values: tun, afpacket]"), "{err}");
}

/// Where `needle` starts in `text`; fails the test when it is absent.
fn at(text: &str, needle: &str) -> usize {
    text.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in:\n{text}"))
}

#[test]
fn help_puts_the_essential_options_first_then_link_then_faults() {
    for (bin, first, group) in [
        (TUN_SERVER, &["--tun", "--addr", "--port"][..], "Server:"),
        (RAW_CLIENT, &["<HOST>", "<PORT>", "--src "][..], "Client:"),
        (TUN_PROXY, &["--route", "--socks5"][..], "Proxy:"),
    ] {
        let out = run_here(bin, &["--help"]);
        let help = String::from_utf8_lossy(&out.stdout);
        let (own, link, faults) = (
            at(&help, group),
            at(&help, "\nLink:"),
            at(&help, "\nFaults:"),
        );
        assert!(
            own < link && link < faults,
            "{bin}: groups out of order:\n{help}"
        );
        for opt in first {
            let pos = at(&help, opt);
            assert!(pos < link, "{bin}: {opt} comes after the link options");
        }
        assert!(at(&help, "--pcap") > link && at(&help, "--pcap") < faults);
        assert!(at(&help, "--drop") > faults, "{bin}: --drop outside Faults");
    }
}

#[test]
fn version_names_the_binary() {
    for (bin, name) in [
        (TUN_SERVER, "tun-server "),
        (RAW_CLIENT, "raw-client "),
        (TUN_PROXY, "tun-proxy "),
    ] {
        let out = run_here(bin, &["--version"]);
        assert!(out.status.success());
        let v = String::from_utf8_lossy(&out.stdout);
        assert!(v.starts_with(name), "{bin} --version says {v:?}");
    }
}

/// tun-server's stderr for two seconds of running (it logs the device
/// coming up), through a pseudo-terminal (`script`) when `tty`.
fn server_log(ns: &NetNs, tty: bool, no_color: Option<&str>) -> String {
    let line = format!("timeout -s INT 2 {TUN_SERVER} 2>&1");
    let mut cmd = if tty {
        let mut c = ns.command("script");
        c.args(["-qec", &line, "/dev/null"]);
        c
    } else {
        let mut c = ns.command("sh");
        c.args(["-c", &line]);
        c
    };
    cmd.env_remove("NO_COLOR").env_remove("RUST_LOG");
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    let out = output_within(cmd, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("TUN device up"),
        "no log from tun-server:\n{text}"
    );
    text
}

#[test]
fn logs_have_colour_only_on_a_terminal_without_no_color() {
    let Some(ns) = netns("cli-color") else { return };
    const ESC: char = '\u{1b}';
    let piped = server_log(&ns, false, None);
    assert!(
        !piped.contains(ESC),
        "colour codes in a piped log:\n{piped:?}"
    );
    let tty = server_log(&ns, true, None);
    assert!(tty.contains(ESC), "no colour on a terminal:\n{tty:?}");
    let tty_no_color = server_log(&ns, true, Some("1"));
    assert!(
        !tty_no_color.contains(ESC),
        "NO_COLOR ignored:\n{tty_no_color:?}"
    );
}
