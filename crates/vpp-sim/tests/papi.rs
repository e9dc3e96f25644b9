//! VPP's own Python client (vpp_papi) against the simulator, with the same API JSON: it must
//! connect, find every message it uses in the simulator's table, and get VPP's answers.
//! Needs python3 with vpp_papi (`pip install vpp-papi`): fails without it when CI=true,
//! skips with a message otherwise.

use std::net::IpAddr;
use std::process::{Command, Stdio};

use serde_json::Value;
use vpp_sim::{Direction, Packet, Simulator, Verdict};

fn papi_available() -> bool {
    Command::new("python3")
        .args(["-c", "import vpp_papi"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vpp_papi_programs_npol_and_interfaces_on_the_simulator() {
    let in_ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
    let api_dir = vpp_bindings::apigen::default_api_dir();
    if !api_dir.is_dir() || !papi_available() {
        assert!(
            !in_ci,
            "CI=true but vpp_papi (pip install vpp-papi) or the API JSON ({}) is missing",
            api_dir.display()
        );
        eprintln!(
            "SKIP vpp_papi test: needs `python3 -c 'import vpp_papi'` (pip install vpp-papi) and API JSON at {}",
            api_dir.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("api.sock");
    let sim = Simulator::start(&sock).await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/papi_client.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(&api_dir)
        .arg(&sock)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "papi_client.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["program"], "vpp-sim");
    assert_eq!(v["configure_unknown_policy_retval"], 1);
    let itf = v["interfaces"].as_array().unwrap();
    assert_eq!(itf.len(), 2);
    assert_eq!(itf[1]["name"], "host-papi0");
    assert_eq!(itf[1]["tag"], "papi-tag");
    assert_eq!(itf[1]["flags"], 3);

    // What vpp_papi programmed is enforced: TCP/80 from 10.1.0.0/16 only.
    let sw = v["sw_if_index"].as_u64().unwrap() as u32;
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let ok = Packet::tcp(ip("10.1.9.9"), 5555, ip("10.2.0.1"), 80);
    let wrong_port = Packet::tcp(ip("10.1.9.9"), 5555, ip("10.2.0.1"), 81);
    let udp = Packet::udp(ip("10.1.9.9"), 5555, ip("10.2.0.1"), 80);
    assert_eq!(sim.evaluate(sw, Direction::Rx, &ok), Verdict::Allow);
    assert_eq!(sim.evaluate(sw, Direction::Rx, &wrong_port), Verdict::Deny);
    assert_eq!(sim.evaluate(sw, Direction::Rx, &udp), Verdict::Deny);
    assert_eq!(sim.calls("sockclnt_delete"), 1);
}
