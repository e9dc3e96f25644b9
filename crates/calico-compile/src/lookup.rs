//! npol's evaluator over the compiled objects: `npol::Lookup` for [`DesiredState`], so the
//! verdict VPP would give can be computed from the desired state (tests, `explain`, the
//! simulator's cross-checks).

use npol::{Evaluation, Packet};

use crate::desired::{DesiredState, InterfaceKey, IpSetKey, PolicyKey, RuleKey};
use crate::report::CalicoDirection;

impl npol::Lookup for DesiredState {
    type SetRef = IpSetKey;
    type RuleRef = RuleKey;
    type PolicyRef = PolicyKey;

    fn ipset(&self, r: &IpSetKey) -> Option<&npol::IpSet> {
        self.ipsets.get(r)
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
    Some(npol::evaluate(desired, &i.config, npol_direction(dir), pkt))
}
