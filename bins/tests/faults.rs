//! tun-server behind the fault injector: TCP must still deliver exactly.

mod common;

use common::{body_sha256, curl, curl_sha256, netns, start_tun_server};

#[test]
fn twenty_sequential_curls_succeed_with_five_percent_loss() {
    let Some(ns) = netns("faultdrop") else { return };
    let _server = start_tun_server(&ns, &["--drop", "0.05", "--fault-seed", "1"]);
    for i in 0..20 {
        let out = curl(&ns, &["http://10.0.0.2/"]);
        assert!(
            out.status.success() && out.stdout == b"Hello World!",
            "curl #{i} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn download_is_exact_through_duplication_reordering_corruption_and_delay() {
    const N: u64 = 2_000_000;
    let Some(ns) = netns("faultmix") else { return };
    let _server = start_tun_server(
        &ns,
        &[
            "--dup",
            "0.02",
            "--reorder",
            "0.02",
            "--corrupt",
            "0.01",
            "--delay",
            "2",
            "--fault-seed",
            "7",
        ],
    );
    let (total, got) = curl_sha256(&ns, &format!("http://10.0.0.2/bytes/{N}"));
    assert_eq!(total, N);
    assert_eq!(got, body_sha256(N), "download corrupted");
}
