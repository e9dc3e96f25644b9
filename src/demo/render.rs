//! The demo's printed report: plain text tables for a person.

use std::collections::BTreeMap;
use std::io::{self, Write};

use calico_compile::DesiredState;
use npol::Verdict;
use vpp_sim::Simulator;

use super::scenario::PODS;
use super::FlowRow;
use crate::reconcile::ReconcileSummary;

pub fn session(
    out: &mut impl Write,
    snapshot: usize,
    deltas: usize,
    s: &ReconcileSummary,
) -> io::Result<()> {
    writeln!(
        out,
        "\nFelix session: {snapshot} messages up to InSync, then {deltas} deltas (pod shop/frontend-2 \
         arrives; IP sets s:shop-frontend and s:shop-all gain its address)"
    )?;
    writeln!(
        out,
        "Converged after {} reconcile passes: {} failed, {} waiting, {} interfaces pending",
        s.passes,
        s.failed.len(),
        s.waiting,
        s.pending_interfaces
    )
}

pub fn simulator(out: &mut impl Write, sim: &Simulator, desired: &DesiredState) -> io::Result<()> {
    let counts = sim.with_state(|s| {
        let members: usize = s.npol.ipsets.iter().map(|(_, m)| m.members.len()).sum();
        vec![
            (
                "npol ipsets",
                s.npol.ipsets.len(),
                format!("{members} members"),
            ),
            ("npol rules", s.npol.rules.len(), String::new()),
            ("npol policies", s.npol.policies.len(), String::new()),
            (
                "npol interface configs",
                s.npol.interfaces.len(),
                String::new(),
            ),
            ("ACLs (protocol guards)", s.acl.acls.len(), String::new()),
            (
                "static neighbours",
                s.neighbors.values().filter(|n| n.flags != 0).count(),
                String::new(),
            ),
            (
                "interfaces with cnat",
                s.interfaces.iter().filter(|(_, i)| i.cnat).count(),
                String::new(),
            ),
        ]
    });
    writeln!(
        out,
        "\nProgrammed into the simulator (desired by the compiler in brackets):"
    )?;
    let want = [
        desired.ipsets.len(),
        desired.rules.len(),
        desired.policies.len(),
        desired.interfaces.len(),
        desired.acls.len(),
    ];
    for (i, (what, n, extra)) in counts.iter().enumerate() {
        let w = want.get(i).map(|w| format!(" [{w}]")).unwrap_or_default();
        writeln!(out, "  {what:<24} {n:>4}{w} {extra}")?;
    }
    let text = sim.dump_text();
    writeln!(out, "\nSimulator dump (npol excerpt):")?;
    for line in text.lines().skip_while(|l| !l.starts_with("npol")).take(18) {
        writeln!(out, "  | {line}")?;
    }
    Ok(())
}

pub fn desired_counts(out: &mut impl Write, d: &DesiredState) -> io::Result<()> {
    let members: usize = d.ipsets.values().map(|s| s.members.len()).sum();
    writeln!(
        out,
        "\nProgrammed into VPP (the compiler's desired state, reconciled):"
    )?;
    writeln!(
        out,
        "  npol ipsets              {:>4} {members} members",
        d.ipsets.len()
    )?;
    writeln!(out, "  npol rules               {:>4}", d.rules.len())?;
    writeln!(out, "  npol policies            {:>4}", d.policies.len())?;
    writeln!(out, "  npol interface configs   {:>4}", d.interfaces.len())?;
    writeln!(out, "  ACLs (protocol guards)   {:>4}", d.acls.len())?;
    writeln!(
        out,
        "  check on VPP: vppctl show npol interfaces | show npol policies verbose | show npol ipsets"
    )
}

pub fn interfaces(out: &mut impl Write, d: &DesiredState) -> io::Result<()> {
    writeln!(
        out,
        "\nPer-interface npol configuration (RX = pod egress, TX = pod ingress):"
    )?;
    for pod in PODS {
        let Some(i) = d.interfaces.get(&calico_compile::InterfaceKey(pod.iface())) else {
            writeln!(
                out,
                "  {:<11} {:<22} (not configured)",
                pod.iface(),
                pod.label()
            )?;
            continue;
        };
        let list = |v: &Vec<calico_compile::PolicyKey>| {
            v.iter()
                .map(|k| k.0.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(out, "  {:<11} {}", pod.iface(), pod.label())?;
        writeln!(out, "      rx: [{}]", list(&i.config.rx_policies))?;
        writeln!(out, "      tx: [{}]", list(&i.config.tx_policies))?;
        writeln!(
            out,
            "      profiles: [{}]  defaults: policy {:?}/{:?}, profile {:?}/{:?}",
            list(&i.config.profiles),
            i.config.policy_default_rx,
            i.config.policy_default_tx,
            i.config.profile_default_rx,
            i.config.profile_default_tx
        )?;
    }
    Ok(())
}

pub fn statuses(out: &mut impl Write, m: &BTreeMap<String, Option<String>>) -> io::Result<()> {
    writeln!(
        out,
        "\nEndpoint status reported to Felix (WorkloadEndpointStatusUpdate):"
    )?;
    for (id, st) in m {
        writeln!(
            out,
            "  k8s/{id}/eth0  {}",
            st.as_deref().unwrap_or("(removed)")
        )?;
    }
    Ok(())
}

fn v(x: Verdict) -> &'static str {
    match x {
        Verdict::Allow => "allow",
        Verdict::Deny => "deny",
    }
}

fn cell(x: &Result<Verdict, super::NpolMatchError>) -> &'static str {
    match x {
        Ok(x) => v(*x),
        Err(_) => "?",
    }
}

/// The verdict table. With a real VPP the dataplane column is VPP's `npol match` and an
/// extra column shows our npol model's verdict on the compiled objects; "?" is a VPP answer
/// that could not be had or read (the reasons follow the table).
/// Where the simulator sends new flows (its FIB, tunnels and cnat SNAT).
pub fn paths(out: &mut impl Write, rows: &[(String, vpp_sim::PathResult)]) -> io::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nPaths (VPP sim: FIB, tunnels, cnat SNAT):")?;
    for (what, path) in rows {
        let how = match path {
            Ok(f) => {
                let via = f.next_hop.map(|n| format!(" via {n}")).unwrap_or_default();
                let encap = f
                    .encap
                    .map(|(kind, s, d)| format!(", in {kind} {s} -> {d}"))
                    .unwrap_or_default();
                let source = if f.translated {
                    format!("source {} (SNAT)", f.source)
                } else {
                    format!("source {} kept", f.source)
                };
                format!("out {}{via}{encap}; {source}", f.egress_name)
            }
            Err(e) => format!("not forwarded: {e}"),
        };
        writeln!(out, "  {what:<52} {how}")?;
    }
    Ok(())
}

pub fn flows(out: &mut impl Write, rows: &[FlowRow], dataplane: &str) -> io::Result<()> {
    let with_model = rows.iter().any(|r| r.model.is_some());
    let model_head = if with_model { "our npol" } else { "" };
    writeln!(out, "\nFlow verdicts (new connections):")?;
    writeln!(
        out,
        "  {:<54} {:<8} {:<15} {:<9}{:<5} decided by (Calico)",
        "flow", "Calico", dataplane, model_head, "agree"
    )?;
    for r in rows {
        let model = r.model.map(v).unwrap_or("");
        writeln!(
            out,
            "  {:<54} {:<8} {:<15} {:<9}{:<5} {}",
            r.flow.describe(),
            v(r.expected),
            cell(&r.dataplane),
            model,
            if r.agrees() { "✔" } else { "✘" },
            r.decided_by
        )?;
    }
    for r in rows {
        if let Err(e) = &r.dataplane {
            writeln!(out, "  ? {}: {e}", r.flow.describe())?;
        }
    }
    Ok(())
}

/// Real VPP: how the three verdicts compare, pairwise.
pub fn agreement(out: &mut impl Write, rows: &[FlowRow]) -> io::Result<()> {
    let n = rows.len();
    let vpp_calico = rows.iter().filter(|r| r.dataplane_agrees()).count();
    let model_vpp = rows
        .iter()
        .filter(|r| r.model_agrees_with_dataplane())
        .count();
    let model_calico = rows.iter().filter(|r| r.model == Some(r.expected)).count();
    let unknown = rows.iter().filter(|r| r.dataplane.is_err()).count();
    writeln!(
        out,
        "\nVPP npol = VPP's own `npol match sw_if_index <i> inbound|outbound <tuple>` (cli_inband): \
         inbound on the source pod's interface, then outbound on the destination's.\n\
         our npol = crates/npol evaluating the compiled objects."
    )?;
    writeln!(
        out,
        "VPP npol vs Calico: {vpp_calico}/{n}; our npol model vs VPP npol: {model_vpp}/{n}; \
         our npol model vs Calico: {model_calico}/{n}; VPP answers unreadable: {unknown}"
    )
}
