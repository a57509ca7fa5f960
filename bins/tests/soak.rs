//! A one-minute soak of tun-server: keep-alive, new-connection, download and
//! upload clients at once through the fault injector (drops, duplicates,
//! reordering), every byte checked; RSS outside the ring buffers must hold
//! after the warm-up, and every connection and its rings must be gone after
//! the load (`soak` binary).

mod common;

use std::process::Command;
use std::time::Duration;

#[test]
fn one_minute_soak_passes() {
    if ustack::netns::skip_requested() {
        println!("SKIPPED (USTACK_SKIP_PRIVILEGED=1): the soak needs root for its namespace");
        return;
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_soak"));
    cmd.args([
        "--duration",
        "60",
        "--sample",
        "10",
        "--warmup",
        "30",
        "--workers",
        "1",
    ])
    .args(["--tun-server", env!("CARGO_BIN_EXE_tun-server")]);
    let out = common::output_within(cmd, Duration::from_secs(180));
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success() && text.contains("soak: PASS"),
        "soak failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
