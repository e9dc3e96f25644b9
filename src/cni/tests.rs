//! The CNI server end to end on the simulator, for both back-ends: an `Add` through the
//! agent (Felix's pools checked), the reconciler building VPP's side (dark until Felix's
//! endpoint binds), the endpoint binding with the pod's MAC from the veth, status up to
//! Felix, idempotent `Add`, `Del` (also of unknown pods), and refusals that leave nothing.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use calico_model::PodBackend;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::agent::Agent;
use crate::dataplane::vpp::VppDataplane;
use crate::felix::codec::{encode_to_dataplane, FrameDecoder};
use crate::felix::proto as fp;
use crate::felix::proto::from_dataplane::Payload as Out;
use crate::felix::proto::to_dataplane::Payload;
use crate::felix::script;
use crate::hook::{vpp_config, VppHook};
use crate::logging::LogControl;
use crate::reconcile::{Reconciler, ReconcilerConfig};

const NAME: &str = "cali0123456789a";

struct Node {
    sim: vpp_sim::Simulator,
    felix_in: DuplexStream,
    felix_out: DuplexStream,
    buf: BytesMut,
    server: CniServer,
    net: Arc<FakeNetwork>,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn start(backend: PodBackend) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let sim = vpp_sim::Simulator::start(&path).await.unwrap();
        sim.with_state_mut(|s| {
            let up = s.create_tap(u32::MAX, None, None, "").unwrap();
            s.add_del_address(up, true, false, "192.168.0.1/24".parse().unwrap());
            s.set_flags(up, true);
        });
        let reconciler = Reconciler::new(
            VppDataplane::new(crate::dataplane::vpp::VppConfig {
                tun_pods: true,
                ..vpp_config(&path)
            }),
            ReconcilerConfig {
                uplink: Some("tap0".into()),
                ..ReconcilerConfig::default()
            },
        );
        let (status_tx, status_rx) = crate::status::channel();
        let (hook, monitor) = VppHook::start(reconciler, status_tx);
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let mut agent = Agent::new(Box::new(hook), status_rx, LogControl::detached(), 1 << 20)
            .with_pods(rx, PodBook::default());
        let (felix_in, driver_in) = tokio::io::duplex(1 << 20);
        let (driver_out, felix_out) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move { agent.run_session(driver_in, driver_out).await });
        let net = Arc::new(FakeNetwork::default());
        let server = CniServer::new(
            tx,
            monitor.summary.clone(),
            net.clone(),
            PodSettings {
                backend,
                default_mtu: 1450,
            },
            Duration::from_secs(5),
        );
        let mut node = Node {
            sim,
            felix_in,
            felix_out,
            buf: BytesMut::new(),
            server,
            net,
            _dir: dir,
        };
        node.felix(&[
            script::envelope(Payload::ConfigUpdate(fp::ConfigUpdate {
                config: script::labels(&[("FelixHostname", "node1")]),
                ..Default::default()
            })),
            script::envelope(Payload::IpamPoolUpdate(fp::IpamPoolUpdate {
                id: "10.71.0.0-16".into(),
                pool: Some(fp::IpamPool {
                    cidr: "10.71.0.0/16".into(),
                    masquerade: false,
                    ipip_mode: "never".into(),
                    vxlan_mode: "never".into(),
                    allowed_uses: vec!["Workload".into()],
                }),
            })),
            script::envelope(Payload::ActiveProfileUpdate(fp::ActiveProfileUpdate {
                id: Some(fp::ProfileId {
                    name: "allow".into(),
                }),
                profile: Some(fp::Profile {
                    inbound_rules: vec![fp::Rule {
                        action: "allow".into(),
                        ..Default::default()
                    }],
                    outbound_rules: vec![fp::Rule {
                        action: "allow".into(),
                        ..Default::default()
                    }],
                }),
            })),
            script::in_sync(),
        ])
        .await;
        // Felix's pools are in the model once the first batch reached the reconciler.
        let mut summary = monitor.summary.clone();
        tokio::time::timeout(Duration::from_secs(10), summary.wait_for(|s| s.inputs >= 1))
            .await
            .expect("Felix's snapshot applied")
            .expect("the reconciler runs");
        node
    }

    async fn felix(&mut self, msgs: &[fp::ToDataplane]) {
        let mut bytes = Vec::new();
        for m in msgs {
            bytes.extend_from_slice(&encode_to_dataplane(m));
        }
        self.felix_in.write_all(&bytes).await.unwrap();
    }

    /// The status Felix hears for the pod's endpoint next.
    async fn status(&mut self) -> String {
        let d = FrameDecoder::new(1 << 20);
        loop {
            if let Some(f) = d.decode(&mut self.buf).unwrap() {
                if let Some(Out::WorkloadEndpointStatusUpdate(u)) =
                    fp::FromDataplane::decode(f).unwrap().payload
                {
                    return u.status.unwrap().status;
                }
                continue;
            }
            let n = self.felix_out.read_buf(&mut self.buf).await.unwrap();
            assert!(n > 0, "the driver closed its output");
        }
    }

    fn endpoint(&self) -> fp::ToDataplane {
        script::envelope(Payload::WorkloadEndpointUpdate(
            fp::WorkloadEndpointUpdate {
                id: Some(fp::WorkloadEndpointId {
                    orchestrator_id: "k8s".into(),
                    workload_id: "default/p1".into(),
                    endpoint_id: "eth0".into(),
                }),
                endpoint: Some(fp::WorkloadEndpoint {
                    state: "active".into(),
                    name: NAME.into(),
                    // The Kubernetes datastore sends no MAC.
                    mac: String::new(),
                    profile_ids: vec!["allow".into()],
                    ipv4_nets: vec!["10.71.0.2/32".into()],
                    ..Default::default()
                }),
            },
        ))
    }

    /// The tags of the ACLs on interface `idx`: (input, output).
    fn acl_tags(&self, idx: u32) -> (Vec<String>, Vec<String>) {
        self.sim.with_state(|s| {
            let tags = |list: Option<&Vec<u32>>| -> Vec<String> {
                list.into_iter()
                    .flatten()
                    .filter_map(|a| s.acl.acls.get(*a).map(|a| a.tag.clone()))
                    .collect()
            };
            (tags(s.acl.input.get(&idx)), tags(s.acl.output.get(&idx)))
        })
    }

    /// (admin up, tag, name) of the pod's VPP interface, if any.
    fn pod_interface(&self) -> Option<(u32, bool, String)> {
        self.sim.with_state(|s| {
            s.interfaces
                .iter()
                .find(|(_, i)| i.tag == NAME)
                .map(|(idx, i)| (idx, i.admin_up, i.name.clone()))
        })
    }
}

fn add_request(netns: &str, address: &str) -> proto::AddRequest {
    proto::AddRequest {
        interface_name: "eth0".into(),
        netns: netns.into(),
        desired_host_interface_name: NAME.into(),
        settings: Some(proto::ContainerSettings {
            allow_ip_forwarding: false,
            mtu: 0,
        }),
        container_ips: vec![proto::IpConfig {
            address: address.into(),
            gateway: "<nil>".into(),
        }],
        container_routes: vec!["0.0.0.0/0".into(), "::/0".into()],
        workload: Some(proto::WorkloadIDs {
            name: "p1".into(),
            namespace: "default".into(),
            ..Default::default()
        }),
        dataplane_options: Default::default(),
    }
}

async fn pod_lifecycle(backend: PodBackend) {
    let mut node = Node::start(backend).await;
    let ns = "/var/run/netns/p1";

    // Refusals leave nothing behind.
    let r = node
        .server
        .add(add_request("/var/run/netns/missing", "10.71.0.2/26"))
        .await;
    assert!(
        !r.successful && r.error_message.contains("does not exist"),
        "{r:?}"
    );
    let r = node.server.add(add_request(ns, "192.168.9.2/24")).await;
    assert!(
        !r.successful && r.error_message.contains("no IP pool"),
        "{r:?}"
    );
    assert!(node.pod_interface().is_none());
    assert!(node.net.calls().is_empty(), "{:?}", node.net.calls());

    let r = node.server.add(add_request(ns, "10.71.0.2/26")).await;
    assert!(r.successful, "{r:?}");
    assert_eq!(r.host_interface_name, NAME);
    let (idx, up, name) = node
        .pod_interface()
        .expect("VPP's side exists when Add returns");
    assert!(up, "up, so VPP drains what the pod sends");
    assert_eq!(
        node.acl_tags(idx),
        (
            vec!["calico-pod-dark".to_string()],
            vec!["calico-pod-dark".to_string()]
        ),
        "dark until Felix's endpoint binds: fail closed"
    );
    match backend {
        PodBackend::Veth => {
            assert_eq!(name, format!("host-{NAME}"));
            assert_eq!(r.container_mac, "02:fe:00:00:00:01");
            assert_eq!(node.net.calls(), vec![format!("create_veth {NAME}")]);
        }
        PodBackend::Tun => {
            assert!(name.starts_with("tun"), "{name}");
            assert_eq!(r.container_mac, "02:00:00:00:00:00");
            assert_eq!(node.net.calls(), vec![format!("configure_tun {NAME}")]);
        }
    }
    // A repeated Add answers the same and builds nothing more.
    let again = node.server.add(add_request(ns, "10.71.0.2/26")).await;
    assert_eq!(again, r);
    assert_eq!(node.net.calls().len(), 1);

    // Felix's endpoint (no MAC) binds: up, and on Ethernet the pod's MAC from the veth is
    // the static neighbour.
    let ep = node.endpoint();
    node.felix(&[ep]).await;
    let status = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let s = node.status().await;
            if s == "up" {
                return s;
            }
        }
    })
    .await
    .expect("Felix hears the endpoint up");
    assert_eq!(status, "up");
    let (idx2, up, _) = node.pod_interface().unwrap();
    assert_eq!(idx2, idx);
    assert!(up);
    let (input, output) = node.acl_tags(idx);
    assert!(
        !input.contains(&"calico-pod-dark".to_string())
            && !output.contains(&"calico-pod-dark".to_string()),
        "the endpoint's guard replaced the dark ACL: {input:?} {output:?}"
    );
    let neighbour = node.sim.with_state(|s| {
        s.neighbors
            .get(&(idx, "10.71.0.2".parse().unwrap()))
            .map(|n| n.mac_bytes)
    });
    match backend {
        PodBackend::Veth => assert_eq!(neighbour, Some([0x02, 0xfe, 0, 0, 0, 1])),
        PodBackend::Tun => assert_eq!(neighbour, None, "no neighbours on a TUN link"),
    }

    // Del removes VPP's side and the veth; a second Del (unknown pod) succeeds.
    let del = proto::DelRequest {
        interface_name: "eth0".into(),
        netns: ns.into(),
        dataplane_options: Default::default(),
    };
    let d = node.server.del(del.clone()).await;
    assert!(d.successful, "{d:?}");
    assert!(node.pod_interface().is_none());
    if backend == PodBackend::Veth {
        assert_eq!(
            node.net.calls().last().unwrap(),
            &format!("delete_veth {NAME}")
        );
    }
    let d = node.server.del(del).await;
    assert!(d.successful, "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn veth_pods_on_the_simulator() {
    pod_lifecycle(PodBackend::Veth).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tun_pods_on_the_simulator() {
    pod_lifecycle(PodBackend::Tun).await;
}
