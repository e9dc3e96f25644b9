//! The real driver binary, started as Felix starts it, against a real VPP with real packets:
//! two network namespaces joined to VPP by af_packet interfaces are the two pods (endpoint
//! names `rv1-host` / `rv2-host`, which the driver binds to VPP's `host-rv1-host` /
//! `host-rv2-host`). A TCP connection the policy allows succeeds, one it denies fails, and
//! IP set deltas, policy changes and a driver restart keep it so.
//!
//! Needs `CALICO_VPP_TEST_VPP_SOCKET` (VPP's API socket) and the namespaces `rv1` (10.10.1.2)
//! and `rv2` (10.10.2.2) routed through VPP; skips, saying why, otherwise. It leaves VPP as it
//! found it: everything the driver created is removed through Felix, then the interfaces'
//! npol configuration, cnat feature and ACLs are reset directly.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use calico_vpp_driver::dataplane::vpp::{VppConfig, VppDataplane};
use calico_vpp_driver::dataplane::{Dataplane, Op};
use calico_vpp_driver::felix::proto;
use calico_vpp_driver::felix::proto::to_dataplane::Payload;
use calico_vpp_driver::felix::script::{self, envelope};
use common::driver::{wait_until, Driver};
use common::rig::ids_of;

const ENV: &str = "CALICO_VPP_TEST_VPP_SOCKET";
const CONVERGE: Duration = Duration::from_secs(20);
const ALLOWED_PORT: u16 = 18080;
const DENIED_PORT: u16 = 19090;
const SERVER: &str = "10.10.2.2";
const CLIENT: &str = "10.10.1.2";
const PYTHON: &str = "/usr/bin/python3";

/// The real VPP's socket, or why the test cannot run.
fn real_vpp() -> Result<PathBuf, String> {
    let sock = std::env::var_os(ENV).ok_or(format!("{ENV} is not set"))?;
    let sock = PathBuf::from(sock);
    if !sock.exists() {
        return Err(format!("{ENV}={} does not exist", sock.display()));
    }
    for ns in ["rv1", "rv2"] {
        let ok = Command::new("ip")
            .args(["netns", "exec", ns, "true"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("network namespace {ns} is not usable"));
        }
    }
    Ok(sock)
}

fn mac_of(ns: &str, dev: &str) -> String {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "cat",
            &format!("/sys/class/net/{dev}/address"),
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A TCP server in `rv2` accepting (and closing) connections on both test ports.
struct Server(Child);

impl Server {
    fn start() -> Server {
        let code = format!(
            "import socket,select\n\
             ls=[]\n\
             for p in ({ALLOWED_PORT},{DENIED_PORT}):\n\
             \x20 s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             \x20 s.bind(('{SERVER}',p)); s.listen(64); ls.append(s)\n\
             while True:\n\
             \x20 r,_,_=select.select(ls,[],[])\n\
             \x20 for s in r:\n\
             \x20   c,_=s.accept(); c.close()\n"
        );
        let child = Command::new("ip")
            .args(["netns", "exec", "rv2", PYTHON, "-c", &code])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Probes until `want` holds; prints and records the outcome.
fn check(failures: &mut Vec<String>, what: &str, port: u16, want: bool) {
    let ok = eventually_connects(port, want);
    eprintln!(
        "real VPP: {what}: port {port} {} -> {}",
        if want { "connects" } else { "blocked" },
        if ok { "PASS" } else { "FAIL" }
    );
    if !ok {
        failures.push(what.to_string());
    }
}

/// One new TCP connection from `rv1` to the server: did the handshake complete?
fn connects(port: u16) -> bool {
    let code =
        format!("import socket\nsocket.create_connection(('{SERVER}',{port}),timeout=1.2).close()");
    Command::new("ip")
        .args(["netns", "exec", "rv1", PYTHON, "-c", &code])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Polls with new connections until the outcome is `want` (policy changes apply to new
/// flows once programmed), bounded; then the next three new connections must agree, so that
/// one lost SYN cannot pass for a deny.
fn eventually_connects(port: u16, want: bool) -> bool {
    wait_until(CONVERGE, || connects(port) == want) && (0..3).all(|_| connects(port) == want)
}

fn endpoint(
    name: &str,
    ip: &str,
    mac: &str,
    tiers: Vec<proto::TierInfo>,
) -> proto::WorkloadEndpoint {
    proto::WorkloadEndpoint {
        state: "active".into(),
        name: name.into(),
        mac: mac.into(),
        profile_ids: vec!["kns.rv".into()],
        ipv4_nets: vec![format!("{ip}/32")],
        tiers,
        ..Default::default()
    }
}

fn wep_id(pod: &str) -> proto::WorkloadEndpointId {
    proto::WorkloadEndpointId {
        orchestrator_id: "k8s".into(),
        workload_id: format!("rv/{pod}"),
        endpoint_id: "eth0".into(),
    }
}

fn policy_id() -> proto::PolicyId {
    proto::PolicyId {
        name: "default.server-ingress".into(),
        namespace: "rv".into(),
        kind: "NetworkPolicy".into(),
    }
}

/// rv2 admits TCP to the allowed port from the members of `s:clients`; nothing else.
fn server_policy(port: u16) -> proto::Policy {
    proto::Policy {
        namespace: "rv".into(),
        tier: "default".into(),
        inbound_rules: vec![proto::Rule {
            action: "allow".into(),
            protocol: Some(proto::Protocol {
                number_or_name: Some(proto::protocol::NumberOrName::Name("TCP".into())),
            }),
            src_ip_set_ids: vec!["s:clients".into()],
            dst_ports: vec![proto::PortRange {
                first: port as i32,
                last: port as i32,
            }],
            rule_id: "allow-clients".into(),
            ..Default::default()
        }],
        outbound_rules: vec![proto::Rule {
            action: "allow".into(),
            rule_id: "out".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn snapshot() -> Vec<proto::ToDataplane> {
    let tiers = vec![proto::TierInfo {
        name: "default".into(),
        ingress_policies: vec![policy_id()],
        egress_policies: vec![policy_id()],
        default_action: "Deny".into(),
    }];
    let allow = |id: &str| proto::Rule {
        action: "allow".into(),
        rule_id: id.into(),
        ..Default::default()
    };
    vec![
        envelope(Payload::ConfigUpdate(proto::ConfigUpdate {
            config: script::labels(&[("FelixHostname", "rv"), ("ReportingIntervalSecs", "30")]),
            ..Default::default()
        })),
        envelope(Payload::IpsetUpdate(proto::IpSetUpdate {
            id: "s:clients".into(),
            members: vec![format!("{CLIENT}/32")],
            r#type: proto::ip_set_update::IpSetType::Ip as i32,
        })),
        envelope(Payload::ActiveProfileUpdate(proto::ActiveProfileUpdate {
            id: Some(proto::ProfileId {
                name: "kns.rv".into(),
            }),
            profile: Some(proto::Profile {
                inbound_rules: vec![allow("in")],
                outbound_rules: vec![allow("out")],
            }),
        })),
        envelope(Payload::ActivePolicyUpdate(proto::ActivePolicyUpdate {
            id: Some(policy_id()),
            policy: Some(server_policy(ALLOWED_PORT)),
        })),
        envelope(Payload::WorkloadEndpointUpdate(
            proto::WorkloadEndpointUpdate {
                id: Some(wep_id("client")),
                endpoint: Some(endpoint(
                    "rv1-host",
                    CLIENT,
                    &mac_of("rv1", "rv1-ns"),
                    vec![],
                )),
            },
        )),
        envelope(Payload::WorkloadEndpointUpdate(
            proto::WorkloadEndpointUpdate {
                id: Some(wep_id("server")),
                endpoint: Some(endpoint(
                    "rv2-host",
                    SERVER,
                    &mac_of("rv2", "rv2-ns"),
                    tiers,
                )),
            },
        )),
        script::in_sync(),
    ]
}

fn clients_delta(add: &[&str], remove: &[&str]) -> proto::ToDataplane {
    envelope(Payload::IpsetDeltaUpdate(proto::IpSetDeltaUpdate {
        id: "s:clients".into(),
        added_members: add.iter().map(|a| format!("{a}/32")).collect(),
        removed_members: remove.iter().map(|a| format!("{a}/32")).collect(),
    }))
}

fn driver(sock: &std::path::Path, state: &std::path::Path) -> Driver {
    Driver::spawn(&[
        ("CALICO_VPP_DATAPLANE", "vpp"),
        ("CALICO_VPP_API_SOCKET", sock.to_str().unwrap()),
        ("CALICO_VPP_STATE_DIR", state.to_str().unwrap()),
    ])
}

/// Removes everything through Felix (the driver prunes what it created), then puts the two
/// interfaces back as they were before the test: no npol policy, no cnat, no ACL.
fn clean_up(mut d: Driver, sock: &std::path::Path, state: &std::path::Path) {
    d.send(&[
        envelope(Payload::WorkloadEndpointRemove(
            proto::WorkloadEndpointRemove {
                id: Some(wep_id("server")),
            },
        )),
        envelope(Payload::WorkloadEndpointRemove(
            proto::WorkloadEndpointRemove {
                id: Some(wep_id("client")),
            },
        )),
        envelope(Payload::ActivePolicyRemove(proto::ActivePolicyRemove {
            id: Some(policy_id()),
        })),
        envelope(Payload::ActiveProfileRemove(proto::ActiveProfileRemove {
            id: Some(proto::ProfileId {
                name: "kns.rv".into(),
            }),
        })),
        envelope(Payload::IpsetRemove(proto::IpSetRemove {
            id: "s:clients".into(),
        })),
    ]);
    d.wait_status("rv/server", None, CONVERGE);
    d.wait_status("rv/client", None, CONVERGE);
    std::thread::sleep(Duration::from_millis(500));
    let _ = d.stop();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut dp = VppDataplane::new(VppConfig {
            socket: sock.to_path_buf(),
            request_timeout: Duration::from_secs(5),
        });
        dp.connect().await.unwrap();
        let ifs = dp.interfaces().await.unwrap();
        let mut ops = Vec::new();
        for name in ["host-rv1-host", "host-rv2-host"] {
            let Some(i) = ifs.iter().find(|i| i.name == name) else {
                continue;
            };
            let open = npol::InterfaceConfig {
                rx_policies: vec![],
                tx_policies: vec![],
                profiles: vec![],
                invert_rx_tx: false,
                policy_default_rx: npol::PolicyDefault::Allow,
                policy_default_tx: npol::PolicyDefault::Allow,
                profile_default_rx: npol::PolicyDefault::Allow,
                profile_default_tx: npol::PolicyDefault::Allow,
            };
            ops.push(Op::ConfigurePolicies {
                sw_if_index: i.sw_if_index,
                config: open,
            });
            ops.push(Op::AclInterfaceSet {
                sw_if_index: i.sw_if_index,
                input: vec![],
                output: vec![],
            });
            ops.push(Op::CnatFeature {
                sw_if_index: i.sw_if_index,
                enable: false,
            });
        }
        // Objects the driver still owns (it keeps node-wide ones, such as the guard ACLs and
        // the local-host set, while Felix is connected), users before what they use.
        if let Some(p) = common::rig::persisted(state) {
            let r = &p.realized;
            ops.extend(r.policies.values().map(|v| Op::PolicyDelete { id: v.id }));
            ops.extend(
                r.orphans
                    .policies
                    .iter()
                    .map(|id| Op::PolicyDelete { id: *id }),
            );
            ops.extend(r.rules.values().map(|v| Op::RuleDelete { id: v.id }));
            ops.extend(r.orphans.rules.iter().map(|id| Op::RuleDelete { id: *id }));
            ops.extend(r.ipsets.values().map(|v| Op::IpSetDelete { set: v.id }));
            ops.extend(
                r.orphans
                    .ipsets
                    .iter()
                    .map(|id| Op::IpSetDelete { set: *id }),
            );
            ops.extend(r.acls.values().map(|v| Op::AclDelete { index: v.id }));
        }
        for r in dp.execute(ops).await.unwrap() {
            if let Err(e) = r {
                eprintln!("clean-up: {e}");
            }
        }
    });
}

#[test]
fn real_vpp_allows_what_policy_allows_and_denies_the_rest() {
    let sock = match real_vpp() {
        Ok(s) => s,
        Err(why) => {
            eprintln!("SKIPPED: real VPP test: {why}");
            return;
        }
    };
    let _server = Server::start();
    // Before the driver: VPP forwards everything (the rig works).
    if !eventually_connects(ALLOWED_PORT, true) || !connects(DENIED_PORT) {
        eprintln!("SKIPPED: real VPP test: rv1 cannot reach {SERVER} through VPP without policy");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut d = driver(&sock, &state);
    d.send(&snapshot());
    d.wait_status("rv/client", Some("up"), CONVERGE);
    d.wait_status("rv/server", Some("up"), CONVERGE);

    let mut failures = Vec::new();
    check(&mut failures, "snapshot: allowed port", ALLOWED_PORT, true);
    check(&mut failures, "snapshot: other port", DENIED_PORT, false);

    // The client leaves the IP set: denied; back in: allowed.
    d.send(&[clients_delta(&["10.10.1.99"], &[CLIENT])]);
    check(
        &mut failures,
        "client removed from the IP set",
        ALLOWED_PORT,
        false,
    );
    d.send(&[clients_delta(&[CLIENT], &[])]);
    check(
        &mut failures,
        "client back in the IP set",
        ALLOWED_PORT,
        true,
    );

    // The policy moves to the other port.
    d.send(&[envelope(Payload::ActivePolicyUpdate(
        proto::ActivePolicyUpdate {
            id: Some(policy_id()),
            policy: Some(server_policy(DENIED_PORT)),
        },
    ))]);
    check(
        &mut failures,
        "policy now names the other port",
        DENIED_PORT,
        true,
    );
    check(
        &mut failures,
        "policy no longer names the first port",
        ALLOWED_PORT,
        false,
    );

    // Felix restarts: the new driver adopts its state file and keeps every object.
    let ids = wait_until(CONVERGE, || common::rig::persisted(&state).is_some())
        .then(|| ids_of(&common::rig::persisted(&state).unwrap()))
        .unwrap();
    assert_eq!(d.stop().code(), Some(0));
    let mut d = driver(&sock, &state);
    let mut stream = snapshot();
    stream.insert(
        stream.len() - 1,
        envelope(Payload::ActivePolicyUpdate(proto::ActivePolicyUpdate {
            id: Some(policy_id()),
            policy: Some(server_policy(DENIED_PORT)),
        })),
    );
    d.send(&stream);
    d.wait_status("rv/server", Some("up"), CONVERGE);
    std::thread::sleep(Duration::from_millis(300));
    let same_ids = ids_of(&common::rig::persisted(&state).unwrap()) == ids;
    eprintln!(
        "real VPP: driver restart keeps every object id -> {}",
        if same_ids { "PASS" } else { "FAIL" }
    );
    if !same_ids {
        failures.push("driver restart changed object ids".into());
    }
    check(
        &mut failures,
        "after driver restart: allowed port",
        DENIED_PORT,
        true,
    );
    check(
        &mut failures,
        "after driver restart: other port",
        ALLOWED_PORT,
        false,
    );

    let log = d.log();
    clean_up(d, &sock, &state);
    let restored = eventually_connects(ALLOWED_PORT, true);
    eprintln!(
        "real VPP: clean-up restores plain forwarding -> {}",
        if restored { "PASS" } else { "FAIL" }
    );
    assert!(failures.is_empty(), "failed: {failures:?}\nlog:\n{log}");
    assert!(restored, "VPP not restored after the test");
}
