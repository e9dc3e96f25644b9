//! The operator subcommands of the real binary: `check-vpp` against the simulator (exit 0
//! when compatible, 1 without a VPP) and `demo` (exit 0 when every verdict agrees).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

fn driver_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("CALICO_VPP_DRIVER_BIN") {
            return PathBuf::from(p);
        }
        // target/<profile>/deps/<this test> → target/<profile>
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "-q",
            "-p",
            "calico-vpp-driver",
            "--bin",
            "calico-vpp-driver",
        ])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().unwrap() == "release" {
            cmd.arg("--release");
        }
        assert!(
            cmd.status().unwrap().success(),
            "building the driver failed"
        );
        profile_dir.join("calico-vpp-driver")
    })
}

/// Runs the binary off the async runtime (the simulator serves on it meanwhile).
async fn run(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let bin = driver_bin().clone();
    tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(&args)
            .env_remove("CALICO_VPP_API_SOCKET")
            .env_remove("CALICO_VPP_LOG_LEVEL")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_vpp_against_the_simulator_reports_compatible_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let sim = vpp_sim::Simulator::start(dir.path().join("api.sock"))
        .await
        .unwrap();
    let socket = sim.socket_path().to_str().unwrap().to_string();
    let out = run(&["check-vpp", "--vpp-socket", &socket]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("VPP version: simulator of"), "{t}");
    assert!(t.contains("=> compatible"), "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_vpp_without_a_vpp_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    let out = run(&["check-vpp", "--vpp-socket", socket.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("cannot connect to VPP"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_on_the_simulator_exits_0_with_every_verdict_agreeing() {
    let out = run(&["demo", "--sim"]).await;
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("built-in VPP simulator"), "{t}");
    assert!(t.contains("13/13 verdicts agree"), "{t}");
    assert!(!t.contains('✘'), "{t}");
}

/// Against a real VPP (CALICO_VPP_TEST_VPP_SOCKET; skipped without it) the demo's VPP column
/// is VPP's own `npol match`, every verdict agrees (Calico, VPP, our npol model), and no
/// interface tagged as the demo's is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_on_a_real_vpp_asks_vpp_for_verdicts_and_leaves_nothing_behind() {
    use vpp_bindings::client::{Client, ClientConfig};
    use vpp_bindings::gen::interface::SwInterfaceDump;
    let Some(sock) = std::env::var_os("CALICO_VPP_TEST_VPP_SOCKET") else {
        eprintln!("SKIPPED: real VPP demo test: CALICO_VPP_TEST_VPP_SOCKET is not set");
        return;
    };
    let bin = driver_bin().clone();
    let env_sock = sock.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .arg("demo")
            .env("CALICO_VPP_API_SOCKET", env_sock)
            .env_remove("CALICO_VPP_LOG_LEVEL")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("VPP npol") && t.contains("our npol"), "{t}");
    assert!(
        t.contains("VPP npol vs Calico: 13/13; our npol model vs VPP npol: 13/13"),
        "{t}"
    );
    assert!(t.contains("VPP answers unreadable: 0"), "{t}");
    assert!(t.contains("13/13 verdicts agree"), "{t}");
    assert!(t.contains("Cleaned up"), "{t}");

    let client = Client::connect(
        std::path::Path::new(&sock),
        ClientConfig {
            name: "cli-commands-demo-check".into(),
            ..ClientConfig::default()
        },
    )
    .await
    .unwrap();
    let left: Vec<String> = client
        .dump(&SwInterfaceDump::default())
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.tag)
        .filter(|tag| tag.starts_with("calidemo"))
        .collect();
    let _ = client.close().await;
    assert!(left.is_empty(), "demo interfaces left in VPP: {left:?}");
}
