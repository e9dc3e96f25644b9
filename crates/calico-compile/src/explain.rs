//! Why a flow is allowed or dropped, for an operator's `explain`: for each direction the
//! node polices (the source's egress, the destination's ingress, for endpoints of this node),
//! Calico's reasoning in Calico's names (the reference evaluator on the model) beside what the
//! compiled objects decide (guard ACL, then npol, evaluated as VPP evaluates them), and
//! whether the two agree. Pure: no I/O, no VPP.

use std::net::IpAddr;

use calico_model::{Model, WorkloadEndpoint, WorkloadEndpointId};
use ipnet::IpNet;
use npol::{Packet, Verdict};
use serde::{Deserialize, Serialize};

use crate::desired::{DesiredState, InterfaceKey};
use crate::lookup::{explain_compiled, ExplainedStep};
use crate::reference::{self, Decision};
use crate::report::CalicoDirection;

/// The flow an operator asks about: the first packet of a new connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowQuery {
    /// An IP address, a workload endpoint (`namespace/pod`, or its interface name).
    pub from: String,
    pub to: String,
    /// `tcp`, `udp`, `sctp`, `icmp` (an echo request) or a protocol number.
    pub proto: String,
    /// Destination port (ignored for ICMP).
    #[serde(default)]
    pub port: u16,
}

/// One direction's verdicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectionExplanation {
    /// The workload endpoint (`orchestrator/workload/endpoint`).
    pub endpoint: String,
    /// Its interface name (as Felix names it; the driver binds the VPP interface so tagged).
    pub interface: String,
    /// `ingress` or `egress`, as Calico names it.
    pub direction: String,
    /// `allow` or `deny`, by Calico's semantics.
    pub calico: String,
    /// What decided it, in Calico's names.
    pub decided_by: String,
    /// `allow` or `deny` by the compiled objects, when the dataplane compiled them.
    pub compiled: Option<String>,
    /// The compiled evaluation's steps (guard, npol policies and rules by key).
    pub compiled_steps: Vec<String>,
    /// VPP's own verdict (`npol match`), when the driver could ask a VPP: `allow`, `deny`,
    /// or why it is unknown.
    #[serde(default)]
    pub vpp: Option<String>,
    /// `compiled` and `vpp` (those known) equal `calico`.
    pub agree: bool,
}

impl DirectionExplanation {
    /// Recomputes `agree` from the verdicts present.
    pub fn reconcile_agreement(&mut self) {
        self.agree = self.compiled.as_ref().is_none_or(|c| *c == self.calico)
            && self.vpp.as_ref().is_none_or(|v| *v == self.calico);
    }
}

/// The answer to a [`FlowQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowExplanation {
    /// The packet evaluated.
    pub packet: String,
    /// The same, as the evaluators take it.
    pub flow: Packet,
    pub directions: Vec<DirectionExplanation>,
    /// `allow` when every direction allows.
    pub verdict: String,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    #[error("{0:?} is neither an IP address nor a workload endpoint of this node")]
    UnknownEndpoint(String),
    #[error("{0:?} has no address of the other side's IP family")]
    NoAddressOfFamily(String),
    #[error("unknown protocol {0:?} (tcp, udp, sctp, icmp or a number)")]
    UnknownProtocol(String),
}

fn word(v: Verdict) -> String {
    match v {
        Verdict::Allow => "allow".into(),
        Verdict::Deny => "deny".into(),
    }
}

fn endpoint_name(id: &WorkloadEndpointId) -> String {
    format!(
        "{}/{}/{}",
        id.orchestrator_id, id.workload_id, id.endpoint_id
    )
}

fn addresses(ep: &WorkloadEndpoint) -> impl Iterator<Item = IpAddr> + '_ {
    ep.ipv4_nets
        .iter()
        .map(|n| IpAddr::V4(n.addr()))
        .chain(ep.ipv6_nets.iter().map(|n| IpAddr::V6(n.addr())))
}

/// The endpoint an operator names: its workload id (`namespace/pod`), its full id, or its
/// interface name.
fn named_endpoint<'m>(
    model: &'m Model,
    name: &str,
) -> Option<(&'m WorkloadEndpointId, &'m WorkloadEndpoint)> {
    model
        .workload_endpoints
        .iter()
        .find(|(id, ep)| id.workload_id == name || endpoint_name(id) == name || ep.name == name)
}

/// The endpoint of this node that owns `addr`, if any.
fn endpoint_of(model: &Model, addr: IpAddr) -> Option<(&WorkloadEndpointId, &WorkloadEndpoint)> {
    model.workload_endpoints.iter().find(|(_, ep)| {
        ep.ipv4_nets.iter().any(|n| IpNet::V4(*n).contains(&addr))
            || ep.ipv6_nets.iter().any(|n| IpNet::V6(*n).contains(&addr))
    })
}

fn protocol(p: &str) -> Result<u8, ExplainError> {
    match p.to_ascii_lowercase().as_str() {
        "tcp" => Ok(6),
        "udp" => Ok(17),
        "sctp" => Ok(132),
        "icmp" | "icmpv6" | "ping" => Ok(1),
        other => other
            .parse()
            .map_err(|_| ExplainError::UnknownProtocol(p.to_string())),
    }
}

/// The addresses of both ends: an IP as given, an endpoint's first address of the family
/// the other end fixes (IPv4 when both are endpoints with both families).
fn resolve(model: &Model, q: &FlowQuery) -> Result<(IpAddr, IpAddr), ExplainError> {
    let parse = |s: &str| s.parse::<IpAddr>().ok();
    let family_of = |s: &str| parse(s).map(|a| a.is_ipv4());
    let want_v4 = family_of(&q.from).or(family_of(&q.to)).unwrap_or(true);
    let pick = |s: &str| -> Result<IpAddr, ExplainError> {
        if let Some(a) = parse(s) {
            return Ok(a);
        }
        let (_, ep) =
            named_endpoint(model, s).ok_or_else(|| ExplainError::UnknownEndpoint(s.into()))?;
        addresses(ep)
            .find(|a| a.is_ipv4() == want_v4)
            .ok_or_else(|| ExplainError::NoAddressOfFamily(s.into()))
    };
    Ok((pick(&q.from)?, pick(&q.to)?))
}

fn decision_text(d: &Decision) -> String {
    match d {
        Decision::Rule {
            tier,
            policy,
            index,
            action,
        } => format!(
            "tier {tier}, policy {}{} rule {index}: {action:?}",
            if policy.namespace.is_empty() {
                String::new()
            } else {
                format!("{}/", policy.namespace)
            },
            policy.name
        ),
        Decision::EndOfTier { tier } => {
            format!("end of tier {tier}: no policy of the tier matched (tier default deny)")
        }
        Decision::ProfileRule {
            profile,
            index,
            action,
        } => format!("profile {} rule {index}: {action:?}", profile.0),
        Decision::NoProfileMatched => "no policy or profile matched (default deny)".into(),
        Decision::SpoofedSource => {
            "source address is not the endpoint's own (anti-spoofing)".into()
        }
        Decision::UnsolicitedEchoReply => {
            "an echo reply that answers no request (conntrack INVALID)".into()
        }
        other => format!("{other:?}"),
    }
}

fn step_text(s: &ExplainedStep) -> String {
    match s {
        ExplainedStep::RuleMatched {
            policy,
            rule,
            action,
        } => format!("npol policy {policy} rule {rule}: {action:?}"),
        ExplainedStep::PolicyDefault(d) => format!("npol policy default: {d:?}"),
        ExplainedStep::ProfileDefault(d) => format!("npol profile default: {d:?}"),
        ExplainedStep::GuardDenied(acl) => format!("protocol guard ACL {acl} drops it"),
        other => format!("{other:?}"),
    }
}

/// Explains `q` against `model` and, when given, the compiled `desired` state.
pub fn explain_flow(
    model: &Model,
    desired: Option<&DesiredState>,
    q: &FlowQuery,
) -> Result<FlowExplanation, ExplainError> {
    let (src, dst) = resolve(model, q)?;
    let mut proto = protocol(&q.proto)?;
    if proto == 1 && src.is_ipv6() {
        proto = 58;
    }
    let pkt = if proto == 1 || proto == 58 {
        Packet::icmp(src, dst, if proto == 1 { 8 } else { 128 }, 0, 4242)
    } else {
        Packet::l4(proto, src, 40000, dst, q.port)
    };
    let mut directions = Vec::new();
    let mut notes = Vec::new();
    let sides = [
        (endpoint_of(model, src), CalicoDirection::Egress),
        (endpoint_of(model, dst), CalicoDirection::Ingress),
    ];
    for (ep, dir) in sides {
        let Some((id, ep)) = ep else {
            continue;
        };
        let want = reference::evaluate(model, id, dir, &pkt);
        let compiled =
            desired.and_then(|d| explain_compiled(d, &InterfaceKey(ep.name.clone()), dir, &pkt));
        let agree = compiled.as_ref().is_none_or(|(v, _)| *v == want.verdict);
        directions.push(DirectionExplanation {
            endpoint: endpoint_name(id),
            interface: ep.name.clone(),
            direction: match dir {
                CalicoDirection::Ingress => "ingress".into(),
                CalicoDirection::Egress => "egress".into(),
            },
            calico: word(want.verdict),
            decided_by: decision_text(&want.decided_by),
            compiled: compiled.as_ref().map(|(v, _)| word(*v)),
            compiled_steps: compiled
                .as_ref()
                .map(|(_, steps)| steps.iter().map(step_text).collect())
                .unwrap_or_default(),
            vpp: None,
            agree,
        });
    }
    if directions.is_empty() {
        notes.push(
            "neither address belongs to a workload endpoint of this node: no policy of this \
             node applies"
                .into(),
        );
    }
    if desired.is_none() {
        notes.push("the dataplane has compiled nothing yet (Felix not in sync?)".into());
    }
    let verdict = if directions.iter().all(|d| d.calico == "allow") {
        "allow"
    } else {
        "deny"
    };
    Ok(FlowExplanation {
        flow: pkt,
        packet: format!(
            "{src} -> {dst} proto {proto}{}",
            if proto == 1 || proto == 58 {
                " echo request".to_string()
            } else {
                format!(" port {}", q.port)
            }
        ),
        directions,
        verdict: verdict.into(),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_model::{Action, Policy, PolicyId, ProfileId, Rule, TierDefaultAction, TierInfo};

    fn model() -> Model {
        let mut m = Model::default();
        let web = PolicyId {
            name: "default.web".into(),
            namespace: "shop".into(),
            kind: "NetworkPolicy".into(),
        };
        let mut allow80 = Rule::match_all(Action::Allow);
        allow80.protocol = Some(6);
        allow80.dst_ports = vec![calico_model::PortRange {
            first: 80,
            last: 80,
        }];
        m.policies.insert(
            web.clone(),
            Policy {
                tier: "default".into(),
                inbound_rules: vec![allow80],
                ..Policy::default()
            },
        );
        m.profiles.insert(
            ProfileId("kns.shop".into()),
            calico_model::Profile {
                inbound_rules: vec![],
                outbound_rules: vec![Rule::match_all(Action::Allow)],
                invalid: None,
            },
        );
        for (i, (pod, ip, tiers)) in [
            ("shop/client", "10.0.0.1", vec![]),
            (
                "shop/web",
                "10.0.0.2",
                vec![TierInfo {
                    name: "default".into(),
                    ingress_policies: vec![web.clone()],
                    egress_policies: vec![],
                    default_action: TierDefaultAction::Deny,
                }],
            ),
        ]
        .into_iter()
        .enumerate()
        {
            m.workload_endpoints.insert(
                WorkloadEndpointId {
                    orchestrator_id: "k8s".into(),
                    workload_id: pod.into(),
                    endpoint_id: "eth0".into(),
                },
                WorkloadEndpoint {
                    active: true,
                    name: format!("cali{i}"),
                    mac: None,
                    profile_ids: vec![ProfileId("kns.shop".into())],
                    ipv4_nets: vec![format!("{ip}/32").parse().unwrap()],
                    ipv6_nets: vec![],
                    tiers,
                    ipv4_nat: vec![],
                    ipv6_nat: vec![],
                    allow_spoofed_source_prefixes: vec![],
                    annotations: Default::default(),
                    invalid: None,
                },
            );
        }
        m
    }

    fn query(to_port: u16) -> FlowQuery {
        FlowQuery {
            from: "shop/client".into(),
            to: "10.0.0.2".into(),
            proto: "tcp".into(),
            port: to_port,
        }
    }

    #[test]
    fn names_the_rule_and_the_tier_end_that_decide_and_agrees_with_the_compiled_objects() {
        let m = model();
        let c = crate::compile(&m);
        let ok = explain_flow(&m, Some(&c.desired), &query(80)).unwrap();
        assert_eq!(ok.verdict, "allow");
        assert_eq!(ok.directions.len(), 2);
        assert_eq!(ok.directions[0].direction, "egress");
        assert_eq!(
            ok.directions[0].decided_by,
            "profile kns.shop rule 0: Allow"
        );
        assert_eq!(
            ok.directions[1].decided_by,
            "tier default, policy shop/default.web rule 0: Allow"
        );
        assert!(ok.directions.iter().all(|d| d.agree));

        let no = explain_flow(&m, Some(&c.desired), &query(443)).unwrap();
        assert_eq!(no.verdict, "deny");
        assert_eq!(no.directions[1].calico, "deny");
        assert_eq!(no.directions[1].compiled.as_deref(), Some("deny"));
        assert!(no.directions[1]
            .decided_by
            .starts_with("end of tier default"));
    }

    #[test]
    fn unknown_names_and_protocols_are_errors() {
        let m = model();
        let mut q = query(80);
        q.from = "shop/nope".into();
        assert_eq!(
            explain_flow(&m, None, &q),
            Err(ExplainError::UnknownEndpoint("shop/nope".into()))
        );
        let mut q = query(80);
        q.proto = "gopher".into();
        assert!(matches!(
            explain_flow(&m, None, &q),
            Err(ExplainError::UnknownProtocol(_))
        ));
    }

    #[test]
    fn a_flow_between_strangers_is_not_policed_here() {
        let m = model();
        let q = FlowQuery {
            from: "192.0.2.1".into(),
            to: "192.0.2.2".into(),
            proto: "udp".into(),
            port: 53,
        };
        let e = explain_flow(&m, None, &q).unwrap();
        assert!(e.directions.is_empty());
        assert_eq!(e.verdict, "allow");
        assert!(!e.notes.is_empty());
    }
}
