//! The protocol guard: a stateless ACL (VPP's ACL plugin) on every workload interface that
//! lets through only what npol polices and what Felix admits whatever the policy says, so
//! that nothing crosses a pod's interface unpoliced. Pure data and its evaluation; no VPP
//! types, no ids. It must never permit a kind of packet npol does not see unless Felix
//! would let that packet through regardless of policy.
//!
//! Why it exists (VPP v26.10 `cnat_make_buffer_5tuple`): cnat builds a flow tuple only for
//! TCP, UDP, SCTP and ICMP echo request/reply; for anything else (IPIP, GRE, ESP, other ICMP
//! types) the tuple is zero, cnat's lookup rejects it and npol is never consulted: such
//! packets pass whatever the policy. Felix's Linux dataplane polices them like any other.
//!
//! What each direction permits (first match; VPP's ACL denies when nothing matches):
//! - both: TCP, UDP, SCTP (any ports; npol polices them); ICMP echo requests with code 0
//!   (v4 8, v6 128) and echo replies (v4 0, v6 129), which npol polices; and ICMP errors
//!   (v4 3, 4, 5, 6, 11, 12; v6 1, 2, 3, 4): Linux passes those only as conntrack RELATED.
//!   cnat looks an error up by the packet it quotes: one that quotes a live session passes
//!   (as RELATED does); one that quotes no session is evaluated by npol as a new flow of the
//!   quoted protocol — where Felix would drop it as INVALID. That residual is the price of
//!   keeping path-MTU discovery and unreachables working, and is stated in
//!   [`Note::GuardIcmpErrors`](crate::Note).
//! - Why echo requests only with code 0: npol's flow tuple carries the echo identifier, not
//!   the ICMP type or code, so npol cannot tell an echo request from a reply, nor one code
//!   from another. A reply that answers a request rides the request's cnat session and never
//!   meets npol; so every ICMP flow npol judges is an echo request — with code 0, which the
//!   guard ensures — and the compiler resolves each Calico ICMP type/code match against
//!   exactly that packet (`rules.rs`). Echo requests with another code (no real client sends
//!   one) are dropped: stricter than Felix, reported as `GuardStricter` on rules that could
//!   allow them. An echo reply that answers no request (conntrack INVALID: Felix drops it
//!   before policy) is judged by npol as if it were a request: the one residual, stated in
//!   the README.
//! - RX (pod egress) also: ICMPv6 130, 131, 132, 133, 135, 136 (MLD, router and neighbour
//!   solicitation, neighbour advertisement) — Felix accepts these from workloads before any
//!   policy (`ICMPv6Filter`).
//! - TX (pod ingress) also: ICMPv6 130–136, which VPP itself sends to the pod (MLD, RA,
//!   ND); Felix never polices host→workload traffic. These types are link-scoped (hop limit
//!   1 or 255), so VPP never forwards a usable one from elsewhere.
//! - Everything else — IPIP, GRE, ESP, AH, other ICMP types, ICMP of the wrong family —
//!   is denied. Where a Calico policy would allow such a packet this is stricter than Felix;
//!   the compiler reports each such allow rule ([`Note::GuardStricter`](crate::Note)).

use std::net::IpAddr;

use npol::{Packet, Verdict};
use serde::{Deserialize, Serialize};

use crate::desired::AclKey;
use crate::report::CalicoDirection;

/// The guard applied on VPP RX of a workload interface (the pod's egress).
pub const GUARD_RX: &str = "g:guard-rx";
/// The guard applied on VPP TX of a workload interface (the pod's ingress).
pub const GUARD_TX: &str = "g:guard-tx";

/// ICMPv4 echo request: npol polices it; the guard passes it with code 0 only.
pub const ICMP4_ECHO_REQUEST: u8 = 8;
/// ICMPv4 echo reply: npol polices it (when it answers no request); any code passes.
pub const ICMP4_ECHO_REPLY: u8 = 0;
/// ICMPv6 echo request: npol polices it; the guard passes it with code 0 only.
pub const ICMP6_ECHO_REQUEST: u8 = 128;
/// ICMPv6 echo reply: npol polices it (when it answers no request); any code passes.
pub const ICMP6_ECHO_REPLY: u8 = 129;
/// The only echo-request code the guard passes, so the only one npol ever judges.
pub const ECHO_REQUEST_CODE: u8 = 0;
/// IPv4 ICMP errors Linux conntrack can mark RELATED (unreachable, source quench,
/// redirect, time exceeded, parameter problem), and type 6 (alternate host address), which
/// cnat also takes for an error and keys by the packet it quotes. Every type cnat keys that
/// way must pass the guard: cnat's lookup, the first IPv4 feature, has already made a session
/// for the quoted flow by the time an ACL drops the error, and that session never meets the
/// destination's TX policy, so later packets of the quoted flow would skip it (reproduced on
/// a real VPP; see the README). Passing, the error goes on to npol like any new flow.
pub const ICMP4_ERRORS: [u8; 6] = [3, 4, 5, 6, 11, 12];
/// IPv6 ICMP errors (unreachable, packet too big, time exceeded, parameter problem).
pub const ICMP6_ERRORS: [u8; 4] = [1, 2, 3, 4];
/// ICMPv6 types Felix accepts from workloads before policy.
pub const ICMP6_FROM_WORKLOAD: [u8; 6] = [130, 131, 132, 133, 135, 136];
/// ICMPv6 types VPP sends to a pod as its router (MLD, RS, RA, NS, NA).
pub const ICMP6_TO_WORKLOAD: [u8; 7] = [130, 131, 132, 133, 134, 135, 136];

/// The IP family of an ACL rule (its prefixes are the family's all-zero prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AclFamily {
    V4,
    V6,
}

/// `acl_action`: only the stateless actions; the guard keeps no sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AclAction {
    Deny,
    Permit,
}

/// One ACL rule with any source and destination of its family. `proto` 0 matches every
/// protocol and ignores the ranges; otherwise the ranges are ports, or ICMP type and code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclRule {
    pub action: AclAction,
    pub family: AclFamily,
    pub proto: u8,
    pub sport_or_icmp_type: (u16, u16),
    pub dport_or_icmp_code: (u16, u16),
}

/// An ACL: its rules in order, and the tag VPP stores with it (for operators).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acl {
    pub tag: String,
    pub rules: Vec<AclRule>,
}

/// Which guard ACL a workload interface carries in each direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceGuard {
    /// VPP input (RX, the pod's egress).
    pub input: AclKey,
    /// VPP output (TX, the pod's ingress).
    pub output: AclKey,
}

impl InterfaceGuard {
    /// The shared guard every workload interface carries.
    pub fn workload() -> InterfaceGuard {
        InterfaceGuard {
            input: AclKey(GUARD_RX.into()),
            output: AclKey(GUARD_TX.into()),
        }
    }

    pub fn for_direction(&self, dir: CalicoDirection) -> &AclKey {
        match dir {
            CalicoDirection::Ingress => &self.output,
            CalicoDirection::Egress => &self.input,
        }
    }
}

fn any_ports(action: AclAction, family: AclFamily, proto: u8) -> AclRule {
    AclRule {
        action,
        family,
        proto,
        sport_or_icmp_type: (0, u16::MAX),
        dport_or_icmp_code: (0, u16::MAX),
    }
}

fn icmp_type(family: AclFamily, t: u8) -> AclRule {
    icmp_type_codes(family, t, (0, u8::MAX))
}

fn icmp_type_codes(family: AclFamily, t: u8, (lo, hi): (u8, u8)) -> AclRule {
    AclRule {
        action: AclAction::Permit,
        family,
        proto: match family {
            AclFamily::V4 => 1,
            AclFamily::V6 => 58,
        },
        sport_or_icmp_type: (t.into(), t.into()),
        dport_or_icmp_code: (lo.into(), hi.into()),
    }
}

/// The echo request of `family` npol judges: its type and the one code the guard passes.
pub fn echo_request(family: AclFamily) -> (u8, u8) {
    match family {
        AclFamily::V4 => (ICMP4_ECHO_REQUEST, ECHO_REQUEST_CODE),
        AclFamily::V6 => (ICMP6_ECHO_REQUEST, ECHO_REQUEST_CODE),
    }
}

/// ICMPv6 types the guard permits in Calico direction `dir`, besides echo and errors.
fn icmp6_extra(dir: CalicoDirection) -> &'static [u8] {
    match dir {
        CalicoDirection::Egress => &ICMP6_FROM_WORKLOAD,
        CalicoDirection::Ingress => &ICMP6_TO_WORKLOAD,
    }
}

/// What the guard lets through besides what npol polices and Felix always admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GuardOptions {
    /// Permit ICMP errors (the default; see the module docs). `false` drops them all:
    /// never more permissive than Felix, but path-MTU discovery and unreachables break.
    /// Driver setting `VPPGuardAllowICMPErrors` (a `ConfigUpdate` key).
    pub icmp_errors: bool,
}

impl Default for GuardOptions {
    fn default() -> Self {
        GuardOptions { icmp_errors: true }
    }
}

impl GuardOptions {
    fn icmp4_errors(&self) -> &'static [u8] {
        if self.icmp_errors {
            &ICMP4_ERRORS
        } else {
            &[]
        }
    }

    fn icmp6_errors(&self) -> &'static [u8] {
        if self.icmp_errors {
            &ICMP6_ERRORS
        } else {
            &[]
        }
    }
}

/// The guard ACL for Calico direction `dir` (egress = VPP RX, ingress = VPP TX), default
/// options.
pub fn guard_acl(dir: CalicoDirection) -> Acl {
    guard_acl_with(dir, GuardOptions::default())
}

/// The guard ACL for Calico direction `dir` with `opts`.
pub fn guard_acl_with(dir: CalicoDirection, opts: GuardOptions) -> Acl {
    let mut rules = Vec::new();
    for family in [AclFamily::V4, AclFamily::V6] {
        for proto in crate::rules::PORT_PROTOCOLS {
            rules.push(any_ports(AclAction::Permit, family, proto));
        }
    }
    let code = (ECHO_REQUEST_CODE, ECHO_REQUEST_CODE);
    rules.push(icmp_type_codes(AclFamily::V4, ICMP4_ECHO_REQUEST, code));
    for t in [ICMP4_ECHO_REPLY].iter().chain(opts.icmp4_errors()) {
        rules.push(icmp_type(AclFamily::V4, *t));
    }
    rules.push(icmp_type_codes(AclFamily::V6, ICMP6_ECHO_REQUEST, code));
    for t in [ICMP6_ECHO_REPLY]
        .iter()
        .chain(opts.icmp6_errors())
        .chain(icmp6_extra(dir))
    {
        rules.push(icmp_type(AclFamily::V6, *t));
    }
    // Explicit, though VPP's ACL denies unmatched packets anyway: it shows in `show acl`.
    for family in [AclFamily::V4, AclFamily::V6] {
        rules.push(any_ports(AclAction::Deny, family, 0));
    }
    let tag = match dir {
        CalicoDirection::Egress => GUARD_RX,
        CalicoDirection::Ingress => GUARD_TX,
    };
    Acl {
        tag: format!("calico-vpp {tag}"),
        rules,
    }
}

/// Both guard ACLs (default options), keyed as the desired state holds them.
/// The ACL a pod interface the driver made carries (both directions) until Felix's endpoint
/// is bound to it: everything dropped. The binding's guard ACLs replace it.
pub const POD_DARK: &str = "calico-pod-dark";

/// [`POD_DARK`]: deny every packet of both families.
pub fn pod_dark_acl() -> (AclKey, Acl) {
    (
        AclKey(POD_DARK.into()),
        Acl {
            tag: POD_DARK.into(),
            rules: vec![
                any_ports(AclAction::Deny, AclFamily::V4, 0),
                any_ports(AclAction::Deny, AclFamily::V6, 0),
            ],
        },
    )
}

pub fn guard_acls() -> [(AclKey, Acl); 2] {
    guard_acls_with(GuardOptions::default())
}

pub fn guard_acls_with(opts: GuardOptions) -> [(AclKey, Acl); 2] {
    [
        (
            AclKey(GUARD_RX.into()),
            guard_acl_with(CalicoDirection::Egress, opts),
        ),
        (
            AclKey(GUARD_TX.into()),
            guard_acl_with(CalicoDirection::Ingress, opts),
        ),
    ]
}

/// The L4 fields VPP's ACL plugin compares (`acl_fill_5tuple_l4_and_pkt_data`): ports for
/// TCP and UDP, type and code for the family's ICMP, zero for every other protocol (SCTP
/// included: the plugin does not parse its ports).
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

/// The ACL plugin's verdict for `pkt` (first matching rule; nothing matched → deny).
///
/// A rule with a protocol set needs the packet's L4 fields to be in range (see
/// [`l4_fields`]). Non-first fragments are not modelled (VPP matches them on the protocol
/// alone by default; every guard rule naming a protocol permits).
pub fn acl_verdict(acl: &Acl, pkt: &Packet) -> Verdict {
    let family = match pkt.src {
        IpAddr::V4(_) => AclFamily::V4,
        IpAddr::V6(_) => AclFamily::V6,
    };
    for r in &acl.rules {
        if r.family != family {
            continue;
        }
        if r.proto != 0 {
            if r.proto != pkt.proto {
                continue;
            }
            let (a, b) = l4_fields(pkt);
            if !in_range(a, r.sport_or_icmp_type) || !in_range(b, r.dport_or_icmp_code) {
                continue;
            }
        }
        return match r.action {
            AclAction::Permit => Verdict::Allow,
            AclAction::Deny => Verdict::Deny,
        };
    }
    Verdict::Deny
}

/// Does the guard for Calico direction `dir` (default options) let `pkt` through to npol?
pub fn guard_permits(dir: CalicoDirection, pkt: &Packet) -> bool {
    guard_permits_with(dir, GuardOptions::default(), pkt)
}

/// Same answer as [`acl_verdict`] on [`guard_acl_with`], without building it.
pub fn guard_permits_with(dir: CalicoDirection, opts: GuardOptions, pkt: &Packet) -> bool {
    let v6 = pkt.src.is_ipv6();
    match (pkt.proto, v6) {
        (6 | 17 | 132, _) => true,
        (1, false) => {
            (pkt.icmp_type == ICMP4_ECHO_REQUEST && pkt.icmp_code == ECHO_REQUEST_CODE)
                || pkt.icmp_type == ICMP4_ECHO_REPLY
                || opts.icmp4_errors().contains(&pkt.icmp_type)
        }
        (58, true) => {
            (pkt.icmp_type == ICMP6_ECHO_REQUEST && pkt.icmp_code == ECHO_REQUEST_CODE)
                || pkt.icmp_type == ICMP6_ECHO_REPLY
                || opts.icmp6_errors().contains(&pkt.icmp_type)
                || icmp6_extra(dir).contains(&pkt.icmp_type)
        }
        _ => false,
    }
}

/// Could a Calico rule with these protocol constraints match a packet that the guard for
/// `dir` drops? Over-approximates (never says no when the answer is yes): used to report
/// allow rules the guard makes stricter than Felix.
pub(crate) fn rule_may_match_guarded(
    rule: &calico_model::Rule,
    dir: CalicoDirection,
    opts: GuardOptions,
) -> bool {
    let guard_permits = |dir, pkt: &Packet| guard_permits_with(dir, opts, pkt);
    let uses_ports = !(rule.src_ports.is_empty()
        && rule.dst_ports.is_empty()
        && rule.src_named_port_ip_set_ids.is_empty()
        && rule.dst_named_port_ip_set_ids.is_empty()
        && rule.not_src_ports.is_empty()
        && rule.not_dst_ports.is_empty()
        && rule.not_src_named_port_ip_set_ids.is_empty()
        && rule.not_dst_named_port_ip_set_ids.is_empty()
        && rule.dst_ip_port_set_ids.is_empty());
    if uses_ports {
        // Port matches only ever match TCP, UDP or SCTP, all of which the guard permits.
        return false;
    }
    let v4 = IpAddr::from([0u8, 0, 0, 0]);
    let v6 = IpAddr::from([0u16; 8]);
    // Is some packet of the family's ICMP that `m` matches dropped by the guard? A match
    // without a code matches every code, and the guard passes echo requests of one code only.
    let guarded = |addr: IpAddr, m: &calico_model::IcmpMatch| match m.code {
        Some(c) => !guard_permits(dir, &Packet::icmp(addr, addr, m.icmp_type, c, 0)),
        None => {
            (0..=u8::MAX).any(|c| !guard_permits(dir, &Packet::icmp(addr, addr, m.icmp_type, c, 0)))
        }
    };
    match (rule.protocol, &rule.icmp) {
        (Some(6 | 17 | 132), _) => false,
        (Some(p @ (1 | 58)), Some(m)) => guarded(if p == 1 { v4 } else { v6 }, m),
        // An ICMP match on any other protocol never matches; without a protocol it only
        // matches the family's ICMP of that type — still possibly a guarded one.
        (Some(_), Some(_)) => false,
        (None, Some(m)) => guarded(v4, m) || guarded(v6, m),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn packets() -> Vec<Packet> {
        let (a4, b4) = (v4("10.0.0.1"), v4("10.0.0.2"));
        let (a6, b6) = (v4("fd00::1"), v4("fd00::2"));
        let mut out = Vec::new();
        for (a, b) in [(a4, b4), (a6, b6)] {
            for proto in [0u8, 1, 4, 6, 17, 41, 47, 50, 51, 58, 132, 255] {
                out.push(Packet::l4(proto, a, 1000, b, 80));
            }
            for t in 0..=255u8 {
                out.push(Packet::icmp(a, b, t, 0, 7));
                out.push(Packet::icmp(a, b, t, 9, 7));
            }
        }
        out
    }

    #[test]
    fn guard_acl_and_shortcut_agree_on_every_protocol_and_icmp_type() {
        for icmp_errors in [true, false] {
            let opts = GuardOptions { icmp_errors };
            for dir in [CalicoDirection::Ingress, CalicoDirection::Egress] {
                let acl = guard_acl_with(dir, opts);
                for p in packets() {
                    assert_eq!(
                        acl_verdict(&acl, &p) == Verdict::Allow,
                        guard_permits_with(dir, opts, &p),
                        "{dir:?} {p:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn icmp_errors_cross_only_when_allowed() {
        let (a, b) = (v4("10.0.0.1"), v4("10.0.0.2"));
        let (a6, b6) = (v4("fd00::1"), v4("fd00::2"));
        let strict = GuardOptions { icmp_errors: false };
        for dir in [CalicoDirection::Ingress, CalicoDirection::Egress] {
            for t in ICMP4_ERRORS {
                let p = Packet::icmp(a, b, t, 4, 0);
                assert!(guard_permits(dir, &p));
                assert!(!guard_permits_with(dir, strict, &p));
            }
            for t in ICMP6_ERRORS {
                let p = Packet::icmp(a6, b6, t, 0, 0);
                assert!(guard_permits(dir, &p));
                assert!(!guard_permits_with(dir, strict, &p));
            }
        }
    }

    #[test]
    fn guard_permits_everything_npol_polices_but_odd_echo_request_codes() {
        for dir in [CalicoDirection::Ingress, CalicoDirection::Egress] {
            for p in packets() {
                let odd_request = matches!((p.proto, p.icmp_type), (1, 8) | (58, 128))
                    && p.icmp_code != ECHO_REQUEST_CODE;
                if p.npol_tuple().is_some() {
                    assert_eq!(guard_permits(dir, &p), !odd_request, "{dir:?} {p:?}");
                }
            }
        }
    }

    #[test]
    fn echo_requests_pass_with_code_0_only_and_replies_with_any_code() {
        let (a, b) = (v4("10.0.0.1"), v4("10.0.0.2"));
        let (a6, b6) = (v4("fd00::1"), v4("fd00::2"));
        for dir in [CalicoDirection::Ingress, CalicoDirection::Egress] {
            assert!(guard_permits(dir, &Packet::icmp(a, b, 8, 0, 1)));
            assert!(!guard_permits(dir, &Packet::icmp(a, b, 8, 1, 1)));
            assert!(guard_permits(dir, &Packet::icmp(a, b, 0, 7, 1)));
            assert!(guard_permits(dir, &Packet::icmp(a6, b6, 128, 0, 1)));
            assert!(!guard_permits(dir, &Packet::icmp(a6, b6, 128, 255, 1)));
            assert!(guard_permits(dir, &Packet::icmp(a6, b6, 129, 3, 1)));
        }
    }

    #[test]
    fn guard_drops_ipip_gre_esp_and_non_echo_icmp_queries() {
        let (a, b) = (v4("10.0.0.1"), v4("10.0.0.2"));
        for dir in [CalicoDirection::Ingress, CalicoDirection::Egress] {
            for proto in [4u8, 41, 47, 50, 51, 58, 0] {
                assert!(
                    !guard_permits(dir, &Packet::l4(proto, a, 0, b, 0)),
                    "{proto}"
                );
            }
            for t in [13u8, 14, 17, 9, 10] {
                assert!(!guard_permits(dir, &Packet::icmp(a, b, t, 0, 0)), "{t}");
            }
        }
    }

    #[test]
    fn router_advertisement_only_towards_the_pod() {
        let (a, b) = (v4("fe80::1"), v4("fe80::2"));
        let ra = Packet::icmp(a, b, 134, 0, 0);
        assert!(guard_permits(CalicoDirection::Ingress, &ra));
        assert!(!guard_permits(CalicoDirection::Egress, &ra));
        let ns = Packet::icmp(a, b, 135, 0, 0);
        assert!(guard_permits(CalicoDirection::Ingress, &ns));
        assert!(guard_permits(CalicoDirection::Egress, &ns));
    }
}
