//! Cluster scale on a real VPP (issue 12): one node with 500 endpoints in a cluster with
//! 5,000 policies over 5 tiers and 1,000,000 IP set members (2,000 sets of 500). The time
//! from Felix's `InSync` to every endpoint reported `up` on fd 4, where it goes (Felix
//! ingest, compile, the reconcile pass and its VPP writes, status), the driver's peak RSS,
//! and a restart with the same snapshot (writes expected: none).
//!
//! Every endpoint is a tagged, up VPP loopback (the Ethernet class of pod interface). Each
//! namespace (50, ten pods each) is selected by 20 policies of every tier, so every endpoint
//! carries 100 policies; every policy's ingress rule allows TCP 8443 from one of the 2,000
//! sets, its egress rule the pool minus ports 1-1023, and an ICMP echo rule denies.
//!
//! Run (root not needed): `CALICO_VPP_TEST_VPP_PREFIX=<unpacked VPP> cargo bench -p
//! integration --bench cluster_scale` (`CLUSTER_SCALE=0.1` scales every size; `CLUSTER_RUNS`
//! repeats the measurement on fresh VPPs).

#[path = "../tests/e2e/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use calico_vpp_driver::felix::proto;
use calico_vpp_driver::felix::proto::to_dataplane::Payload;
use calico_vpp_driver::felix::script::{self, envelope, labels, ns_name};
use common::driver::{wait_until, Driver};
use common::realvpp::{block_on, VppInstance, PREFIX_ENV};
use vpp_bindings::gen::interface as itf;
use vpp_bindings::gen::interface_types::IfStatusFlags;

const WAIT: Duration = Duration::from_secs(600);

struct Shape {
    namespaces: usize,
    pods: usize,
    tiers: usize,
    per_tier: usize,
    sets: usize,
    per_set: usize,
}

fn tier_name(t: usize) -> String {
    if t == 0 {
        "default".into()
    } else {
        format!("tier{t}")
    }
}

fn set_id(k: usize) -> String {
    format!("s:set-{k}")
}

fn policy_id(t: usize, i: usize, s: &Shape) -> proto::PolicyId {
    proto::PolicyId {
        name: format!("{}.pol-{i}", tier_name(t)),
        namespace: if t == 0 {
            ns_name(i % s.namespaces)
        } else {
            String::new()
        },
        kind: if t == 0 {
            "NetworkPolicy"
        } else {
            "GlobalNetworkPolicy"
        }
        .into(),
    }
}

fn policy(t: usize, i: usize, s: &Shape) -> proto::Policy {
    let tcp = Some(proto::Protocol {
        number_or_name: Some(proto::protocol::NumberOrName::Name("TCP".into())),
    });
    let ingress = proto::Rule {
        action: if i % 4 == 3 { "next-tier" } else { "allow" }.into(),
        protocol: tcp,
        src_ip_set_ids: vec![set_id((t * s.per_tier + i) % s.sets)],
        dst_ports: vec![proto::PortRange {
            first: 8443,
            last: 8443,
        }],
        rule_id: format!("r{t}-{i}-in"),
        ..Default::default()
    };
    let deny_echo = script::deny_echo_v4(format!("r{t}-{i}-icmp"));
    let egress = script::egress_to_pool(format!("r{t}-{i}-out"));
    proto::Policy {
        namespace: if t == 0 {
            ns_name(i % s.namespaces)
        } else {
            String::new()
        },
        inbound_rules: vec![deny_echo, ingress],
        outbound_rules: vec![egress],
        original_selector: format!(
            "projectcalico.org/namespace == '{}'",
            ns_name(i % s.namespaces)
        ),
        tier: tier_name(t),
        ..Default::default()
    }
}

/// The tiers of a pod of namespace `n`: the policies of every tier that select it.
fn tiers_of(n: usize, s: &Shape) -> Vec<proto::TierInfo> {
    (0..s.tiers)
        .map(|t| {
            let ids: Vec<proto::PolicyId> = (0..s.per_tier)
                .filter(|i| i % s.namespaces == n)
                .map(|i| policy_id(t, i, s))
                .collect();
            proto::TierInfo {
                name: tier_name(t),
                ingress_policies: ids.clone(),
                egress_policies: ids,
                default_action: if t + 1 == s.tiers { "Deny" } else { "Pass" }.into(),
            }
        })
        .collect()
}

fn workload_id(i: usize, s: &Shape) -> proto::WorkloadEndpointId {
    proto::WorkloadEndpointId {
        orchestrator_id: "k8s".into(),
        workload_id: format!("{}/pod-{i}", ns_name(i % s.namespaces)),
        endpoint_id: "eth0".into(),
    }
}

/// Felix's start-of-day stream, without `InSync`.
fn snapshot(s: &Shape) -> Vec<proto::ToDataplane> {
    let mut out = vec![envelope(Payload::ConfigUpdate(proto::ConfigUpdate {
        config: labels(&[
            ("InterfacePrefix", "cali"),
            ("FelixHostname", "node1"),
            ("DefaultEndpointToHostAction", "ACCEPT"),
        ]),
        ..Default::default()
    }))];
    for k in 0..s.sets {
        let members = (0..s.per_set)
            .map(|m| {
                let a = 0xac00_0000u32 + (k * s.per_set + m) as u32;
                format!(
                    "{}.{}.{}.{}/32",
                    a >> 24,
                    (a >> 16) & 0xff,
                    (a >> 8) & 0xff,
                    a & 0xff
                )
            })
            .collect();
        out.push(envelope(Payload::IpsetUpdate(proto::IpSetUpdate {
            id: set_id(k),
            members,
            r#type: proto::ip_set_update::IpSetType::Ip as i32,
        })));
    }
    out.extend((0..s.namespaces).map(script::namespace_profile));
    for t in 0..s.tiers {
        for i in 0..s.per_tier {
            out.push(envelope(Payload::ActivePolicyUpdate(
                proto::ActivePolicyUpdate {
                    id: Some(policy_id(t, i, s)),
                    policy: Some(policy(t, i, s)),
                },
            )));
        }
    }
    let tiers: Vec<_> = (0..s.namespaces).map(|n| tiers_of(n, s)).collect();
    for i in 0..s.pods {
        let n = i % s.namespaces;
        out.push(envelope(Payload::WorkloadEndpointUpdate(
            proto::WorkloadEndpointUpdate {
                id: Some(workload_id(i, s)),
                endpoint: Some(proto::WorkloadEndpoint {
                    state: "active".into(),
                    name: script::pod_iface(i),
                    mac: format!("ee:ee:ee:ee:{:02x}:{:02x}", i / 256 % 256, i % 256),
                    profile_ids: vec![format!("kns.{}", ns_name(n))],
                    ipv4_nets: vec![format!("{}/32", script::pod_ip(i))],
                    tiers: tiers[n].clone(),
                    ..Default::default()
                }),
            },
        )));
    }
    out
}

fn ups(d: &Driver) -> usize {
    d.status
        .lock()
        .unwrap()
        .values()
        .filter(|s| s.as_deref() == Some("up"))
        .count()
}

/// The driver's peak resident set (`VmHWM`) or current one (`VmRSS`), in MiB.
fn rss_mib(pid: u32, which: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(which))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// One tagged, up loopback per pod, in pipelined batches.
fn make_loopbacks(vpp: &VppInstance, pods: usize) {
    block_on(async {
        let client = vpp.client().await.expect("connect");
        for chunk in (0..pods).collect::<Vec<_>>().chunks(100) {
            let mut b = client.batch();
            let hs: Vec<_> = chunk
                .iter()
                .map(|&i| {
                    let x = (i as u32).to_be_bytes();
                    b.push(&itf::CreateLoopback {
                        mac_address: vpp_bindings::gen::ethernet_types::MacAddress([
                            0x02, 0xfe, 0x10, x[1], x[2], x[3],
                        ]),
                    })
                    .expect("push")
                })
                .collect();
            let replies = b.send().await.expect("create_loopback batch");
            let mut b = client.batch();
            for (h, &i) in hs.iter().zip(chunk) {
                let r = replies.get(h).expect("create_loopback reply");
                assert_eq!(r.retval, 0, "create_loopback");
                b.push(&itf::SwInterfaceTagAddDel {
                    is_add: true,
                    sw_if_index: r.sw_if_index,
                    tag: script::pod_iface(i),
                })
                .expect("push");
                b.push(&itf::SwInterfaceSetFlags {
                    sw_if_index: r.sw_if_index,
                    flags: IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP,
                })
                .expect("push");
            }
            b.send().await.expect("tag/up batch");
        }
        let _ = client.close().await;
    });
}

/// Sends `InSync` and waits for every endpoint to be reported up: when InSync went, and how
/// long "every endpoint up" took. Then lets the driver settle (state file, RSS).
fn converge(d: &mut Driver, s: &Shape) -> (Instant, Duration) {
    let t0 = Instant::now();
    d.send(&[script::in_sync()]);
    let ok = wait_until(WAIT, || ups(d) >= s.pods);
    let up = t0.elapsed();
    assert!(ok, "not every endpoint up within {WAIT:?}:\n{}", d.log());
    std::thread::sleep(Duration::from_millis(500));
    (t0, up)
}

/// The first logged line containing `what` after `from`, and when it arrived.
fn line_at(lines: &[(Instant, String)], what: &str) -> Option<(Instant, String)> {
    lines.iter().find(|(_, l)| l.contains(what)).cloned()
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}

fn run(s: &Shape, stream: &[proto::ToDataplane]) {
    let mut vpp = VppInstance::start();
    let t = Instant::now();
    make_loopbacks(&vpp, s.pods);
    println!(
        "  {} tagged, up loopbacks created in {:.2} s",
        s.pods,
        t.elapsed().as_secs_f64()
    );

    let level = std::env::var("CLUSTER_LOG").unwrap_or_else(|_| "info".into());
    let arenas = std::env::var("CLUSTER_MALLOC_ARENA_MAX").unwrap_or_default();
    let mut env = vec![("CALICO_VPP_LOG_LEVEL", level.as_str())];
    if !arenas.is_empty() {
        env.push(("MALLOC_ARENA_MAX", arenas.as_str()));
    }
    let mut d = Driver::on_vpp(&vpp, &env);
    let t_send = Instant::now();
    d.send(stream);
    let sent = t_send.elapsed();
    let (t0, up) = converge(&mut d, s);
    let rss = rss_mib(d.pid(), "VmHWM:");
    let rss_now = rss_mib(d.pid(), "VmRSS:");
    let lines = d.timed_log();
    let since = |l: &Option<(Instant, String)>| {
        l.as_ref()
            .map(|(at, _)| format!("{:.3} s", at.saturating_duration_since(t0).as_secs_f64()))
            .unwrap_or_else(|| "?".into())
    };
    let insync = line_at(&lines, "Felix snapshot complete");
    let compiled = line_at(&lines, "full compile");
    let pass = line_at(&lines, "reconcile pass");
    let pass_line = pass.as_ref().map(|(_, l)| l.as_str()).unwrap_or("");
    println!(
        "  snapshot written to fd 3 in {:.2} s; after InSync: ingest done {}, compiled {}, first \
         pass logged {} (pass {} µs, {} writes, {} failed ops), every endpoint up {:.3} s; peak \
         RSS {} (now {})",
        sent.as_secs_f64(),
        since(&insync),
        since(&compiled),
        since(&pass),
        field(pass_line, "elapsed_us").unwrap_or("?"),
        field(pass_line, "writes").unwrap_or("?"),
        field(pass_line, "failed_ops").unwrap_or("?"),
        up.as_secs_f64(),
        rss.map(|m| format!("{m:.0} MiB"))
            .unwrap_or_else(|| "?".into()),
        rss_now
            .map(|m| format!("{m:.0} MiB"))
            .unwrap_or_else(|| "?".into()),
    );
    if let Some((_, l)) = compiled {
        println!("  compile: {}", l.trim());
    }
    let shown = |l: &str| {
        l.contains("reconcile pass")
            || l.contains("batch executed")
            || l.contains("ahead of InSync")
    };
    for (at, l) in lines.iter().filter(|(_, l)| shown(l)) {
        println!(
            "  at {:.3} s: {}",
            at.saturating_duration_since(t0).as_secs_f64(),
            l.trim()
        );
    }

    // Restart with the same snapshot: adopted from the state file, nothing rewritten.
    d.stop();
    let mut d = Driver::on_vpp(&vpp, &[("CALICO_VPP_LOG_LEVEL", "info")]);
    d.send(stream);
    let (_, up) = converge(&mut d, s);
    println!(
        "  restart, same snapshot: every endpoint up {:.3} s after InSync, {} VPP writes",
        up.as_secs_f64(),
        d.writes()
    );
    d.stop();
    vpp.stop();
}

fn main() {
    if std::env::var_os(PREFIX_ENV).is_none() {
        println!("cluster_scale: needs a real VPP (set {PREFIX_ENV} to an unpacked VPP); skipped");
        return;
    }
    let scale: f64 = std::env::var("CLUSTER_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let runs: usize = std::env::var("CLUSTER_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let sized = |n: f64| ((n * scale) as usize).max(1);
    let s = Shape {
        namespaces: sized(50.0),
        pods: sized(500.0),
        tiers: 5,
        per_tier: sized(1000.0),
        sets: sized(2000.0),
        per_set: 500,
    };
    let t = Instant::now();
    let stream = snapshot(&s);
    let bytes: usize = stream.iter().map(prost::Message::encoded_len).sum();
    println!(
        "cluster_scale: real VPP; {} endpoints, {} policies over {} tiers ({} per endpoint), {} \
         IP set members ({} sets of {}); snapshot {} messages, {:.1} MB, built in {:.2} s",
        s.pods,
        s.tiers * s.per_tier,
        s.tiers,
        s.tiers * s.per_tier.div_ceil(s.namespaces),
        s.sets * s.per_set,
        s.sets,
        s.per_set,
        stream.len(),
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    for r in 0..runs {
        println!("run {}:", r + 1);
        run(&s, &stream);
    }
}
