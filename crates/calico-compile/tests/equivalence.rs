//! The law: for every endpoint, direction and packet, the compiled objects — the protocol
//! guard ACL, then npol — give the reference's verdict, with two stated exceptions:
//! - the guard drops every packet npol does not police (IPIP, GRE, ESP, non-echo ICMP, ICMP
//!   of the other family) and echo requests whose code is not 0: a compiled deny where the
//!   reference allows is accepted only when the allow rule that decided it carries a
//!   `GuardStricter` note in the compile report (stricter, never more permissive);
//! - an ICMP echo reply that answers no request, which Felix drops as conntrack INVALID
//!   (`Decision::UnsolicitedEchoReply`), is judged by npol exactly as an echo request of the
//!   same addresses and identifier would be: npol's flow tuple holds no ICMP type (stated
//!   as the one residual in the README). The law pins that, so the residual cannot grow.
//!
//! ICMP type/code matches are exact: every ICMP flow npol judges is an echo request with
//! code 0, and the compiler decides each match against it (see `rules.rs`, `guard.rs`).
//!
//! On egress most packets are rewritten to leave from the endpoint's own address (see
//! `gen::as_sent_by`), the rest are spoofed or IPv6 link-local, so both the anti-spoofing
//! check and egress policy are exercised.
//!
//! Case counts: the defaults below keep a debug `cargo test` short; `PROPTEST_CASES=<n>`
//! sets every property's count for a deep run, e.g.
//! `PROPTEST_CASES=100000 cargo test -p calico-compile --release --test equivalence`.
//!
//! Not generated: ICMP errors and the ICMPv6 ND/MLD types, which the guard permits and npol
//! does not see (their fate depends on cnat sessions; see `calico_compile::guard`).

mod gen;

use calico_compile::guard::guard_permits;
use calico_compile::{
    compile, evaluate_compiled, reference, reference::Decision, CalicoDirection, Compiled,
    Compiler, InterfaceKey, Note, Subject,
};
use calico_model::Model;
use npol::{Packet, Verdict};
use proptest::prelude::*;

/// The number of cases for a property: `PROPTEST_CASES` when set, else `default`. (An
/// explicit `cases` in a `ProptestConfig` would override proptest's own reading of it.)
fn cases(default: u32) -> u32 {
    match std::env::var("PROPTEST_CASES") {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("PROPTEST_CASES={v:?} is not a number")),
        Err(_) => default,
    }
}

/// The echo request that `reply` would be, for the residual: same addresses and identifier.
fn as_request(reply: &Packet) -> Packet {
    let mut p = *reply;
    p.icmp_type = if p.src.is_ipv4() { 8 } else { 128 };
    p.icmp_code = 0;
    p
}

fn check(model: &Model, packets: &[Packet]) -> Result<(), TestCaseError> {
    let compiled = compile(model);
    for (id, ep) in &model.workload_endpoints {
        let iface = InterfaceKey(ep.name.clone());
        let compiled_verdict = |dir, pkt: &Packet| {
            evaluate_compiled(&compiled.desired, &iface, dir, pkt)
                .expect("every workload has an interface")
        };
        for dir in [CalicoDirection::Ingress, CalicoDirection::Egress] {
            for (i, pkt) in packets.iter().enumerate() {
                let pkt = &match dir {
                    CalicoDirection::Egress => gen::as_sent_by(ep, pkt, i),
                    CalicoDirection::Ingress => *pkt,
                };
                let want = reference::evaluate(model, id, dir, pkt);
                let got = compiled_verdict(dir, pkt);
                if want.decided_by == Decision::UnsolicitedEchoReply {
                    let as_request = compiled_verdict(dir, &as_request(pkt));
                    prop_assert_eq!(
                        got.verdict,
                        as_request.verdict,
                        "{} {:?} {:?}: an unsolicited echo reply is not judged as its request",
                        id,
                        dir,
                        pkt
                    );
                    continue;
                }
                if got.verdict == Verdict::Deny
                    && want.verdict == Verdict::Allow
                    && !guard_permits(dir, pkt)
                {
                    prop_assert!(
                        reported_stricter(&compiled, &want.decided_by, dir),
                        "guard denied {:?} {:?} that {:?} allowed, without a GuardStricter note",
                        dir,
                        pkt,
                        want.decided_by
                    );
                    continue;
                }
                prop_assert_eq!(
                    got.verdict,
                    want.verdict,
                    "{} {:?} {:?}: reference {:?}, npol trace {:?}",
                    id,
                    dir,
                    pkt,
                    want.decided_by,
                    got.trace
                );
            }
        }
    }
    Ok(())
}

/// Does the report name the allow rule that decided `d` as one the guard makes stricter?
fn reported_stricter(compiled: &Compiled, d: &Decision, dir: CalicoDirection) -> bool {
    let (subject, index) = match d {
        Decision::Rule { policy, index, .. } => (Subject::Policy(policy.clone()), *index),
        Decision::ProfileRule { profile, index, .. } => (Subject::Profile(profile.clone()), *index),
        _ => return false,
    };
    compiled.report.of(&subject).iter().any(|n| {
        matches!(n, Note::GuardStricter { direction, index: i, .. } if *direction == dir && *i == index)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1000), ..ProptestConfig::default() })]

    #[test]
    fn compiled_verdict_equals_reference(model in gen::model(false), packets in proptest::collection::vec(gen::any_packet(), 32)) {
        check(&model, &packets)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(300), ..ProptestConfig::default() })]

    #[test]
    fn icmp_type_rules_compile_exactly(model in gen::model(true), packets in proptest::collection::vec(gen::any_packet(), 32)) {
        check(&model, &packets)?;
    }

    #[test]
    fn compile_is_deterministic(model in gen::model(true)) {
        prop_assert_eq!(compile(&model), compile(&model));
    }

    #[test]
    fn incremental_update_equals_full_compile(first in gen::model(true), a in gen::model(true), b in gen::model(true)) {
        // Two updates in a row, so the second starts from incrementally built state.
        let mut c = Compiler::new(&first);
        c.update(&a, &gen::changes(&first, &a));
        let before = c.desired().clone();
        let diff = c.update(&b, &gen::changes(&a, &b));
        let full = compile(&b);
        prop_assert_eq!(c.desired(), &full.desired);
        prop_assert_eq!(c.report(), &full.report);
        prop_assert_eq!(diff, before.diff(&full.desired));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1000), ..ProptestConfig::default() })]

    /// The law on models where half the rules are ICMP-shaped (negated matches, ICMPv6,
    /// protocol 58 with a type, `not_protocol`, pass rules), with more ICMP echo (requests
    /// of several codes, replies) among the packets: the shapes of issue 11, which
    /// `gen::model(true)` rarely draws.
    #[test]
    fn icmp_heavy_rules_compile_exactly(model in gen::model_of(gen::Mix::IcmpHeavy), packets in proptest::collection::vec(gen::icmp_heavy_packet(), 32)) {
        check(&model, &packets)?;
    }
}
