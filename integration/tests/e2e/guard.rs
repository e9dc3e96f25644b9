//! The protocol guard end to end: a Calico model compiled, programmed by the reconciler
//! through the VPP API into the simulator, and packets of every kind sent across it. npol
//! never sees IPIP, GRE or non-echo ICMP; the guard ACL must stop them where Calico would,
//! without touching what npol polices.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use calico_model::{
    Action, MacAddr, Model, Policy, PolicyId, Profile, ProfileId, Rule, TierDefaultAction,
    TierInfo, WorkloadEndpoint, WorkloadEndpointId,
};
use calico_vpp_driver::dataplane::vpp::{VppConfig, VppDataplane};
use calico_vpp_driver::reconcile::{Reconciler, ReconcilerConfig};
use npol::{Packet, Verdict};
use vpp_sim::{Enforcement, Simulator};

const A: &str = "10.0.0.1";
const B: &str = "10.0.0.2";
const C: &str = "10.0.0.3";
const REMOTE: &str = "192.168.9.9";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn endpoint(
    name: &str,
    addr: &str,
    n: u8,
    tiers: Vec<TierInfo>,
    profiles: &[&str],
) -> WorkloadEndpoint {
    WorkloadEndpoint {
        active: true,
        name: name.into(),
        mac: Some(MacAddr([2, 0, 0, 0, 0, n])),
        profile_ids: profiles.iter().map(|p| ProfileId((*p).into())).collect(),
        ipv4_nets: vec![format!("{addr}/32").parse().unwrap()],
        ipv6_nets: Vec::new(),
        tiers,
        ipv4_nat: Vec::new(),
        ipv6_nat: Vec::new(),
        allow_spoofed_source_prefixes: Vec::new(),
        annotations: BTreeMap::new(),
        invalid: None,
    }
}

fn wep(pod: &str) -> WorkloadEndpointId {
    WorkloadEndpointId {
        orchestrator_id: "k8s".into(),
        workload_id: format!("ns/{pod}"),
        endpoint_id: "eth0".into(),
    }
}

/// Pod a: a tier allowing TCP both ways (everything else default-denied by the tier).
/// Pod b: only the namespace profile, which allows everything (as Kubernetes' `kns.*`).
/// Pod c: no policy, no profile: default deny.
fn model() -> Model {
    let allow_tcp = Rule {
        action: Some(Action::Allow),
        protocol: Some(6),
        ..Rule::default()
    };
    let allow_all = Rule {
        action: Some(Action::Allow),
        ..Rule::default()
    };
    let pid = PolicyId {
        name: "allow-tcp".into(),
        namespace: "ns".into(),
        kind: "NetworkPolicy".into(),
    };
    let mut m = Model::default();
    m.policies.insert(
        pid.clone(),
        Policy {
            tier: "default".into(),
            namespace: "ns".into(),
            inbound_rules: vec![allow_tcp.clone()],
            outbound_rules: vec![allow_tcp],
            ..Policy::default()
        },
    );
    m.profiles.insert(
        ProfileId("kns.ns".into()),
        Profile {
            inbound_rules: vec![allow_all.clone()],
            outbound_rules: vec![allow_all],
            invalid: None,
        },
    );
    let tier = TierInfo {
        name: "default".into(),
        ingress_policies: vec![pid.clone()],
        egress_policies: vec![pid],
        default_action: TierDefaultAction::Deny,
    };
    m.workload_endpoints
        .insert(wep("a"), endpoint("cali-a", A, 1, vec![tier], &[]));
    m.workload_endpoints
        .insert(wep("b"), endpoint("cali-b", B, 2, vec![], &["kns.ns"]));
    m.workload_endpoints
        .insert(wep("c"), endpoint("cali-c", C, 3, vec![], &[]));
    m
}

struct Setup {
    sim: Simulator,
    a: u32,
    b: u32,
    c: u32,
    uplink: u32,
    _dir: tempfile::TempDir,
}

async fn programmed() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(dir.path().join("api.sock")).await.unwrap();
    let [a, b, c, uplink] = sim.with_state_mut(|s| {
        ["cali-a", "cali-b", "cali-c", "uplink"].map(|tag| {
            let i = s.create_tap(u32::MAX, None, None, tag).unwrap();
            s.set_flags(i, true);
            s.set_link(i, true);
            i
        })
    });
    // Traffic from outside enters by an uplink with cnat (so TX policies run) and no ACL.
    sim.with_state_mut(|s| s.cnat_enable(uplink, true));
    let dp = VppDataplane::new(VppConfig {
        socket: sim.socket_path().to_path_buf(),
        request_timeout: Duration::from_secs(5),
        ..VppConfig::default()
    });
    let mut r = Reconciler::new(
        dp,
        ReconcilerConfig {
            state_dir: Some(dir.path().to_path_buf()),
            ..ReconcilerConfig::default()
        },
    );
    r.connect().await.unwrap();
    let compiled = calico_compile::compile(&model());
    let report = r.apply(&compiled.desired).await.unwrap();
    assert_eq!(report.failed_ops, 0);
    assert_eq!(r.apply(&compiled.desired).await.unwrap().writes, 0);
    Setup {
        sim,
        a,
        b,
        c,
        uplink,
        _dir: dir,
    }
}

fn gre(src: &str, dst: &str) -> Packet {
    Packet::l4(47, ip(src), 0, ip(dst), 0)
}

fn ipip(src: &str, dst: &str) -> Packet {
    Packet::l4(4, ip(src), 0, ip(dst), 0)
}

#[tokio::test]
async fn gre_ipip_and_icmp_queries_from_a_policed_pod_are_dropped_by_the_guard() {
    let s = programmed().await;
    for pkt in [gre(A, B), ipip(A, B), Packet::icmp(ip(A), ip(B), 13, 0, 1)] {
        let f = s.sim.evaluate_flow(s.a, s.b, &pkt);
        assert_eq!(f.verdict, Verdict::Deny, "{pkt:?}");
        assert!(
            matches!(f.rx, Enforcement::AclDenied { .. }),
            "{pkt:?}: {f:?}"
        );
    }
    // What the policy allows still passes, through the guard and npol.
    let tcp = Packet::tcp(ip(A), 40000, ip(B), 80);
    let f = s.sim.evaluate_flow(s.a, s.b, &tcp);
    assert_eq!(f.verdict, Verdict::Allow, "{f:?}");
    assert_eq!(
        f.rx,
        Enforcement::Evaluated {
            verdict: Verdict::Allow
        }
    );
    // And what it does not is still npol's to deny.
    let udp = Packet::udp(ip(A), 40000, ip(B), 53);
    let f = s.sim.evaluate_flow(s.a, s.b, &udp);
    assert_eq!(
        f.rx,
        Enforcement::Evaluated {
            verdict: Verdict::Deny
        }
    );
}

#[tokio::test]
async fn default_deny_pod_neither_sends_nor_receives_gre() {
    let s = programmed().await;
    let out = s.sim.evaluate_flow(s.c, s.b, &gre(C, B));
    assert_eq!(out.verdict, Verdict::Deny);
    assert!(matches!(out.rx, Enforcement::AclDenied { .. }));
    let into = s.sim.evaluate_flow(s.uplink, s.c, &gre(REMOTE, C));
    assert_eq!(into.verdict, Verdict::Deny);
    assert!(matches!(into.tx, Some(Enforcement::AclDenied { .. })));
    // Echo is npol's: denied by the default deny, not by the guard.
    let ping = Packet::icmp(ip(REMOTE), ip(C), 8, 0, 7);
    let f = s.sim.evaluate_flow(s.uplink, s.c, &ping);
    assert_eq!(
        f.tx,
        Some(Enforcement::Evaluated {
            verdict: Verdict::Deny
        })
    );
}

/// The gap the guard closes: with the ACLs taken off, npol's configuration alone lets GRE
/// through a default-deny pod.
#[tokio::test]
async fn without_the_guard_npol_alone_lets_gre_through() {
    let s = programmed().await;
    s.sim.with_state_mut(|st| {
        for i in [s.b, s.c] {
            assert_eq!(st.acl_set_interface_list(i, 0, &[]), 0);
        }
    });
    let f = s.sim.evaluate_flow(s.c, s.b, &gre(C, B));
    assert_eq!(f.verdict, Verdict::Allow, "{f:?}");
    let tcp = s
        .sim
        .evaluate_flow(s.c, s.b, &Packet::tcp(ip(C), 1, ip(B), 80));
    assert_eq!(tcp.verdict, Verdict::Deny, "npol still denies TCP");
}

/// Stricter than Felix where a profile allows everything: GRE into pod b is dropped, and the
/// compile report says so on the profile's rule.
#[tokio::test]
async fn allow_all_profile_is_stricter_for_gre_and_reported() {
    let s = programmed().await;
    let f = s.sim.evaluate_flow(s.uplink, s.b, &gre(REMOTE, B));
    assert_eq!(f.verdict, Verdict::Deny);
    let tcp = s
        .sim
        .evaluate_flow(s.uplink, s.b, &Packet::tcp(ip(REMOTE), 1, ip(B), 80));
    assert_eq!(tcp.verdict, Verdict::Allow);
    let report = calico_compile::compile(&model()).report;
    let notes = report.of(&calico_compile::Subject::Profile(ProfileId(
        "kns.ns".into(),
    )));
    assert!(notes
        .iter()
        .any(|n| matches!(n, calico_compile::Note::GuardStricter { .. })));
}

#[tokio::test]
async fn neighbour_discovery_and_icmp_errors_cross_the_guard() {
    let s = programmed().await;
    let st = |f: vpp_sim::FlowVerdict| f.rx;
    let unreachable = Packet::icmp(ip(A), ip(B), 3, 3, 0);
    assert!(!matches!(
        st(s.sim.evaluate_flow(s.a, s.b, &unreachable)),
        Enforcement::AclDenied { .. }
    ));
    s.sim.with_state(|x| {
        let ns = Packet::icmp(ip("fe80::1"), ip("fe80::2"), 135, 0, 0);
        assert_eq!(x.acl_check(s.a, true, &ns).unwrap().verdict, Verdict::Allow);
        let ra = Packet::icmp(ip("fe80::1"), ip("fe80::2"), 134, 0, 0);
        assert_eq!(x.acl_check(s.a, true, &ra).unwrap().verdict, Verdict::Deny);
        assert_eq!(
            x.acl_check(s.a, false, &ra).unwrap().verdict,
            Verdict::Allow
        );
    });
}
