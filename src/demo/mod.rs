//! `calico-vpp-driver demo`: a scripted Felix session through the real agent path (frames
//! into `Agent::run_session`, the VPP hook, the reconciler, the VPP API socket) into the
//! built-in simulator, or into a real VPP when `CALICO_VPP_API_SOCKET` names one. It prints
//! what was programmed, the endpoint status Felix heard, and flow verdicts next to Calico's
//! reference semantics; against a real VPP the verdicts are VPP's own (`npol match`), beside
//! our npol model's. It creates only interfaces tagged as its own and removes everything it
//! made (unless `--keep`).

mod render;
pub mod scenario;
mod vpp;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use calico_compile::reference::{self, Decision};
use calico_compile::{evaluate_compiled, CalicoDirection, Compiler, DesiredState, InterfaceKey};
use calico_model::{Changes, Model, WorkloadEndpointId};
use npol::Verdict;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;
use vpp_sim::Simulator;

use crate::agent::{ingest_frame, Agent, IngestStats};
use crate::config::DriverConfig;
use crate::dataplane::npol_match::NpolMatchError;
use crate::dataplane::vpp::VppDataplane;
use crate::felix::codec::{encode_to_dataplane, FrameDecoder, DEFAULT_MAX_FRAME_BYTES};
use crate::felix::proto;
use crate::felix::proto::from_dataplane::Payload as Out;
use crate::hook::sim::SimHook;
use crate::hook::vpp_config;
use crate::hook::{ConvergeError, HookMonitor, VppHook};
use crate::logging::LogControl;
use crate::reconcile::{ReconcileSummary, Reconciler, ReconcilerConfig, StateStore};
use crate::status;
use scenario::{Flow, Pod, PODS};

/// Where the demo programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemoTarget {
    /// A fresh in-process simulator.
    Simulator,
    /// A running VPP at this API socket.
    Vpp(PathBuf),
}

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub target: DemoTarget,
    /// Real VPP only: leave the demo's objects in place.
    pub keep: bool,
    /// How long everything may take before the demo gives up.
    pub limit: Duration,
}

impl DemoOptions {
    /// The simulator unless `CALICO_VPP_API_SOCKET` is set and the socket exists.
    pub fn from_env(config: &DriverConfig, keep: bool, force_sim: bool) -> Self {
        let real = std::env::var_os("CALICO_VPP_API_SOCKET").is_some()
            && config.api_socket.exists()
            && !force_sim;
        DemoOptions {
            target: if real {
                DemoTarget::Vpp(config.api_socket.clone())
            } else {
                DemoTarget::Simulator
            },
            keep,
            limit: Duration::from_secs(20),
        }
    }

    pub fn simulator() -> Self {
        DemoOptions {
            target: DemoTarget::Simulator,
            keep: false,
            limit: Duration::from_secs(20),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("simulator: {0}")]
    Sim(#[from] vpp_sim::SimError),
    #[error("VPP: {0}")]
    Vpp(#[from] vpp_bindings::client::ClientError),
    #[error("the driver did not converge: {0}")]
    Converge(#[from] ConvergeError),
    #[error("waiting for endpoint status: {0}")]
    Status(String),
    #[error("the driver's Felix session failed: {0}")]
    Session(String),
    #[error("writing the demo output: {0}")]
    Output(#[from] std::io::Error),
    #[error("setting up the simulator's uplink: retval {0}")]
    Uplink(i32),
}

/// One sample flow's verdicts.
#[derive(Debug, Clone)]
pub struct FlowRow {
    pub flow: Flow,
    /// Calico's semantics (`calico_compile::reference`), source egress then destination
    /// ingress.
    pub expected: Verdict,
    /// What the dataplane decides: the simulator's npol (and ACL) evaluation of what was
    /// programmed, or a real VPP's own answer to `npol match`. An error when VPP's answer
    /// could not be had or read: never counted as agreeing.
    pub dataplane: Result<Verdict, NpolMatchError>,
    /// Real VPP only: our npol evaluator (crates/npol) over the compiled objects, so that a
    /// difference between VPP's npol and our model of it shows.
    pub model: Option<Verdict>,
    /// What decided the reference verdict.
    pub decided_by: String,
}

impl FlowRow {
    /// Calico, the dataplane and (when there is one) our npol model all say the same.
    pub fn agrees(&self) -> bool {
        self.dataplane_agrees() && self.model.is_none_or(|m| m == self.expected)
    }

    /// The dataplane gave a verdict and it is Calico's.
    pub fn dataplane_agrees(&self) -> bool {
        self.dataplane.as_ref().is_ok_and(|v| *v == self.expected)
    }

    /// Our npol model and the dataplane gave the same verdict (false without a model or
    /// without a dataplane verdict).
    pub fn model_agrees_with_dataplane(&self) -> bool {
        matches!((&self.dataplane, self.model), (Ok(d), Some(m)) if *d == m)
    }
}

#[derive(Debug, Clone)]
pub struct DemoOutcome {
    pub flows: Vec<FlowRow>,
    /// Where the simulator sends sample packets (simulator only): (what, path or why not).
    pub paths: Vec<(String, vpp_sim::PathResult)>,
    /// Felix's view: workload id → last status (`None`: removed).
    pub statuses: BTreeMap<String, Option<String>>,
    pub summary: ReconcileSummary,
}

impl DemoOutcome {
    pub fn all_agree(&self) -> bool {
        !self.flows.is_empty() && self.flows.iter().all(FlowRow::agrees)
    }
}

/// Felix's end of the two pipes.
struct FelixEnd {
    input: DuplexStream,
    statuses: watch::Receiver<BTreeMap<String, Option<String>>>,
    sent: usize,
}

impl FelixEnd {
    async fn send(&mut self, msgs: &[proto::ToDataplane]) -> Result<(), DemoError> {
        let mut bytes = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            let mut m = m.clone();
            m.sequence_number = (self.sent + i) as u64;
            bytes.extend_from_slice(&encode_to_dataplane(&m));
        }
        self.sent += msgs.len();
        self.input
            .write_all(&bytes)
            .await
            .map_err(|e| DemoError::Session(e.to_string()))
    }

    async fn wait_statuses(
        &mut self,
        what: &str,
        limit: Duration,
        done: impl Fn(&BTreeMap<String, Option<String>>) -> bool,
    ) -> Result<(), DemoError> {
        let reached = {
            let wait = self.statuses.wait_for(|m| done(m));
            match tokio::time::timeout(limit, wait).await {
                Ok(Ok(_)) => Some(true),
                Ok(Err(_)) => Some(false),
                Err(_) => None,
            }
        };
        match reached {
            Some(true) => Ok(()),
            Some(false) => Err(DemoError::Status("the driver stopped reporting".into())),
            None => Err(DemoError::Status(format!(
                "{what}: not reached within {limit:?}; Felix has {:?}",
                *self.statuses.borrow()
            ))),
        }
    }
}

/// Reads the driver's `FromDataplane` frames and keeps the latest workload status.
async fn read_status(mut out: DuplexStream, tx: watch::Sender<BTreeMap<String, Option<String>>>) {
    let decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES);
    let mut buf = BytesMut::new();
    loop {
        while let Ok(Some(frame)) = decoder.decode(&mut buf) {
            let Ok(msg) = proto::FromDataplane::decode(frame) else {
                continue;
            };
            match msg.payload {
                Some(Out::WorkloadEndpointStatusUpdate(u)) => {
                    let (Some(id), Some(st)) = (u.id, u.status) else {
                        continue;
                    };
                    tx.send_modify(|m| {
                        m.insert(id.workload_id, Some(st.status));
                    });
                }
                Some(Out::WorkloadEndpointStatusRemove(r)) => {
                    let Some(id) = r.id else { continue };
                    tx.send_modify(|m| {
                        m.insert(id.workload_id, None);
                    });
                }
                _ => {}
            }
        }
        match out.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn all_up(pods: &[Pod]) -> impl Fn(&BTreeMap<String, Option<String>>) -> bool + '_ {
    move |m| {
        pods.iter().all(|p| {
            m.get(&p.label())
                .is_some_and(|s| s.as_deref() == Some("up"))
        })
    }
}

fn unique_sim_socket() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "calico-vpp-demo-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// The model the driver builds from the same messages (the pure path), for the reference.
fn model_of(msgs: &[proto::ToDataplane]) -> Model {
    let mut model = Model::default();
    let mut stats = IngestStats::default();
    let mut changes = Changes::default();
    for m in msgs {
        ingest_frame(&m.encode_to_vec(), &mut model, &mut stats, &mut changes);
    }
    model
}

fn wid(p: &Pod) -> WorkloadEndpointId {
    let id = p.workload_id();
    WorkloadEndpointId {
        orchestrator_id: id.orchestrator_id,
        workload_id: id.workload_id,
        endpoint_id: id.endpoint_id,
    }
}

fn short(d: &Decision) -> String {
    match d {
        Decision::Rule {
            tier,
            policy,
            index,
            action,
        } => format!("{tier}/{} rule {index} ({action:?})", policy.name),
        Decision::EndOfTier { tier } => format!("end of tier {tier}"),
        Decision::ProfileRule {
            profile,
            index,
            action,
        } => format!("profile {} rule {index} ({action:?})", profile.0),
        Decision::NoProfileMatched => "no profile matched".into(),
        Decision::SpoofedSource => "forged source address (anti-spoofing)".into(),
        other => format!("{other:?}"),
    }
}

/// Calico's verdict for a new flow: the source's egress, then the destination's ingress.
fn reference_verdict(model: &Model, f: &Flow) -> (Verdict, String) {
    let pkt = f.packet();
    let out = reference::evaluate(model, &wid(&f.from), CalicoDirection::Egress, &pkt);
    if out.verdict == Verdict::Deny {
        return (Verdict::Deny, format!("egress: {}", short(&out.decided_by)));
    }
    let inb = reference::evaluate(model, &wid(&f.to), CalicoDirection::Ingress, &pkt);
    let by = format!("ingress: {}", short(&inb.decided_by));
    (inb.verdict, by)
}

/// npol's verdict on the compiled objects (what was programmed into a real VPP).
fn compiled_verdict(desired: &DesiredState, f: &Flow) -> Verdict {
    let pkt = f.packet();
    let eval = |p: &Pod, dir| {
        evaluate_compiled(desired, &InterfaceKey(p.iface()), dir, &pkt)
            .map_or(Verdict::Deny, |e| e.verdict)
    };
    match eval(&f.from, CalicoDirection::Egress) {
        Verdict::Allow => eval(&f.to, CalicoDirection::Ingress),
        deny => deny,
    }
}

/// The simulator's verdict for the flow entering VPP from the source pod's interface and
/// leaving by the destination's.
/// Makes the simulator's uplink (an interface with the node's address, up) and the
/// operator's default route; its name.
fn sim_uplink(sim: &Simulator) -> Result<String, i32> {
    sim.with_state_mut(|s| {
        let idx = s.create_tap(u32::MAX, None, None, "demo-uplink")?;
        let node: ipnet::IpNet = format!("{}/24", scenario::NODE_IP)
            .parse()
            .map_err(|_| vpp_sim::rv::INVALID_VALUE)?;
        let gateway: std::net::IpAddr = scenario::GATEWAY
            .parse()
            .map_err(|_| vpp_sim::rv::INVALID_VALUE)?;
        for rv in [
            s.add_del_address(idx, true, false, node),
            s.set_flags(idx, true),
            s.set_link(idx, true),
            s.add_route_via("0.0.0.0/0".parse().expect("a prefix"), gateway),
        ] {
            if rv != 0 {
                return Err(rv);
            }
        }
        Ok(s.interface(idx).map(|i| i.name.clone()).unwrap_or_default())
    })
}

/// Where the simulator sends a new flow from the frontend pod: to another node's pod (over
/// VXLAN) and outside the cluster (SNAT).
fn sim_paths(sim: &Simulator) -> Vec<(String, vpp_sim::PathResult)> {
    let from = scenario::FRONTEND;
    let Some(ingress) = sim.with_state(|s| {
        s.interfaces
            .iter()
            .find(|(_, i)| i.tag == from.iface())
            .map(|(idx, _)| idx)
    }) else {
        return Vec::new();
    };
    let src: std::net::IpAddr = from.ip.parse().expect("the scenario's address");
    [
        (scenario::REMOTE_POD, "a pod on node2"),
        (scenario::OUTSIDE, "outside the cluster"),
    ]
    .into_iter()
    .map(|(dst, what)| {
        let dst: std::net::IpAddr = dst.parse().expect("the scenario's address");
        (
            format!("{} -> {dst} ({what})", from.label()),
            sim.with_state(|s| s.forward(ingress, src, dst)),
        )
    })
    .chain(sim_service_path(sim, ingress, src))
    .collect()
}

/// A new TCP connection from the frontend to the cart service's ClusterIP: the backend
/// cnat sends it to, and that backend's path.
fn sim_service_path(
    sim: &Simulator,
    ingress: u32,
    src: std::net::IpAddr,
) -> Option<(String, vpp_sim::PathResult)> {
    let vip: std::net::IpAddr = scenario::CART_VIP.parse().ok()?;
    sim.with_state(|s| {
        let (backend, port) = s.service_backend(6, src, 40000, vip, 80)?;
        Some((
            format!(
                "{} -> {vip}:80 (ClusterIP shop/cart) -> {backend}:{port}",
                scenario::FRONTEND.label()
            ),
            s.forward(ingress, src, backend),
        ))
    })
}

fn sim_verdict(sim: &Simulator, f: &Flow) -> Verdict {
    let idx = |p: &Pod| {
        sim.with_state(|s| {
            s.interfaces
                .iter()
                .find(|(_, i)| i.tag == p.iface())
                .map(|(idx, _)| idx)
        })
    };
    match (idx(&f.from), idx(&f.to)) {
        (Some(i), Some(e)) => sim.evaluate_flow(i, e, &f.packet()).verdict,
        // No interface: nothing to compare; shown as a disagreement unless Calico denies.
        _ => Verdict::Deny,
    }
}

/// The sample flows against a real VPP: Calico's verdict, VPP's own (`npol match` on the
/// demo's interfaces) and our npol model's over the compiled objects.
async fn vpp_flows(
    v: &vpp::DemoVpp,
    model: &Model,
    desired: &DesiredState,
) -> Result<Vec<FlowRow>, DemoError> {
    let interfaces: BTreeMap<String, u32> = v.demo_interfaces().await?.into_iter().collect();
    let configured = v.npol_configured().await;
    let mut rows = Vec::new();
    for flow in scenario::flows() {
        let (expected, decided_by) = reference_verdict(model, &flow);
        let dataplane = match &configured {
            Ok(configured) => v.npol_verdict(&interfaces, configured, &flow).await,
            Err(e) => Err(e.clone()),
        };
        if let Err(e) = &dataplane {
            tracing::warn!(flow = %flow.describe(), error = %e, "no verdict from VPP's npol match");
        }
        rows.push(FlowRow {
            model: Some(compiled_verdict(desired, &flow)),
            dataplane,
            flow,
            expected,
            decided_by,
        });
    }
    Ok(rows)
}

enum Target {
    Sim(Arc<Simulator>),
    Vpp(vpp::DemoVpp, PathBuf),
}

/// Runs the demo and prints its report to `out`.
pub async fn run(options: DemoOptions, out: &mut impl Write) -> Result<DemoOutcome, DemoError> {
    let limit = options.limit;
    let quiet = Duration::from_millis(300);
    let (target, socket, state_dir) = match &options.target {
        DemoTarget::Simulator => {
            let path = unique_sim_socket();
            let sim = Arc::new(Simulator::start(&path).await?);
            (Target::Sim(sim), path, None)
        }
        DemoTarget::Vpp(path) => {
            let v = vpp::DemoVpp::connect(path).await?;
            // A fixed state directory: a later run adopts (and cleans) what a `--keep` run left.
            let dir = std::env::temp_dir().join("calico-vpp-driver-demo");
            (Target::Vpp(v, path.clone()), path.clone(), Some(dir))
        }
    };
    match &target {
        Target::Sim(_) => writeln!(
            out,
            "calico-vpp-driver demo: target = built-in VPP simulator (not a VPP) at {}",
            socket.display()
        )?,
        Target::Vpp(v, p) => writeln!(
            out,
            "calico-vpp-driver demo: target = {} at {}",
            v.version().await?,
            p.display()
        )?,
    }
    if let Target::Vpp(v, _) = &target {
        // Every pod's interface exists (tagged) before the driver starts, frontend-2's too
        // although its endpoint only arrives later: VPP sends no event when a tag is set, so
        // a driver that dumped the interfaces between a loopback's creation and its tagging
        // would keep it untagged, and the endpoint would stay down.
        for pod in PODS {
            v.ensure_pod_interface(&pod).await?;
        }
    }

    // The simulator's uplink: the node's address, the operator's default route.
    let uplink = match &target {
        Target::Sim(sim) => Some(sim_uplink(sim).map_err(DemoError::Uplink)?),
        Target::Vpp(..) => None,
    };

    // The driver, exactly as in fd mode, with Felix's pipes in memory.
    let rc = ReconcilerConfig {
        state_dir: state_dir.clone(),
        min_apply_interval: Duration::from_millis(50),
        uplink,
        ..ReconcilerConfig::default()
    };
    let reconciler = Reconciler::new(VppDataplane::new(vpp_config(&socket)), rc);
    let (status_tx, status_rx) = status::channel();
    let (hook, mut monitor) = VppHook::start(reconciler, status_tx);
    let hook: Box<dyn crate::agent::DataplaneHook> = match &target {
        Target::Sim(sim) => Box::new(SimHook::new(hook, sim.clone())),
        Target::Vpp(..) => Box::new(hook),
    };
    let (felix_in, driver_in) = tokio::io::duplex(1 << 20);
    let (driver_out, felix_out) = tokio::io::duplex(1 << 20);
    let (kube_tx, kube_rx) = tokio::sync::mpsc::channel(4);
    let mut agent = Agent::new(
        hook,
        status_rx,
        LogControl::detached(),
        DEFAULT_MAX_FRAME_BYTES,
    )
    .with_kube(kube_rx);
    let session = tokio::spawn(async move {
        let r = agent.run_session(driver_in, driver_out).await;
        (r, agent)
    });
    let (st_tx, st_rx) = watch::channel(BTreeMap::new());
    tokio::spawn(read_status(felix_out, st_tx));
    let mut felix = FelixEnd {
        input: felix_in,
        statuses: st_rx,
        sent: 0,
    };

    let snapshot = scenario::snapshot();
    let deltas = scenario::deltas();
    felix.send(&snapshot).await?;
    felix
        .wait_statuses("first five pods up", limit, all_up(&PODS[..5]))
        .await?;
    monitor.converged(quiet, limit).await?;
    felix.send(&deltas).await?;
    felix
        .wait_statuses("all pods up", limit, all_up(&PODS))
        .await?;
    // Connectivity (the simulator only: a real VPP demo has no fabric): another node's block
    // over VXLAN, and natOutgoing.
    let connectivity = match &target {
        Target::Sim(_) => scenario::connectivity(),
        Target::Vpp(..) => Vec::new(),
    };
    if !connectivity.is_empty() {
        felix.send(&connectivity).await?;
        // A Kubernetes service, as the driver's own watch would list it.
        let _ = kube_tx
            .send(calico_model::kube::KubeUpdate::Synced(scenario::services()))
            .await;
    }
    let mut summary = monitor.converged(quiet, limit).await?;
    if let Target::Sim(sim) = &target {
        // The service reaches the agent beside Felix's stream: wait until it is programmed.
        let started = std::time::Instant::now();
        while sim.with_state(|s| s.cnat.translations.iter().next().is_none())
            && started.elapsed() < limit
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
            summary = monitor.converged(quiet, limit).await?;
        }
    }

    let all: Vec<proto::ToDataplane> = snapshot
        .iter()
        .chain(&deltas)
        .chain(&connectivity)
        .cloned()
        .collect();
    let mut model = model_of(&all);
    if matches!(target, Target::Sim(_)) {
        model.kube = scenario::services();
        model.kube_synced = true;
    }
    let desired = Compiler::new(&model).desired().clone();
    let flows = match &target {
        Target::Sim(sim) => scenario::flows()
            .into_iter()
            .map(|flow| {
                let (expected, decided_by) = reference_verdict(&model, &flow);
                FlowRow {
                    dataplane: Ok(sim_verdict(sim, &flow)),
                    model: None,
                    flow,
                    expected,
                    decided_by,
                }
            })
            .collect(),
        Target::Vpp(v, _) => vpp_flows(v, &model, &desired).await?,
    };
    let paths = match &target {
        Target::Sim(sim) => sim_paths(sim),
        Target::Vpp(..) => Vec::new(),
    };
    let statuses = felix.statuses.borrow().clone();
    let outcome = DemoOutcome {
        flows,
        paths,
        statuses,
        summary,
    };

    render::session(out, snapshot.len(), deltas.len(), &outcome.summary)?;
    match &target {
        Target::Sim(sim) => render::simulator(out, sim, &desired)?,
        Target::Vpp(..) => render::desired_counts(out, &desired)?,
    }
    render::interfaces(out, &desired)?;
    render::statuses(out, &outcome.statuses)?;
    render::paths(out, &outcome.paths)?;
    render::flows(
        out,
        &outcome.flows,
        match &target {
            Target::Sim(_) => "VPP sim",
            Target::Vpp(..) => "VPP npol",
        },
    )?;

    match target {
        Target::Vpp(v, _) if !options.keep => {
            felix.send(&scenario::teardown()).await?;
            felix
                .wait_statuses("all pods removed", limit, |m| {
                    PODS.iter()
                        .all(|p| m.get(&p.label()).is_some_and(Option::is_none))
                })
                .await?;
            monitor.converged(quiet, limit).await?;
            close_session(felix, session, &mut monitor).await?;
            let acls = state_dir.as_deref().map(our_acls).unwrap_or_default();
            let n = v.delete_demo_interfaces().await?;
            v.delete_acls(&acls).await?;
            if let Some(dir) = &state_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            v.close().await;
            writeln!(
                out,
                "\nCleaned up: the driver removed its npol objects; deleted {n} demo interfaces and {} guard ACLs.",
                acls.len()
            )?;
        }
        Target::Vpp(v, _) => {
            close_session(felix, session, &mut monitor).await?;
            v.close().await;
            writeln!(
                out,
                "\n--keep: the demo's interfaces (tag {}*) and objects stay in VPP; the next demo run adopts and cleans them.",
                scenario::IFACE_PREFIX
            )?;
        }
        Target::Sim(_) => close_session(felix, session, &mut monitor).await?,
    }
    if matches!(options.target, DemoTarget::Vpp(_)) {
        render::agreement(out, &outcome.flows)?;
    }
    let agree = outcome.flows.iter().filter(|f| f.agrees()).count();
    writeln!(
        out,
        "\n{agree}/{} verdicts agree{}",
        outcome.flows.len(),
        if outcome.all_agree() {
            ""
        } else {
            " -- DISAGREEMENT"
        }
    )?;
    Ok(outcome)
}

type Session = tokio::task::JoinHandle<(
    Result<crate::agent::SessionEnd, crate::agent::AgentError>,
    Agent,
)>;

/// Ends Felix's stream, waits for the session, then for the reconciler to stop (the agent,
/// and with it the hook, is dropped).
async fn close_session(
    felix: FelixEnd,
    session: Session,
    monitor: &mut HookMonitor,
) -> Result<(), DemoError> {
    drop(felix);
    let (result, agent) = session
        .await
        .map_err(|e| DemoError::Session(e.to_string()))?;
    result.map_err(|e| DemoError::Session(e.to_string()))?;
    drop(agent);
    // The summary channel closes when the reconciler task has ended.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while monitor.summary.changed().await.is_ok() {}
    })
    .await;
    Ok(())
}

/// ACL indices the demo's reconciler recorded in its state file.
fn our_acls(dir: &Path) -> Vec<u32> {
    match StateStore::in_dir(dir).load() {
        Ok(Some(state)) => state.realized.kinds.acls.values().map(|a| a.id.0).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
