//! VPP's ACL plugin as the simulator keeps it: ACLs in a pool (VPP's ids and error codes from
//! `src/plugins/acl/acl.c`), per-interface input and output lists, and the stateless
//! first-match evaluation of `single_acl_match_5tuple`. Reflexive (stateful) permits are
//! stored but evaluated as plain permits; the simulator keeps no ACL sessions.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use npol::{Packet, Verdict};
use serde::Serialize;

use crate::pool::Pool;
use crate::state::{rv, SimState, NONE};

/// `VNET_API_ERROR_INVALID_VALUE_2`: a port or ICMP range whose first exceeds its last.
pub const INVALID_VALUE_2: i32 = -8;
/// `VNET_API_ERROR_INVALID_SRC_ADDRESS`: bad source prefix, or families that differ.
pub const INVALID_SRC_ADDRESS: i32 = -57;
/// `VNET_API_ERROR_INVALID_DST_ADDRESS`.
pub const INVALID_DST_ADDRESS: i32 = -58;
/// `VNET_API_ERROR_ACL_IN_USE_INBOUND`.
pub const ACL_IN_USE_INBOUND: i32 = -142;
/// `VNET_API_ERROR_ACL_IN_USE_OUTBOUND`.
pub const ACL_IN_USE_OUTBOUND: i32 = -143;

/// One rule, decoded (`acl_rule_t`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AclRule {
    /// 0 deny, 1 permit, 2 permit+reflect.
    pub action: u8,
    pub src: IpNet,
    pub dst: IpNet,
    /// 0: any protocol (ranges ignored).
    pub proto: u8,
    pub sport_or_type: (u16, u16),
    pub dport_or_code: (u16, u16),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Acl {
    pub tag: String,
    pub rules: Vec<AclRule>,
}

/// The ACL plugin's state.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Acls {
    pub acls: Pool<Acl>,
    /// Input (RX) ACL lists by interface, in order.
    pub input: BTreeMap<u32, Vec<u32>>,
    /// Output (TX) ACL lists by interface, in order.
    pub output: BTreeMap<u32, Vec<u32>>,
}

/// Why an ACL decided as it did (for `explain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AclMatch {
    pub verdict: Verdict,
    /// The ACL and rule index that matched; `None` when nothing matched (VPP then denies).
    pub matched: Option<(u32, usize)>,
}

/// The L4 fields VPP extracts (`acl_fill_5tuple_l4_and_pkt_data`): ports for TCP and UDP,
/// type and code for the family's ICMP, zeros otherwise (SCTP included).
fn l4_fields(pkt: &Packet) -> (u16, u16) {
    let family_icmp = if pkt.src.is_ipv6() { 58 } else { 1 };
    match pkt.proto {
        6 | 17 => (pkt.sport, pkt.dport),
        p if p == family_icmp => (pkt.icmp_type.into(), pkt.icmp_code.into()),
        _ => (0, 0),
    }
}

fn in_range(v: u16, (lo, hi): (u16, u16)) -> bool {
    lo <= v && v <= hi
}

fn rule_matches(r: &AclRule, pkt: &Packet) -> bool {
    if r.src.addr().is_ipv6() != pkt.src.is_ipv6() {
        return false;
    }
    if !r.dst.contains(&pkt.dst) || !r.src.contains(&pkt.src) {
        return false;
    }
    if r.proto != 0 {
        if r.proto != pkt.proto {
            return false;
        }
        let (a, b) = l4_fields(pkt);
        if !in_range(a, r.sport_or_type) || !in_range(b, r.dport_or_code) {
            return false;
        }
    }
    true
}

impl Acls {
    /// First match over the list's ACLs in order; no match, or an ACL id that does not
    /// exist, denies (as VPP does).
    pub fn evaluate(&self, list: &[u32], pkt: &Packet) -> AclMatch {
        for &id in list {
            let Some(acl) = self.acls.get(id) else {
                return AclMatch {
                    verdict: Verdict::Deny,
                    matched: None,
                };
            };
            if let Some(i) = acl.rules.iter().position(|r| rule_matches(r, pkt)) {
                let verdict = if acl.rules[i].action == 0 {
                    Verdict::Deny
                } else {
                    Verdict::Allow
                };
                return AclMatch {
                    verdict,
                    matched: Some((id, i)),
                };
            }
        }
        AclMatch {
            verdict: Verdict::Deny,
            matched: None,
        }
    }

    fn used(&self, id: u32) -> Option<i32> {
        if self.input.values().any(|l| l.contains(&id)) {
            return Some(ACL_IN_USE_INBOUND);
        }
        if self.output.values().any(|l| l.contains(&id)) {
            return Some(ACL_IN_USE_OUTBOUND);
        }
        None
    }
}

impl SimState {
    /// `acl_add_replace`: `index` `~0` creates, otherwise replaces in place (interfaces
    /// using it see the new rules). Checks as `acl_add_list` does, in its order.
    pub fn acl_add_replace(&mut self, index: u32, tag: String, rules: Vec<AclRule>) -> (i32, u32) {
        // VPP's tag field is 64 bytes with a NUL: a 64-byte tag is refused.
        if tag.len() >= 64 {
            return (rv::INVALID_VALUE, NONE);
        }
        for r in &rules {
            if r.src.addr().is_ipv6() != r.dst.addr().is_ipv6() {
                return (INVALID_SRC_ADDRESS, NONE);
            }
            if r.sport_or_type.0 > r.sport_or_type.1 || r.dport_or_code.0 > r.dport_or_code.1 {
                return (INVALID_VALUE_2, NONE);
            }
        }
        if index != NONE {
            return match self.acl.acls.get_mut(index) {
                Some(a) => {
                    *a = Acl { tag, rules };
                    (rv::OK, index)
                }
                None => (rv::NO_SUCH_ENTRY, NONE),
            };
        }
        (rv::OK, self.acl.acls.insert(Acl { tag, rules }))
    }

    /// `acl_del`: unknown → -6; applied to an interface → -142 (input) or -143 (output).
    pub fn acl_del(&mut self, index: u32) -> i32 {
        if !self.acl.acls.contains(index) {
            return rv::NO_SUCH_ENTRY;
        }
        if let Some(e) = self.acl.used(index) {
            return e;
        }
        self.acl.acls.remove(index);
        rv::OK
    }

    /// `acl_interface_set_acl_list`: the first `n_input` ids are the input list, the rest
    /// the output list. Unknown interface → -2, any unknown ACL → -6 (nothing changes).
    pub fn acl_set_interface_list(&mut self, sw_if_index: u32, n_input: u8, acls: &[u32]) -> i32 {
        if self.interface(sw_if_index).is_none() {
            return rv::INVALID_SW_IF_INDEX;
        }
        if acls.iter().any(|a| !self.acl.acls.contains(*a)) {
            return rv::NO_SUCH_ENTRY;
        }
        let n = usize::from(n_input).min(acls.len());
        let (input, output) = acls.split_at(n);
        for (map, list) in [(&mut self.acl.input, input), (&mut self.acl.output, output)] {
            if list.is_empty() {
                map.remove(&sw_if_index);
            } else {
                map.insert(sw_if_index, list.to_vec());
            }
        }
        rv::OK
    }

    /// The ACL verdict for `pkt` on an interface, input (`is_input`) or output; `None`
    /// when no ACL is applied there (the ACL plugin is not on the path).
    pub fn acl_check(&self, sw_if_index: u32, is_input: bool, pkt: &Packet) -> Option<AclMatch> {
        let map = if is_input {
            &self.acl.input
        } else {
            &self.acl.output
        };
        map.get(&sw_if_index).map(|l| self.acl.evaluate(l, pkt))
    }

    /// What an interface delete does to the ACL plugin's per-interface state.
    pub(crate) fn acl_forget_interface(&mut self, sw_if_index: u32) {
        self.acl.input.remove(&sw_if_index);
        self.acl.output.remove(&sw_if_index);
    }
}

/// An address of the family of `v6`, for building any-prefix rules in tests.
pub fn any_prefix(v6: bool) -> IpNet {
    let a: IpAddr = if v6 {
        IpAddr::from([0u16; 8])
    } else {
        IpAddr::from([0u8; 4])
    };
    IpNet::new(a, 0).unwrap_or_else(|_| IpNet::from(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permit(proto: u8, t: (u16, u16)) -> AclRule {
        AclRule {
            action: 1,
            src: any_prefix(false),
            dst: any_prefix(false),
            proto,
            sport_or_type: t,
            dport_or_code: (0, u16::MAX),
        }
    }

    fn pod() -> (SimState, u32) {
        let mut s = SimState::new();
        let a = s.create_af_packet("a", None).unwrap();
        (s, a)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn unmatched_packets_are_denied_and_first_match_decides() {
        let (mut s, a) = pod();
        let (r, id) = s.acl_add_replace(
            NONE,
            "t".into(),
            vec![permit(6, (0, u16::MAX)), permit(1, (8, 8))],
        );
        assert_eq!((r, id), (0, 0));
        assert_eq!(s.acl_set_interface_list(a, 1, &[id]), 0);
        let tcp = Packet::tcp(ip("10.0.0.1"), 1, ip("10.0.0.2"), 80);
        let ping = Packet::icmp(ip("10.0.0.1"), ip("10.0.0.2"), 8, 0, 1);
        let ts = Packet::icmp(ip("10.0.0.1"), ip("10.0.0.2"), 13, 0, 1);
        let gre = Packet::l4(47, ip("10.0.0.1"), 0, ip("10.0.0.2"), 0);
        let v6 = Packet::tcp(ip("fd00::1"), 1, ip("fd00::2"), 80);
        let check = |p: &Packet| s.acl_check(a, true, p).map(|m| m.verdict);
        assert_eq!(check(&tcp), Some(Verdict::Allow));
        assert_eq!(check(&ping), Some(Verdict::Allow));
        assert_eq!(check(&ts), Some(Verdict::Deny));
        assert_eq!(check(&gre), Some(Verdict::Deny));
        assert_eq!(check(&v6), Some(Verdict::Deny), "rule family is v4");
        assert_eq!(s.acl_check(a, false, &gre), None, "no output list");
    }

    #[test]
    fn errors_match_the_acl_plugin() {
        let (mut s, a) = pod();
        assert_eq!(
            s.acl_add_replace(5, "t".into(), vec![]).0,
            rv::NO_SUCH_ENTRY
        );
        assert_eq!(
            s.acl_add_replace(NONE, "t".into(), vec![permit(6, (9, 1))])
                .0,
            INVALID_VALUE_2
        );
        let (_, id) = s.acl_add_replace(NONE, "t".into(), vec![]);
        assert_eq!(
            s.acl_set_interface_list(99, 1, &[id]),
            rv::INVALID_SW_IF_INDEX
        );
        assert_eq!(s.acl_set_interface_list(a, 1, &[id, 7]), rv::NO_SUCH_ENTRY);
        assert_eq!(s.acl_set_interface_list(a, 0, &[id]), 0);
        assert_eq!(s.acl_del(id), ACL_IN_USE_OUTBOUND);
        assert_eq!(s.acl_set_interface_list(a, 0, &[]), 0);
        assert_eq!(s.acl_del(id), 0);
        assert_eq!(s.acl_del(id), rv::NO_SUCH_ENTRY);
    }

    #[test]
    fn text_dump_lists_acls_and_interface_lists() {
        let (mut s, a) = pod();
        let (_, id) = s.acl_add_replace(NONE, "guard".into(), vec![permit(6, (0, u16::MAX))]);
        s.acl_set_interface_list(a, 1, &[id]);
        let t = s.render_text();
        assert!(t.contains("acl 0 tag \"guard\" 1 rules"), "{t}");
        assert!(t.contains("permit 0.0.0.0/0 -> 0.0.0.0/0 proto 6"), "{t}");
        assert!(t.contains(&format!("interface {a}: input [0]")), "{t}");
    }

    #[test]
    fn replace_in_place_changes_what_interfaces_see() {
        let (mut s, a) = pod();
        let (_, id) = s.acl_add_replace(NONE, "t".into(), vec![permit(47, (0, u16::MAX))]);
        s.acl_set_interface_list(a, 1, &[id]);
        let gre = Packet::l4(47, ip("10.0.0.1"), 0, ip("10.0.0.2"), 0);
        assert_eq!(s.acl_check(a, true, &gre).unwrap().verdict, Verdict::Allow);
        assert_eq!(s.acl_add_replace(id, "t".into(), vec![]), (0, id));
        assert_eq!(s.acl_check(a, true, &gre).unwrap().verdict, Verdict::Deny);
    }
}
