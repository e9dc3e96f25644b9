//! Where and how npol is enforced on the simulated state: the cnat requirement (npol runs
//! inside cnat's per-flow slow path) and the npol evaluation itself, which is the shared
//! evaluator of the `npol` crate — never a second implementation. ACLs (the ACL plugin's
//! input and output features) are checked on every packet, cnat or not, before npol.

use npol::{Direction, Evaluation, Packet, Verdict};
use serde::Serialize;

use crate::state::SimState;

/// Why a packet was or was not checked by npol on one interface and direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Enforcement {
    /// An ACL applied to the interface in this direction denied the packet (before npol);
    /// `matched` is the (ACL, rule) that matched, `None` when none did.
    AclDenied { matched: Option<(u32, usize)> },
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
    /// TX only, first flow: the destination's neighbour was not resolved (see
    /// [`SimState::evaluate_flow`]).
    NeighbourUnresolved,
}

impl Enforcement {
    /// Traffic npol does not check passes.
    pub fn verdict(&self) -> Verdict {
        match self {
            Enforcement::Evaluated { verdict } => *verdict,
            Enforcement::AclDenied { .. } => Verdict::Deny,
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
        if let Some(m) = self.acl_check(sw_if_index, dir == Direction::Rx, pkt) {
            if m.verdict == Verdict::Deny {
                return (Enforcement::AclDenied { matched: m.matched }, None);
            }
        }
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

    /// cnat's DNAT as npol sees it: on an ingress with cnat, a packet to a translation's VIP
    /// (address, port, protocol) is rewritten to the translation's first backend before
    /// the RX policy runs. (VPP picks the backend by flow hash; with several backends the
    /// simulator always takes the first.)
    pub fn dnat(&self, ingress: u32, pkt: &Packet) -> Packet {
        if !self.interface(ingress).is_some_and(|i| i.cnat) {
            return *pkt;
        }
        let hit = self.cnat.translations.iter().find(|(_, t)| {
            t.vip.addr == pkt.dst && t.vip.port == pkt.dport && t.proto == pkt.proto
        });
        let Some(backend) = hit.and_then(|(_, t)| t.paths.first()) else {
            return *pkt;
        };
        let mut out = *pkt;
        out.dst = backend.dst.addr;
        if backend.dst.port != 0 {
            out.dport = backend.dst.port;
        }
        out
    }

    /// Whether VPP can send to `dst` on `egress` without resolving a neighbour first.
    /// Point-to-point interfaces (tunnels) need none. Assumes `dst` is on-link (a pod).
    fn neighbour_known(&self, egress: u32, dst: std::net::IpAddr) -> bool {
        self.interface(egress).is_none_or(|i| i.kind.is_p2p())
            || self.neighbors.contains_key(&(egress, dst))
    }

    /// A new flow entering VPP by `ingress` and leaving by `egress`, as npol sees it: the
    /// ingress's input ACLs, DNAT (see [`SimState::dnat`]), the RX policy of the ingress,
    /// the egress's output ACLs, then the TX policy of the egress, each only where enforced.
    ///
    /// QUIRK (confirmed on a real VPP): the first flow towards a destination whose
    /// neighbour (ARP/ND) is not resolved skips the TX policy; the neighbour is then learnt
    /// (added as a dynamic entry, flags 0) and later flows are checked.
    pub fn evaluate_flow(&mut self, ingress: u32, egress: u32, pkt: &Packet) -> FlowVerdict {
        // The input ACL sees the packet as it arrived, before cnat's DNAT.
        if let Some(m) = self.acl_check(ingress, true, pkt) {
            if m.verdict == Verdict::Deny {
                return FlowVerdict {
                    rx: Enforcement::AclDenied { matched: m.matched },
                    tx: None,
                    verdict: Verdict::Deny,
                    packet: *pkt,
                };
            }
        }
        let pkt = self.dnat(ingress, pkt);
        let (rx, _) = self.explain(ingress, Direction::Rx, &pkt, None);
        if rx.verdict() == Verdict::Deny {
            return FlowVerdict {
                rx,
                tx: None,
                verdict: Verdict::Deny,
                packet: pkt,
            };
        }
        // The output ACL is per packet: it applies even when the TX policy is skipped.
        if let Some(m) = self.acl_check(egress, false, &pkt) {
            if m.verdict == Verdict::Deny {
                return FlowVerdict {
                    rx,
                    tx: Some(Enforcement::AclDenied { matched: m.matched }),
                    verdict: Verdict::Deny,
                    packet: pkt,
                };
            }
        }
        if !self.neighbour_known(egress, pkt.dst) {
            if self.interface(egress).is_some() {
                self.neighbors.insert(
                    (egress, pkt.dst),
                    crate::state::Neighbor {
                        mac: "00:00:00:00:00:00".into(),
                        mac_bytes: [0; 6],
                        flags: 0,
                    },
                );
            }
            return FlowVerdict {
                rx,
                tx: Some(Enforcement::NeighbourUnresolved),
                verdict: Verdict::Allow,
                packet: pkt,
            };
        }
        let (tx, _) = self.explain(egress, Direction::Tx, &pkt, Some(ingress));
        let verdict = tx.verdict();
        FlowVerdict {
            rx,
            tx: Some(tx),
            verdict,
            packet: pkt,
        }
    }
}

/// The outcome of [`SimState::evaluate_flow`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowVerdict {
    pub rx: Enforcement,
    /// `None` when the RX policy already denied.
    pub tx: Option<Enforcement>,
    pub verdict: Verdict,
    /// The packet after DNAT, as npol saw it.
    pub packet: Packet,
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use npol::{InterfaceConfig, PolicyDefault};

    use super::*;
    use crate::state::NONE;

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
        let dst = pkt().dst;
        assert_eq!(s.neighbor_add_del(true, b, dst, [2, 0, 0, 0, 0, 2], 1), 0);
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
        let f = s.evaluate_flow(a, b, &pkt());
        assert_eq!(f.verdict, Verdict::Allow);
        assert_eq!(f.tx, Some(Enforcement::CnatDisabledOnIngress));
        s.cnat_enable(a, true);
        assert_eq!(s.evaluate_flow(a, b, &pkt()).verdict, Verdict::Deny);
    }

    #[test]
    fn first_flow_to_an_unresolved_neighbour_skips_the_tx_policy() {
        let (mut s, a, b) = two_pods();
        s.cnat_enable(a, true);
        s.cnat_enable(b, true);
        s.npol_configure(
            a,
            InterfaceConfig {
                policy_default_rx: PolicyDefault::Allow,
                ..deny_all()
            },
        );
        let to_unknown = Packet {
            dst: "10.0.0.9".parse().unwrap(),
            ..pkt()
        };
        let first = s.evaluate_flow(a, b, &to_unknown);
        assert_eq!(
            (first.tx, first.verdict),
            (Some(Enforcement::NeighbourUnresolved), Verdict::Allow)
        );
        assert_eq!(s.evaluate_flow(a, b, &to_unknown).verdict, Verdict::Deny);
    }

    #[test]
    fn first_flow_to_a_tun_pod_is_policed_without_a_neighbour() {
        let mut s = SimState::new();
        let a = s.create_af_packet("a", None).unwrap();
        let b = s.create_tun(NONE, None, "").unwrap();
        for i in [a, b] {
            s.cnat_enable(i, true);
        }
        s.npol_configure(
            a,
            InterfaceConfig {
                policy_default_rx: PolicyDefault::Allow,
                ..deny_all()
            },
        );
        s.npol_configure(b, deny_all());
        let first = s.evaluate_flow(a, b, &pkt());
        assert_eq!(first.verdict, Verdict::Deny);
        assert!(s.neighbors.is_empty(), "nothing learnt on a tun");
    }

    #[test]
    fn rx_policy_sees_the_backend_after_dnat() {
        use crate::state::{Endpoint, Translation, TranslationPath};
        let (mut s, a, b) = two_pods();
        s.cnat_enable(a, true);
        let ep = |addr: &str, port| Endpoint {
            addr: addr.parse().unwrap(),
            sw_if_index: u32::MAX,
            if_af: 0,
            port,
        };
        s.cnat_translation_update(Translation {
            vip: ep("10.96.0.10", 53),
            proto: 6,
            is_real_ip: 0,
            flags: 0,
            lb_type: 0,
            flow_hash_config: 0,
            paths: vec![TranslationPath {
                src: ep("0.0.0.0", 0),
                dst: ep("10.0.0.2", 5353),
                flags: 0,
            }],
        });
        let to_vip = Packet {
            dst: "10.96.0.10".parse().unwrap(),
            dport: 53,
            ..pkt()
        };
        let f = s.evaluate_flow(a, b, &to_vip);
        assert_eq!((f.packet.dst, f.packet.dport), (pkt().dst, 5353));
        assert_eq!(f.verdict, Verdict::Deny);
    }

    fn guard(s: &mut SimState) -> u32 {
        use crate::acl::{any_prefix, AclRule};
        let (rv, id) = s.acl_add_replace(
            crate::state::NONE,
            "guard".into(),
            vec![AclRule {
                action: 1,
                src: any_prefix(false),
                dst: any_prefix(false),
                proto: 6,
                sport_or_type: (0, u16::MAX),
                dport_or_code: (0, u16::MAX),
            }],
        );
        assert_eq!(rv, 0);
        id
    }

    #[test]
    fn npol_does_not_police_gre_but_an_input_acl_drops_it() {
        let (mut s, a, b) = two_pods();
        s.cnat_enable(a, true);
        s.cnat_enable(b, true);
        let gre = Packet { proto: 47, ..pkt() };
        assert_eq!(s.evaluate_flow(a, b, &gre).verdict, Verdict::Allow);
        let g = guard(&mut s);
        assert_eq!(s.acl_set_interface_list(a, 1, &[g]), 0);
        let f = s.evaluate_flow(a, b, &gre);
        assert_eq!(f.verdict, Verdict::Deny);
        assert_eq!(f.rx, Enforcement::AclDenied { matched: None });
        // TCP passes the ACL and meets npol's deny-all.
        let f = s.evaluate_flow(a, b, &pkt());
        assert_eq!(
            f.rx,
            Enforcement::Evaluated {
                verdict: Verdict::Deny
            }
        );
    }

    #[test]
    fn output_acl_applies_even_when_the_tx_policy_is_skipped() {
        let (mut s, a, b) = two_pods();
        let g = guard(&mut s);
        assert_eq!(s.acl_set_interface_list(b, 0, &[g]), 0);
        let gre = Packet {
            proto: 47,
            dst: "10.0.0.9".parse().unwrap(),
            ..pkt()
        };
        let f = s.evaluate_flow(a, b, &gre);
        assert_eq!(f.tx, Some(Enforcement::AclDenied { matched: None }));
        assert_eq!(s.evaluate(b, Direction::Tx, &gre), Verdict::Deny);
        assert_eq!(s.evaluate(b, Direction::Rx, &gre), Verdict::Allow);
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
