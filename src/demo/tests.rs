//! The demo against the simulator: it converges, every pod is reported up, and every flow
//! verdict of the simulator agrees with Calico's reference semantics.

use super::*;
use crate::dataplane::npol_match;

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
    assert!(text.contains("13/13 verdicts agree"), "{text}");
    // Paths the driver built from Felix's routes, VTEPs and pools: another node's pod over
    // VXLAN with the source kept, the outside with the node's address.
    let [(_, remote), (_, outside), (service_row, service)] = &outcome.paths[..] else {
        panic!("three paths: {text}");
    };
    // A new connection to the cart service's ClusterIP goes to the cart pod's 8080.
    assert!(
        service_row.contains("10.96.0.20:80 (ClusterIP shop/cart) -> 10.70.0.11:8080"),
        "{text}"
    );
    assert!(service.as_ref().is_ok_and(|p| !p.translated), "{text}");
    let remote = remote.as_ref().expect("a path to node2's pod");
    let node1: std::net::IpAddr = scenario::NODE_IP.parse().unwrap();
    let node2: std::net::IpAddr = scenario::NODE2_IP.parse().unwrap();
    assert_eq!(remote.encap, Some(("vxlan", node1, node2)), "{text}");
    assert!(!remote.translated, "{text}");
    let outside = outside.as_ref().expect("a path outside");
    assert_eq!(
        (outside.source, outside.translated),
        (node1, true),
        "{text}"
    );
    assert_eq!(outside.next_hop, scenario::GATEWAY.parse().ok(), "{text}");
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
    // db admits api's address, but frontend forging it is dropped at its own egress.
    let spoofed = &scenario::flows()[12];
    assert_eq!(spoofed.spoofing, Some(scenario::API));
    let (v, by) = reference_verdict(&model, spoofed);
    assert_eq!(v, Verdict::Deny, "anti-spoofing: {by}");
    assert!(by.starts_with("egress"), "{by}");
    let honest = Flow {
        spoofing: None,
        from: scenario::API,
        ..*spoofed
    };
    assert_eq!(reference_verdict(&model, &honest).0, Verdict::Allow);
    // Before the delta frontend-2's address is in no set: cart refuses it.
    let before = model_of(&scenario::snapshot());
    assert_eq!(
        reference_verdict(&before, &scenario::flows()[3]).0,
        Verdict::Deny
    );
}

fn row(dataplane: Result<Verdict, NpolMatchError>, model: Option<Verdict>) -> FlowRow {
    FlowRow {
        flow: scenario::flows()[0],
        expected: Verdict::Allow,
        dataplane,
        model,
        decided_by: "test".into(),
    }
}

#[test]
fn an_unreadable_vpp_answer_is_a_disagreement_shown_as_a_question_mark() {
    let unreadable = row(
        npol_match::parse("npol match: unknown input 'x'").map(|m| m.verdict),
        Some(Verdict::Allow),
    );
    assert!(!unreadable.agrees());
    assert!(!unreadable.model_agrees_with_dataplane());
    let outcome = DemoOutcome {
        flows: vec![unreadable.clone()],
        paths: Vec::new(),
        statuses: BTreeMap::new(),
        summary: ReconcileSummary::default(),
    };
    assert!(!outcome.all_agree());
    let mut out = Vec::new();
    render::flows(&mut out, &[unreadable], "VPP npol").unwrap();
    let text = String::from_utf8(out).unwrap();
    let line = text.lines().find(|l| l.contains("8080/tcp")).unwrap();
    assert!(line.contains(" ? ") && line.contains('✘'), "{text}");
    assert!(text.contains("unexpected line"), "{text}");
}

#[test]
fn vpp_and_our_npol_model_must_both_agree_with_calico() {
    assert!(row(Ok(Verdict::Allow), Some(Verdict::Allow)).agrees());
    assert!(row(Ok(Verdict::Allow), None).agrees());
    let model_differs = row(Ok(Verdict::Allow), Some(Verdict::Deny));
    assert!(!model_differs.agrees());
    assert!(model_differs.dataplane_agrees());
    assert!(!model_differs.model_agrees_with_dataplane());
    let vpp_differs = row(Ok(Verdict::Deny), Some(Verdict::Allow));
    assert!(!vpp_differs.agrees());
    assert!(!vpp_differs.dataplane_agrees());
    let mut out = Vec::new();
    render::agreement(&mut out, &[model_differs, vpp_differs]).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("VPP npol vs Calico: 1/2; our npol model vs VPP npol: 0/2; our npol model vs Calico: 1/2"),
        "{text}"
    );
}
