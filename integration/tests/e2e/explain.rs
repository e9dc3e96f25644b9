//! `calico-vpp-driver explain` against a running driver (the real binary, as Felix starts
//! it, programming the simulator): the answer names what decides each direction, agrees
//! with Calico's reference on Felix's model and with the compiled objects, and the admin
//! socket is root-only.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use calico_compile::explain::FlowExplanation;
use calico_compile::{reference, CalicoDirection};
use calico_model::WorkloadEndpointId;
use calico_vpp_driver::admin::AdminReply;
use calico_vpp_driver::felix::script::{self, ClusterShape};
use common::driver::driver_bin;
use common::rig::Rig;
use npol::{Packet, Verdict};

const CONVERGE: Duration = Duration::from_secs(30);

fn shape() -> ClusterShape {
    ClusterShape {
        namespaces: 2,
        pods: 6,
        policies: 6,
        tiers: 2,
        ..ClusterShape::default()
    }
}

fn explain(sock: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(driver_bin())
        .arg("explain")
        .arg("--admin-socket")
        .arg(sock)
        .args(args)
        .env_remove("CALICO_VPP_LOG_LEVEL")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn wid(i: usize) -> WorkloadEndpointId {
    let id = script::workload_id(i, shape().namespaces);
    WorkloadEndpointId {
        orchestrator_id: id.orchestrator_id,
        workload_id: id.workload_id,
        endpoint_id: id.endpoint_id,
    }
}

#[test]
fn explain_answers_as_calico_decides_and_the_compiled_objects_agree() {
    let rig = Rig::new();
    let shape = shape();
    rig.add_pod_taps(shape.pods);
    let admin = rig.dir.path().join("admin.sock");
    let mut d = rig.driver_with(&[("CALICO_VPP_ADMIN_SOCKET", admin.to_str().unwrap())]);
    let mut stream = script::snapshot(&shape);
    stream.push(script::in_sync());
    d.send(&stream);
    for i in 0..shape.pods {
        d.wait_status(&wid(i).workload_id, Some("up"), CONVERGE);
    }
    let mode = std::fs::metadata(&admin).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "admin socket mode {mode:o}");

    let mut allowed = 0;
    let mut checked = 0;
    for from in 0..shape.pods {
        for to in 0..shape.pods {
            if from == to {
                continue;
            }
            for (proto, port) in [("tcp", 80u16), ("tcp", 8080), ("udp", 53), ("tcp", 443)] {
                let (code, out, err) = explain(
                    &admin,
                    &[
                        "--from",
                        &wid(from).workload_id,
                        "--to",
                        &script::pod_ip(to),
                        "--proto",
                        proto,
                        "--port",
                        &port.to_string(),
                        "--json",
                    ],
                );
                assert_eq!(code, Some(0), "{out}{err}");
                let AdminReply::Explained(e): AdminReply = serde_json::from_str(&out).unwrap()
                else {
                    panic!("not an explanation: {out}");
                };
                let e: FlowExplanation = e;
                // Calico's own verdict on Felix's model, both directions.
                let (src, dst) = (
                    script::pod_ip(from).parse().unwrap(),
                    script::pod_ip(to).parse().unwrap(),
                );
                let p = Packet::l4(if proto == "tcp" { 6 } else { 17 }, src, 40000, dst, port);
                let egress = reference::evaluate(&d.model, &wid(from), CalicoDirection::Egress, &p);
                let ingress = reference::evaluate(&d.model, &wid(to), CalicoDirection::Ingress, &p);
                let want = if egress.verdict == Verdict::Allow && ingress.verdict == Verdict::Allow
                {
                    "allow"
                } else {
                    "deny"
                };
                assert_eq!(e.verdict, want, "{e:#?}");
                assert_eq!(e.directions.len(), 2, "{e:#?}");
                assert!(e.directions.iter().all(|x| x.agree), "{e:#?}");
                assert!(e.directions.iter().all(|x| x.compiled.is_some()), "{e:#?}");
                checked += 1;
                allowed += usize::from(want == "allow");
            }
        }
    }
    assert!(allowed > 0 && allowed < checked, "{allowed}/{checked}");

    // The text form names the deciding rule or default.
    let (code, out, _) = explain(
        &admin,
        &[
            "--from",
            &script::pod_ip(0),
            "--to",
            &wid(1).workload_id,
            "--port",
            "80",
        ],
    );
    assert_eq!(code, Some(0));
    assert!(out.contains("ingress of k8s/"), "{out}");
    assert!(out.contains("egress of k8s/"), "{out}");

    // Bad input: a clear error, exit 1, and the driver keeps answering.
    let (code, _, err) = explain(&admin, &["--from", "nobody/here", "--to", "10.0.0.1"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("nobody/here"), "{err}");
    let (code, _, _) = explain(
        &admin,
        &["--from", &script::pod_ip(0), "--to", &script::pod_ip(1)],
    );
    assert_eq!(code, Some(0));
    let _ = d.stop();
}

#[test]
fn explain_without_a_driver_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = explain(
        &dir.path().join("none.sock"),
        &["--from", "10.0.0.1", "--to", "10.0.0.2"],
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("none.sock"), "{err}");
}

/// Every demo flow (but the forged-source one, which no address names): `explain` gives
/// Calico's verdict and the compiled objects agree with it, on the simulator. (Against a
/// real VPP, `icmp_realvpp` checks VPP's own `npol match` the same way.)
#[test]
fn explain_agrees_on_every_demo_flow() {
    use calico_vpp_driver::demo::scenario;
    let rig = Rig::new();
    let tags: Vec<String> = scenario::PODS.iter().map(|p| p.iface()).collect();
    rig.add_tagged_taps(tags.iter().map(String::as_str));
    let admin = rig.dir.path().join("admin.sock");
    let mut d = rig.driver_with(&[("CALICO_VPP_ADMIN_SOCKET", admin.to_str().unwrap())]);
    d.send(&scenario::snapshot());
    d.send(&scenario::deltas());
    for pod in scenario::PODS {
        d.wait_status(&pod.label(), Some("up"), CONVERGE);
    }
    let wid = |p: &scenario::Pod| WorkloadEndpointId {
        orchestrator_id: "k8s".into(),
        workload_id: p.label(),
        endpoint_id: "eth0".into(),
    };
    let mut asked = 0;
    for flow in scenario::flows().iter().filter(|f| f.spoofing.is_none()) {
        let proto = match flow.proto {
            1 => "icmp".to_string(),
            p => p.to_string(),
        };
        let (code, out, err) = explain(
            &admin,
            &[
                "--from",
                &flow.from.label(),
                "--to",
                flow.to.ip,
                "--proto",
                &proto,
                "--port",
                &flow.port.to_string(),
                "--json",
            ],
        );
        assert_eq!(code, Some(0), "{}: {out}{err}", flow.describe());
        let AdminReply::Explained(e) = serde_json::from_str(&out).unwrap() else {
            panic!("{}: {out}", flow.describe());
        };
        let pkt = flow.packet();
        let calico = |ep, dir| reference::evaluate(&d.model, &ep, dir, &pkt).verdict;
        let want = if calico(wid(&flow.from), CalicoDirection::Egress) == Verdict::Allow
            && calico(wid(&flow.to), CalicoDirection::Ingress) == Verdict::Allow
        {
            "allow"
        } else {
            "deny"
        };
        assert_eq!(e.verdict, want, "{}: {e:#?}", flow.describe());
        assert!(
            e.directions.iter().all(|x| x.agree && x.compiled.is_some()),
            "{}: {e:#?}",
            flow.describe()
        );
        asked += 1;
    }
    assert_eq!(asked, scenario::flows().len() - 1);
    let _ = d.stop();
}
