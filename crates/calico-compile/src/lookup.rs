//! npol's evaluator over the compiled objects: `npol::Lookup` for [`DesiredState`], so the
//! verdict VPP would give can be computed from the desired state (tests, `explain`, the
//! simulator's cross-checks). The interface's protocol guard ACL runs first, as in VPP
//! (ACL input before cnat/npol on RX; on TX npol runs earlier but a guard deny still drops).

use npol::{Evaluation, Packet};

use crate::desired::{AclKey, DesiredState, InterfaceKey, IpSetKey, PolicyKey, RuleKey};
use crate::guard::{acl_verdict, InterfaceGuard};
use crate::report::CalicoDirection;

impl npol::Lookup for DesiredState {
    type SetRef = IpSetKey;
    type RuleRef = RuleKey;
    type PolicyRef = PolicyKey;

    fn ipset(&self, r: &IpSetKey) -> Option<&npol::IpSet> {
        self.ipsets.get(r).map(|s| &**s)
    }

    fn rule(&self, r: &RuleKey) -> Option<&npol::Rule<IpSetKey>> {
        self.rules.get(r)
    }

    fn policy(&self, r: &PolicyKey) -> Option<&npol::Policy<RuleKey>> {
        self.policies.get(r)
    }
}

/// Calico ingress to a pod is VPP TX on its interface; egress from it is VPP RX.
pub fn npol_direction(dir: CalicoDirection) -> npol::Direction {
    match dir {
        CalicoDirection::Ingress => npol::Direction::Tx,
        CalicoDirection::Egress => npol::Direction::Rx,
    }
}

/// What npol would decide for `pkt` crossing the endpoint's interface in Calico direction
/// `dir`; `None` when the desired state has no such interface.
pub fn evaluate_compiled(
    desired: &DesiredState,
    iface: &InterfaceKey,
    dir: CalicoDirection,
    pkt: &Packet,
) -> Option<Evaluation> {
    let i = desired.interfaces.get(iface)?;
    if !guard_allows(desired, &i.guard, dir, pkt) {
        return Some(Evaluation {
            verdict: npol::Verdict::Deny,
            trace: Vec::new(),
        });
    }
    Some(npol::evaluate(desired, &i.config, npol_direction(dir), pkt))
}

/// The guard ACL's verdict; a guard the desired state lacks denies (VPP denies on an ACL
/// index that does not exist, too).
fn guard_allows(
    desired: &DesiredState,
    guard: &InterfaceGuard,
    dir: CalicoDirection,
    pkt: &Packet,
) -> bool {
    desired
        .acls
        .get(guard.for_direction(dir))
        .is_some_and(|acl| acl_verdict(acl, pkt) == npol::Verdict::Allow)
}

/// One step of an npol evaluation, with indices resolved to the compiled objects' keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExplainedStep {
    RuleMatched {
        policy: PolicyKey,
        rule: RuleKey,
        action: npol::RuleAction,
    },
    PolicyDefault(npol::PolicyDefault),
    ProfileDefault(npol::PolicyDefault),
    NotPoliced,
    /// The interface's protocol guard ACL dropped the packet before npol.
    GuardDenied(AclKey),
}

/// Like [`evaluate_compiled`], with the trace naming policies and rules by key (for logs
/// and an operator's `explain`).
pub fn explain_compiled(
    desired: &DesiredState,
    iface: &InterfaceKey,
    dir: CalicoDirection,
    pkt: &Packet,
) -> Option<(npol::Verdict, Vec<ExplainedStep>)> {
    let i = desired.interfaces.get(iface)?;
    if !guard_allows(desired, &i.guard, dir, pkt) {
        let acl = i.guard.for_direction(dir).clone();
        return Some((npol::Verdict::Deny, vec![ExplainedStep::GuardDenied(acl)]));
    }
    let ndir = npol_direction(dir);
    let ev = npol::evaluate(desired, &i.config, ndir, pkt);
    let rx = (ndir == npol::Direction::Rx) != i.config.invert_rx_tx;
    let steps = ev
        .trace
        .iter()
        .filter_map(|s| match s {
            npol::Step::RuleMatched {
                is_profile,
                policy,
                rule,
                action,
            } => {
                let list = match (is_profile, rx) {
                    (true, _) => &i.config.profiles,
                    (false, true) => &i.config.rx_policies,
                    (false, false) => &i.config.tx_policies,
                };
                let pk = list.get(*policy)?;
                let p = desired.policies.get(pk)?;
                let rules = if rx { &p.inbound } else { &p.outbound };
                Some(ExplainedStep::RuleMatched {
                    policy: pk.clone(),
                    rule: rules.get(*rule)?.clone(),
                    action: *action,
                })
            }
            npol::Step::PolicyDefault(d) => Some(ExplainedStep::PolicyDefault(*d)),
            npol::Step::ProfileDefault(d) => Some(ExplainedStep::ProfileDefault(*d)),
            npol::Step::NotPoliced => Some(ExplainedStep::NotPoliced),
        })
        .collect();
    Some((ev.verdict, steps))
}
