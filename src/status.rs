//! Status back to Felix: the heartbeat (`ProcessStatusUpdate`) and endpoint status. Other
//! parts of the driver report through a `StatusSender`; one writer task per Felix connection
//! (`felix::status_writer`) turns that into frames. It never decides status itself: it only
//! forwards and de-duplicates. It knows nothing of Felix's wire format.

use std::collections::BTreeMap;

use calico_model::{HostEndpointId, IpVersion, MacAddr, WorkloadEndpoint, WorkloadEndpointId};
use ipnet::{Ipv4Net, Ipv6Net};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Operational status of an endpoint as Felix shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointStatus {
    Up,
    Down,
    /// Host endpoints only: the dataplane could not program it.
    Error,
}

impl EndpointStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            EndpointStatus::Up => "up",
            EndpointStatus::Down => "down",
            EndpointStatus::Error => "error",
        }
    }
}

/// What Felix's endpoint status files record about a workload endpoint. Felix drops an "up"
/// update that lacks it (its status-file reporter, used by the CNI plugin to wait for policy,
/// builds the file from it), so send it with every workload status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointSummary {
    pub name: String,
    pub mac: Option<MacAddr>,
    pub ipv4_nets: Vec<Ipv4Net>,
    pub ipv6_nets: Vec<Ipv6Net>,
}

impl From<&WorkloadEndpoint> for EndpointSummary {
    fn from(ep: &WorkloadEndpoint) -> Self {
        EndpointSummary {
            name: ep.name.clone(),
            mac: ep.mac,
            ipv4_nets: ep.ipv4_nets.clone(),
            ipv6_nets: ep.ipv6_nets.clone(),
        }
    }
}

/// One status message for Felix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusEvent {
    /// `status: None` removes the endpoint's status entry.
    Workload {
        id: WorkloadEndpointId,
        status: Option<(EndpointStatus, Option<EndpointSummary>)>,
    },
    Host {
        id: HostEndpointId,
        status: Option<EndpointStatus>,
    },
    Wireguard {
        public_key: String,
        ip_version: IpVersion,
    },
    /// Felix ignores this from external drivers today; sent for completeness.
    DataplaneInSync,
}

/// Cloneable handle for reporting status; sending never blocks and never fails (status sent
/// while no Felix is connected is kept and replayed on the next connection).
#[derive(Debug, Clone)]
pub struct StatusSender(mpsc::UnboundedSender<StatusEvent>);

pub struct StatusReceiver(mpsc::UnboundedReceiver<StatusEvent>);

impl StatusReceiver {
    /// The next status event; `None` once every sender is gone.
    pub async fn recv(&mut self) -> Option<StatusEvent> {
        self.0.recv().await
    }
}

pub fn channel() -> (StatusSender, StatusReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    (StatusSender(tx), StatusReceiver(rx))
}

impl StatusSender {
    pub fn send(&self, event: StatusEvent) {
        // The receiver lives as long as the agent; after it is gone nobody listens anyway.
        let _ = self.0.send(event);
    }
    /// A workload endpoint's status, with the endpoint as the model holds it (preferred:
    /// Felix needs it for its status files).
    pub fn workload(
        &self,
        id: WorkloadEndpointId,
        status: EndpointStatus,
        endpoint: Option<&WorkloadEndpoint>,
    ) {
        self.send(StatusEvent::Workload {
            id,
            status: Some((status, endpoint.map(EndpointSummary::from))),
        })
    }
    pub fn workload_removed(&self, id: WorkloadEndpointId) {
        self.send(StatusEvent::Workload { id, status: None })
    }
    pub fn host(&self, id: HostEndpointId, status: EndpointStatus) {
        self.send(StatusEvent::Host {
            id,
            status: Some(status),
        })
    }
    pub fn host_removed(&self, id: HostEndpointId) {
        self.send(StatusEvent::Host { id, status: None })
    }
}

/// The latest status of everything reported, so that only changes go out and a new Felix
/// connection gets the full picture.
#[derive(Debug, Default)]
pub struct StatusBook {
    workloads: BTreeMap<WorkloadEndpointId, (EndpointStatus, Option<EndpointSummary>)>,
    hosts: BTreeMap<HostEndpointId, EndpointStatus>,
    wireguard: BTreeMap<IpVersion, String>,
}

impl StatusBook {
    /// Records `ev`; false when it repeats what Felix already has.
    pub fn record(&mut self, ev: &StatusEvent) -> bool {
        fn set<K: Ord + Clone, V: Clone + PartialEq>(
            map: &mut BTreeMap<K, V>,
            id: &K,
            status: &Option<V>,
        ) -> bool {
            match status {
                Some(s) => map.insert(id.clone(), s.clone()).as_ref() != Some(s),
                None => map.remove(id).is_some(),
            }
        }
        match ev {
            StatusEvent::Workload { id, status } => set(&mut self.workloads, id, status),
            StatusEvent::Host { id, status } => set(&mut self.hosts, id, status),
            StatusEvent::Wireguard {
                public_key,
                ip_version,
            } => self.wireguard.insert(*ip_version, public_key.clone()) != Some(public_key.clone()),
            StatusEvent::DataplaneInSync => true,
        }
    }

    /// Everything Felix should know, for a fresh connection.
    pub fn replay(&self) -> Vec<StatusEvent> {
        let mut out: Vec<StatusEvent> = Vec::new();
        out.extend(self.workloads.iter().map(|(id, s)| StatusEvent::Workload {
            id: id.clone(),
            status: Some(s.clone()),
        }));
        out.extend(self.hosts.iter().map(|(id, s)| StatusEvent::Host {
            id: id.clone(),
            status: Some(*s),
        }));
        out.extend(self.wireguard.iter().map(|(v, k)| StatusEvent::Wireguard {
            public_key: k.clone(),
            ip_version: *v,
        }));
        out
    }
}

/// Status state that outlives Felix connections.
pub struct StatusHub {
    pub rx: StatusReceiver,
    pub book: StatusBook,
    /// Process start, for the heartbeat's uptime.
    pub started: Instant,
}

impl StatusHub {
    pub fn new(rx: StatusReceiver) -> Self {
        StatusHub {
            rx,
            book: StatusBook::default(),
            started: Instant::now(),
        }
    }
}
