//! The law: for every endpoint, direction and packet npol polices, npol's evaluation of the
//! compiled objects gives the reference's verdict. Where npol cannot express Calico
//! (ICMP type/code), the compiled verdict may only be stricter, never more permissive.

mod gen;

use calico_compile::{
    compile, evaluate_compiled, reference, CalicoDirection, Compiler, IcmpFate, InterfaceKey,
};
use calico_model::Model;
use npol::{Packet, Verdict};
use proptest::prelude::*;

fn check(model: &Model, packets: &[Packet], exact: bool) -> Result<(), TestCaseError> {
    let compiled = compile(model);
    let icmp_fail_closed = compiled.report.icmp_count(IcmpFate::Narrowed)
        + compiled.report.icmp_count(IcmpFate::Widened)
        > 0;
    for (id, ep) in &model.workload_endpoints {
        for dir in [CalicoDirection::Ingress, CalicoDirection::Egress] {
            for pkt in packets {
                let want = reference::evaluate(model, id, dir, pkt);
                let got =
                    evaluate_compiled(&compiled.desired, &InterfaceKey(ep.name.clone()), dir, pkt)
                        .expect("every workload has an interface");
                if exact || !icmp_fail_closed {
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
                } else if got.verdict == Verdict::Allow {
                    prop_assert_eq!(
                        want.verdict,
                        Verdict::Allow,
                        "fail-closed compile allowed more: {:?} {:?}",
                        dir,
                        pkt
                    );
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn compiled_verdict_equals_reference(model in gen::model(false), packets in proptest::collection::vec(gen::policed_packet(), 24)) {
        check(&model, &packets, true)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn icmp_type_rules_never_allow_more_than_reference(model in gen::model(true), packets in proptest::collection::vec(gen::policed_packet(), 24)) {
        check(&model, &packets, false)?;
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
