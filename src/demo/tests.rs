//! The demo against the simulator: it converges, every pod is reported up, and every flow
//! verdict of the simulator agrees with Calico's reference semantics.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_on_the_simulator_reports_every_pod_up_and_all_verdicts_agree() {
    let mut out = Vec::new();
    let outcome = run(DemoOptions::simulator(), &mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(outcome.all_agree(), "{text}");
    assert_eq!(outcome.flows.len(), scenario::flows().len());
    for pod in PODS {
        assert_eq!(
            outcome
                .statuses
                .get(&pod.label())
                .cloned()
                .flatten()
                .as_deref(),
            Some("up"),
            "{text}"
        );
    }
    // The table shows both verdicts, allow and deny both occur.
    let allows = outcome
        .flows
        .iter()
        .filter(|f| f.expected == Verdict::Allow)
        .count();
    assert!(allows > 2 && allows < outcome.flows.len(), "{text}");
    assert!(text.contains("npol"), "{text}");
    assert!(text.contains("12/12 verdicts agree"), "{text}");
}

#[test]
fn flows_cover_named_port_default_deny_and_the_delta() {
    let all: Vec<proto::ToDataplane> = scenario::snapshot()
        .into_iter()
        .chain(scenario::deltas())
        .collect();
    let model = model_of(&all);
    let verdict = |i: usize| reference_verdict(&model, &scenario::flows()[i]).0;
    assert_eq!(
        verdict(0),
        Verdict::Allow,
        "frontend reaches cart's named port"
    );
    assert_eq!(verdict(1), Verdict::Deny, "another port of cart is closed");
    assert_eq!(
        verdict(3),
        Verdict::Allow,
        "frontend-2 admitted by the IP set delta"
    );
    assert_eq!(verdict(8), Verdict::Deny, "quarantine is default-deny");
    // Before the delta frontend-2's address is in no set: cart refuses it.
    let before = model_of(&scenario::snapshot());
    assert_eq!(
        reference_verdict(&before, &scenario::flows()[3]).0,
        Verdict::Deny
    );
}
