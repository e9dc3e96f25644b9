//! Where and how npol is enforced on the simulated state: the cnat requirement (npol runs
//! inside cnat's per-flow slow path) and the npol evaluation itself, which is the shared
//! evaluator of the `npol` crate — never a second implementation.

use npol::{Direction, Evaluation, Packet, Verdict};
use serde::Serialize;

use crate::state::SimState;

/// Why a packet was or was not checked by npol on one interface and direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Enforcement {
    /// npol evaluated the packet.
    Evaluated { verdict: Verdict },
    /// No such interface.
    NoInterface,
    /// The cnat feature is off on this interface.
    CnatDisabled,
    /// TX only: cnat is off on the interface the packet entered VPP by (confirmed on a real
    /// VPP: the TX policy is then skipped).
    CnatDisabledOnIngress,
    /// No `npol_configure_policies` for this interface.
    NotConfigured,
}

impl Enforcement {
    /// Traffic npol does not check passes.
    pub fn verdict(&self) -> Verdict {
        match self {
            Enforcement::Evaluated { verdict } => *verdict,
            _ => Verdict::Allow,
        }
    }
}

impl SimState {
    /// npol's verdict for `pkt` on `sw_if_index` in `dir`, with the full trace, or why npol
    /// does not look at it. For TX, `ingress` is the interface the packet entered VPP by;
    /// `None` assumes it has cnat enabled.
    pub fn explain(
        &self,
        sw_if_index: u32,
        dir: Direction,
        pkt: &Packet,
        ingress: Option<u32>,
    ) -> (Enforcement, Option<Evaluation>) {
        let Some(itf) = self.interface(sw_if_index) else {
            return (Enforcement::NoInterface, None);
        };
        if !itf.cnat {
            return (Enforcement::CnatDisabled, None);
        }
        if dir == Direction::Tx {
            if let Some(i) = ingress {
                if !self.interface(i).is_some_and(|x| x.cnat) {
                    return (Enforcement::CnatDisabledOnIngress, None);
                }
            }
        }
        let Some(cfg) = self.npol.interfaces.get(&sw_if_index) else {
            return (Enforcement::NotConfigured, None);
        };
        let e = npol::evaluate(&self.npol, cfg, dir, pkt);
        (Enforcement::Evaluated { verdict: e.verdict }, Some(e))
    }

    /// The verdict on one interface and direction (TX assumes a cnat-enabled ingress).
    pub fn evaluate(&self, sw_if_index: u32, dir: Direction, pkt: &Packet) -> Verdict {
        self.explain(sw_if_index, dir, pkt, None).0.verdict()
    }

    /// A new flow entering VPP by `ingress` and leaving by `egress`: RX policy of the
    /// ingress, then TX policy of the egress (each only where enforced). Does not model
    /// cnat's DNAT: pass the packet as it looks after translation (npol sees backends).
    pub fn evaluate_flow(&self, ingress: u32, egress: u32, pkt: &Packet) -> Verdict {
        if self.explain(ingress, Direction::Rx, pkt, None).0.verdict() == Verdict::Deny {
            return Verdict::Deny;
        }
        self.explain(egress, Direction::Tx, pkt, Some(ingress))
            .0
            .verdict()
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use npol::{InterfaceConfig, PolicyDefault};

    use super::*;

    fn deny_all() -> InterfaceConfig<u32> {
        InterfaceConfig {
            rx_policies: vec![],
            tx_policies: vec![],
            profiles: vec![],
            invert_rx_tx: false,
            policy_default_rx: PolicyDefault::Deny,
            policy_default_tx: PolicyDefault::Deny,
            profile_default_rx: PolicyDefault::Deny,
            profile_default_tx: PolicyDefault::Deny,
        }
    }

    fn pkt() -> Packet {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        Packet::tcp(a, 1234, b, 80)
    }

    fn two_pods() -> (SimState, u32, u32) {
        let mut s = SimState::new();
        let a = s.create_af_packet("a", None).unwrap();
        let b = s.create_af_packet("b", None).unwrap();
        assert_eq!(s.npol_configure(a, deny_all()), 0);
        assert_eq!(s.npol_configure(b, deny_all()), 0);
        (s, a, b)
    }

    #[test]
    fn npol_is_not_enforced_without_cnat() {
        let (s, a, _) = two_pods();
        assert_eq!(
            s.explain(a, Direction::Rx, &pkt(), None).0,
            Enforcement::CnatDisabled
        );
        assert_eq!(s.evaluate(a, Direction::Rx, &pkt()), Verdict::Allow);
    }

    #[test]
    fn rx_policy_needs_cnat_on_that_interface_only() {
        let (mut s, a, _) = two_pods();
        s.cnat_enable(a, true);
        assert_eq!(s.evaluate(a, Direction::Rx, &pkt()), Verdict::Deny);
    }

    #[test]
    fn tx_policy_needs_cnat_on_the_ingress_interface_too() {
        let (mut s, a, b) = two_pods();
        s.cnat_enable(b, true);
        s.npol_configure(
            a,
            InterfaceConfig {
                policy_default_rx: PolicyDefault::Allow,
                ..deny_all()
            },
        );
        assert_eq!(s.evaluate_flow(a, b, &pkt()), Verdict::Allow);
        assert_eq!(
            s.explain(b, Direction::Tx, &pkt(), Some(a)).0,
            Enforcement::CnatDisabledOnIngress
        );
        s.cnat_enable(a, true);
        assert_eq!(s.evaluate_flow(a, b, &pkt()), Verdict::Deny);
    }

    #[test]
    fn unconfigured_interface_allows() {
        let mut s = SimState::new();
        let a = s.create_af_packet("a", None).unwrap();
        s.cnat_enable(a, true);
        assert_eq!(
            s.explain(a, Direction::Rx, &pkt(), None).0,
            Enforcement::NotConfigured
        );
        assert_eq!(s.evaluate(a, Direction::Rx, &pkt()), Verdict::Allow);
    }

    #[test]
    fn deleting_an_interface_drops_its_npol_configuration() {
        let (mut s, a, _) = two_pods();
        s.cnat_enable(a, true);
        assert_eq!(s.delete_af_packet("a"), 0);
        let c = s.create_af_packet("c", None).unwrap();
        assert_eq!(c, a, "pool index reused");
        s.cnat_enable(c, true);
        assert_eq!(s.evaluate(c, Direction::Rx, &pkt()), Verdict::Allow);
    }
}
