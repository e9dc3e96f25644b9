//! What the compiler could not compile exactly, per object, for logs, status and metrics.
//!
//! Every fail-closed decision lands here; nothing is dropped without an entry.

use std::collections::BTreeMap;

use calico_model::{HostEndpointId, IpSetId, PolicyId, ProfileId, WorkloadEndpointId};
use serde::Serialize;

use crate::config::EndpointToHostAction;

/// Calico's two directions (ingress is VPP TX on a pod's interface, egress VPP RX).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum CalicoDirection {
    Ingress,
    Egress,
}

/// The object a note is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Subject {
    Policy(PolicyId),
    Profile(ProfileId),
    IpSet(IpSetId),
    Workload(WorkloadEndpointId),
    Host(HostEndpointId),
    /// Node-wide behaviour (configuration).
    Node,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Note {
    /// An HTTP match was ignored (as DESIGN section 3 says; Felix's dataplane ignores it too).
    HttpMatchIgnored {
        direction: CalicoDirection,
        index: usize,
    },
    /// The policy or profile was marked invalid at conversion; it denies everything.
    Invalid { reason: String },
    /// The policy or profile refers to an IP set that is missing or of the wrong kind; it
    /// denies everything until that is fixed.
    BadIpSetReference { reason: String },
    /// An endpoint's tier names a policy the model does not have: that position denies.
    UnknownPolicy { tier: String, policy: PolicyId },
    /// An endpoint names a profile the model does not have: that position denies.
    UnknownProfile { profile: ProfileId },
    /// IP set members that do not fit the set's kind were left out.
    BadMembers { count: usize },
    /// The endpoint is not active (or invalid): all its traffic is denied.
    EndpointDown { reason: String },
    /// Several endpoints name the same interface: it is configured to deny everything.
    InterfaceConflict { interface: String },
    /// Host endpoint policy is not programmed yet (npol on the uplink would also police
    /// forwarded pod traffic, which Felix's host endpoint policy does not). Counts of what
    /// it carries, so nothing is dropped silently.
    HostEndpointNotEnforced {
        tiers: usize,
        untracked_tiers: usize,
        pre_dnat_tiers: usize,
        forward_tiers: usize,
        profiles: usize,
    },
    /// An allow rule that may match packets the protocol guard drops (any protocol but TCP,
    /// UDP, SCTP; ICMP other than echo, errors and ND): for those packets this dataplane is
    /// stricter than Felix (npol never sees them, so the guard drops them all).
    GuardStricter {
        direction: CalicoDirection,
        index: usize,
        rule_id: String,
    },
    /// ICMP errors cross the protocol guard (Linux passes them as conntrack RELATED). cnat
    /// matches one to the session it quotes; one quoting no session is evaluated by npol as
    /// a new flow of the quoted protocol, where Felix would drop it as INVALID.
    GuardIcmpErrors,
    /// How workload→host traffic is handled (`DefaultEndpointToHostAction`).
    EndpointToHost {
        action: EndpointToHostAction,
        how: String,
    },
}

/// The compile report: notes per object, deterministic order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompileReport {
    pub notes: BTreeMap<Subject, Vec<Note>>,
}

impl CompileReport {
    pub fn all(&self) -> impl Iterator<Item = &Note> {
        self.notes.values().flatten()
    }

    pub fn of(&self, s: &Subject) -> &[Note] {
        self.notes.get(s).map(Vec::as_slice).unwrap_or(&[])
    }

    pub(crate) fn set(&mut self, s: Subject, notes: Vec<Note>) {
        if notes.is_empty() {
            self.notes.remove(&s);
        } else {
            self.notes.insert(s, notes);
        }
    }
}
