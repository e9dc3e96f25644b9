//! The compiler: model → [`DesiredState`], in full or incrementally from a [`ChangeSet`].
//!
//! One npol policy per (tier, direction, list of policies), shared by every endpoint with the
//! same list; one per profile; content-keyed rules shared by all policies. Objects are
//! reference counted so an incremental update removes exactly what nothing uses any more.
//! Never does I/O; never emits an object more permissive than the model says.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use calico_model::{
    Action, Changes, HostEndpointId, IpSetChange, IpSetId, IpSetMember, Model, PolicyId, ProfileId,
    RouteTypes, Rule, TierDefaultAction, WorkloadEndpoint, WorkloadEndpointId,
};
use ipnet::IpNet;
use npol::{Entry, EntryData, Filter, FilterType, PolicyDefault, RuleAction};
use serde::{Deserialize, Serialize};

use crate::config::{EndpointToHostAction, PolicyConfig};
use crate::desired::{
    DesiredDiff, DesiredInterface, DesiredState, InterfaceKey, IpSetKey, MemberDelta, PolicyKey,
    RuleKey,
};
use crate::hash::StableHasher;
use crate::ipsets::{self, base_key, DerivedDef};
use crate::report::{CalicoDirection, CompileReport, Note, Subject};
use crate::rules::{compile_rule, match_all, rule_key, RuleError};

/// The npol ipset holding this node's own addresses (routes of type `LOCAL_HOST`), used to
/// enforce `DefaultEndpointToHostAction = DROP`.
pub const LOCAL_HOST_SET: &str = "h:local-host";
/// The policy dropping VXLAN / IPIP from workloads (first in every workload's RX list).
pub const ENCAP_DROP_POLICY: &str = "x:workload-encap-drop";
/// The policy dropping workload→host traffic when `DefaultEndpointToHostAction` is DROP.
pub const TO_HOST_DROP_POLICY: &str = "x:workload-to-host-drop";
/// Key prefix of the anti-spoofing policies (first in a workload's RX list), one per
/// distinct set of permitted sources: `a:<hash of the sources>`.
pub const ANTI_SPOOF_PREFIX: &str = "a:";
/// IPv6 link-local sources, permitted from a workload that has IPv6 (Felix's strict RPF
/// check finds them on the interface's own fe80::/64 route).
pub const LINK_LOCAL_V6: IpNet = IpNet::V6(ipnet::Ipv6Net::new_assert(
    std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
    10,
));

/// What changed in the model since the last compile. `node` means Felix configuration
/// changed: everything is recompiled (rare). `routes` refreshes this node's addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSet {
    pub ipsets: BTreeSet<IpSetId>,
    /// Optional member deltas for sets in `ipsets` (a fast path: the set is not rescanned).
    pub ipset_members: BTreeMap<IpSetId, (BTreeSet<IpSetMember>, BTreeSet<IpSetMember>)>,
    pub policies: BTreeSet<PolicyId>,
    pub profiles: BTreeSet<ProfileId>,
    pub workload_endpoints: BTreeSet<WorkloadEndpointId>,
    pub host_endpoints: BTreeSet<HostEndpointId>,
    pub routes: bool,
    /// IPAM pools changed (they decide which routes need a tunnel).
    #[serde(default)]
    pub pools: bool,
    /// Host metadata changed (this node's address is a tunnel's source).
    #[serde(default)]
    pub hosts: bool,
    /// Felix's BGP configuration changed (its service CIDRs keep their source under SNAT).
    #[serde(default)]
    pub bgp: bool,
    /// VXLAN tunnel endpoints changed (VXLAN tunnels are built from them).
    #[serde(default)]
    pub vteps: bool,
    /// Pod interfaces (by host interface name) the CNI side added, changed or removed.
    #[serde(default)]
    pub pods: BTreeSet<String>,
    /// Kubernetes services whose Service or EndpointSlices changed.
    #[serde(default)]
    pub kube_services: BTreeSet<calico_model::kube::ServiceKey>,
    /// The Kubernetes state was replaced as a whole.
    #[serde(default)]
    pub kube_resync: bool,
    pub node: bool,
}

impl From<&Changes> for ChangeSet {
    fn from(c: &Changes) -> ChangeSet {
        let mut out = ChangeSet {
            ipsets: c.ipsets.keys().cloned().collect(),
            policies: c.policies.clone(),
            profiles: c.profiles.clone(),
            workload_endpoints: c.workload_endpoints.clone(),
            host_endpoints: c.host_endpoints.clone(),
            routes: !c.routes.is_empty(),
            pools: !c.ipam_pools.is_empty(),
            hosts: !c.host_metadata.is_empty(),
            bgp: c.global_bgp,
            vteps: !c.vteps.is_empty(),
            pods: c.pods.clone(),
            kube_services: c.kube_services.clone(),
            kube_resync: c.kube_resync,
            node: !c.felix_config.is_empty(),
            ..ChangeSet::default()
        };
        for (id, ch) in &c.ipsets {
            if let IpSetChange::Members { added, removed } = ch {
                out.ipset_members
                    .insert(id.clone(), (added.clone(), removed.clone()));
            }
        }
        out
    }
}

/// A full compile's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    pub desired: DesiredState,
    pub report: CompileReport,
}

/// Compiles the whole model.
pub fn compile(model: &Model) -> Compiled {
    let c = Compiler::new(model);
    Compiled {
        desired: c.out,
        report: c.report,
    }
}

/// The per-endpoint key of a tier's npol policy: tier, direction and the exact list of
/// (non-staged) policies and default, so endpoints with the same list share it.
fn tier_key(def: &TierDef) -> PolicyKey {
    let mut h = StableHasher::default();
    // The tier name and direction are hashed too: the readable prefix is not parsed back.
    h.str(&def.tier)
        .u8(u8::from(def.dir == CalicoDirection::Ingress))
        .u8(u8::from(def.default_pass))
        .u32(def.policies.len() as u32);
    for p in &def.policies {
        h.str(&p.name).str(&p.namespace).str(&p.kind);
    }
    let dir = match def.dir {
        CalicoDirection::Ingress => "in",
        CalicoDirection::Egress => "eg",
    };
    PolicyKey(format!("t:{}:{}:{}", def.tier, dir, h.finish_hex()))
}

pub fn profile_key(id: &ProfileId) -> PolicyKey {
    PolicyKey(format!("p:{}", id.0))
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TierDef {
    tier: String,
    dir: CalicoDirection,
    policies: Vec<PolicyId>,
    default_pass: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PolicyDef {
    Tier(TierDef),
    Profile(ProfileId),
    EncapDrop,
    ToHostDrop,
    /// The sources a workload may send from (truncated, sorted, deduplicated).
    AntiSpoof(Vec<IpNet>),
}

/// The sources Felix lets a workload send from: its own nets and its
/// `allow_spoofed_source_prefixes`, both families, and IPv6 link-local when it has IPv6.
pub fn permitted_sources(ep: &WorkloadEndpoint) -> Vec<IpNet> {
    let link_local = (!ep.ipv6_nets.is_empty()).then_some(LINK_LOCAL_V6);
    let mut v: Vec<IpNet> = ep
        .ipv4_nets
        .iter()
        .map(|n| IpNet::V4(n.trunc()))
        .chain(ep.ipv6_nets.iter().map(|n| IpNet::V6(n.trunc())))
        .chain(ep.allow_spoofed_source_prefixes.iter().map(|n| n.trunc()))
        .chain(link_local)
        .collect();
    v.sort();
    v.dedup();
    v
}

fn anti_spoof_key(sources: &[IpNet]) -> PolicyKey {
    let mut h = StableHasher::default();
    h.u32(sources.len() as u32);
    for n in sources {
        h.net(n);
    }
    PolicyKey(format!("{ANTI_SPOOF_PREFIX}{}", h.finish_hex()))
}

type Rules = Vec<(RuleKey, npol::Rule<IpSetKey>)>;

/// A Calico policy or profile, compiled once and reused by every npol policy containing it.
#[derive(Debug, Clone, Default)]
struct CompiledRules {
    ingress: Rules,
    egress: Rules,
    /// IP sets whose existence or kind the result depends on.
    sets: BTreeSet<IpSetId>,
    notes: Vec<Note>,
}

fn deny_all() -> (RuleKey, npol::Rule<IpSetKey>) {
    let r = match_all(RuleAction::Deny);
    (rule_key(&r), r)
}

/// Compiles a policy's or profile's two rule lists. Any bad IP set reference, or an
/// `invalid` marker, makes both lists a single deny-all.
fn compile_rules(
    inbound: &[Rule],
    outbound: &[Rule],
    invalid: Option<&str>,
    model: &Model,
    derived: &mut HashMap<IpSetKey, DerivedDef>,
) -> CompiledRules {
    let mut c = CompiledRules::default();
    for r in inbound.iter().chain(outbound) {
        for ids in [
            &r.src_ip_set_ids,
            &r.dst_ip_set_ids,
            &r.not_src_ip_set_ids,
            &r.not_dst_ip_set_ids,
            &r.src_named_port_ip_set_ids,
            &r.dst_named_port_ip_set_ids,
            &r.not_src_named_port_ip_set_ids,
            &r.not_dst_named_port_ip_set_ids,
            &r.dst_ip_port_set_ids,
        ] {
            c.sets.extend(ids.iter().cloned());
        }
    }
    let fail = |c: &mut CompiledRules, note: Note| {
        c.ingress = vec![deny_all()];
        c.egress = vec![deny_all()];
        c.notes = vec![note];
    };
    if let Some(reason) = invalid {
        fail(
            &mut c,
            Note::Invalid {
                reason: reason.to_string(),
            },
        );
        return c;
    }
    let guard = PolicyConfig::from_felix(&model.felix_config).guard();
    let mut out: [Rules; 2] = [Vec::new(), Vec::new()];
    for (i, (dir, list)) in [
        (CalicoDirection::Ingress, inbound),
        (CalicoDirection::Egress, outbound),
    ]
    .into_iter()
    .enumerate()
    {
        for (index, rule) in list.iter().enumerate() {
            match compile_rule(rule, &model.ipsets) {
                Ok(ro) => {
                    // No action is Calico's allow.
                    if matches!(rule.action, None | Some(Action::Allow))
                        && crate::guard::rule_may_match_guarded(rule, dir, guard)
                    {
                        c.notes.push(Note::GuardStricter {
                            direction: dir,
                            index,
                            rule_id: rule.rule_id.clone(),
                        });
                    }
                    if ro.http_ignored {
                        c.notes.push(Note::HttpMatchIgnored {
                            direction: dir,
                            index,
                        });
                    }
                    for (k, d) in ro.derived {
                        derived.entry(k).or_insert(d);
                    }
                    out[i].extend(ro.rules.into_iter().map(|r| (rule_key(&r), r)));
                }
                Err(e @ (RuleError::UnknownIpSet(_) | RuleError::WrongIpSetKind { .. })) => {
                    fail(
                        &mut c,
                        Note::BadIpSetReference {
                            reason: e.to_string(),
                        },
                    );
                    return c;
                }
            }
        }
    }
    let [ingress, egress] = out;
    c.ingress = ingress;
    c.egress = egress;
    c
}

#[derive(Debug, Default)]
struct Tracker {
    ipsets: BTreeMap<IpSetKey, Option<Arc<npol::IpSet>>>,
    /// Member changes applied in place to sets not in `ipsets` (their old value is not
    /// kept: a Felix member delta passes through without copying or re-diffing the set).
    /// Net changes: a member added then removed within one update is in neither list.
    members: BTreeMap<IpSetKey, (BTreeSet<npol::IpSetMember>, BTreeSet<npol::IpSetMember>)>,
    rules: BTreeMap<RuleKey, Option<npol::Rule<IpSetKey>>>,
    policies: BTreeMap<PolicyKey, Option<npol::Policy<RuleKey>>>,
    interfaces: BTreeMap<InterfaceKey, Option<DesiredInterface>>,
}

/// The incremental compiler: keeps its output and what it was made of.
#[derive(Debug)]
pub struct Compiler {
    cfg: PolicyConfig,
    out: DesiredState,
    report: CompileReport,
    policy_cache: HashMap<PolicyId, CompiledRules>,
    profile_cache: HashMap<ProfileId, CompiledRules>,
    derived_defs: HashMap<IpSetKey, DerivedDef>,
    policy_defs: HashMap<PolicyKey, PolicyDef>,
    policy_refs: HashMap<PolicyKey, u32>,
    rule_refs: HashMap<RuleKey, u32>,
    derived_refs: HashMap<IpSetKey, u32>,
    tiers_by_policy: HashMap<PolicyId, BTreeSet<PolicyKey>>,
    derived_by_set: HashMap<IpSetId, BTreeSet<IpSetKey>>,
    ep_iface: BTreeMap<WorkloadEndpointId, InterfaceKey>,
    iface_eps: BTreeMap<InterfaceKey, BTreeSet<WorkloadEndpointId>>,
    /// The objects of `out.translations` and `out.service_rejects`, by service.
    services: crate::services::ServiceIndex,
    track: Option<Tracker>,
}

impl Compiler {
    /// A full compile of `model`.
    pub fn new(model: &Model) -> Compiler {
        let cfg = PolicyConfig::from_felix(&model.felix_config);
        let mut c = Compiler {
            cfg,
            out: DesiredState::default(),
            report: CompileReport::default(),
            policy_cache: HashMap::new(),
            profile_cache: HashMap::new(),
            derived_defs: HashMap::new(),
            policy_defs: HashMap::new(),
            policy_refs: HashMap::new(),
            rule_refs: HashMap::new(),
            derived_refs: HashMap::new(),
            tiers_by_policy: HashMap::new(),
            derived_by_set: HashMap::new(),
            ep_iface: BTreeMap::new(),
            iface_eps: BTreeMap::new(),
            services: Default::default(),
            track: None,
        };
        c.node_notes(model);
        c.out
            .acls
            .extend(crate::guard::guard_acls_with(c.cfg.guard()));
        for id in model.ipsets.keys() {
            c.refresh_base_set(model, id);
        }
        c.refresh_host_set(model);
        (c.out.routes, c.out.tunnels) = crate::routes::desired_routes(model);
        c.out.uplinks = crate::routes::desired_uplinks();
        c.out.local_routes = crate::routes::desired_local_routes(model);
        (c.out.pods, c.out.pod_links) = crate::pods::desired_pods(model);
        if !model.pods.is_empty() {
            let (k, a) = crate::guard::pod_dark_acl();
            c.out.acls.insert(k, a);
        }
        let services = crate::services::desired_services(
            &model.kube,
            model.hostname(),
            &crate::services::node_ips(model),
        );
        c.services = crate::services::ServiceIndex::of(&services);
        c.out.translations = services.translations;
        c.out.service_rejects = services.rejects;
        c.out.services_synced = model.kube_synced;
        let snat = crate::snat::desired_snat(model);
        (c.out.snat, c.out.snat_excludes, c.out.snat_interfaces) =
            (snat.snat, snat.excludes, snat.interfaces);
        for (id, ep) in &model.workload_endpoints {
            let k = InterfaceKey(ep.name.clone());
            c.ep_iface.insert(id.clone(), k.clone());
            c.iface_eps.entry(k).or_default().insert(id.clone());
        }
        let ifaces: Vec<InterfaceKey> = c.iface_eps.keys().cloned().collect();
        for k in ifaces {
            c.configure_interface(model, &k);
        }
        for (id, hep) in &model.host_endpoints {
            c.host_endpoint_note(id, Some(hep));
        }
        c
    }

    pub fn desired(&self) -> &DesiredState {
        &self.out
    }

    pub fn report(&self) -> &CompileReport {
        &self.report
    }

    /// Brings the output up to date with `model`, given what changed since the last call,
    /// and returns the difference. Work is proportional to the change, not to the model.
    pub fn update(&mut self, model: &Model, changes: &ChangeSet) -> DesiredDiff {
        if changes.node || PolicyConfig::from_felix(&model.felix_config) != self.cfg {
            let new = Compiler::new(model);
            let diff = self.out.diff(&new.out);
            *self = new;
            return diff;
        }
        self.track = Some(Tracker::default());

        let mut dirty_policies: BTreeSet<PolicyId> = changes.policies.clone();
        let mut dirty_profiles: BTreeSet<ProfileId> = changes.profiles.clone();
        let mut routes = crate::KindDiff::default();
        let mut tunnels = crate::KindDiff::default();
        if changes.routes {
            self.refresh_host_set(model);
        }
        if changes.routes || changes.pools || changes.hosts || changes.vteps {
            let (new, new_tunnels) = crate::routes::desired_routes(model);
            routes.note_all(&self.out.routes, &new);
            tunnels.note_all(&self.out.tunnels, &new_tunnels);
            self.out.routes = new;
            self.out.tunnels = new_tunnels;
        }
        let mut local_routes = crate::KindDiff::default();
        if !changes.workload_endpoints.is_empty() {
            let new = crate::routes::desired_local_routes(model);
            local_routes.note_all(&self.out.local_routes, &new);
            self.out.local_routes = new;
        }
        let (mut snat, mut snat_excludes, mut snat_interfaces) = Default::default();
        if changes.pools || changes.hosts || changes.bgp || !changes.workload_endpoints.is_empty() {
            let new = crate::snat::desired_snat(model);
            crate::KindDiff::note_all(&mut snat, &self.out.snat, &new.snat);
            crate::KindDiff::note_all(&mut snat_excludes, &self.out.snat_excludes, &new.excludes);
            crate::KindDiff::note_all(
                &mut snat_interfaces,
                &self.out.snat_interfaces,
                &new.interfaces,
            );
            self.out.snat = new.snat;
            self.out.snat_excludes = new.excludes;
            self.out.snat_interfaces = new.interfaces;
        }
        for id in &changes.ipsets {
            let key = base_key(id);
            let before = self.out.ipsets.get(&key).map(|s| s.kind);
            match changes.ipset_members.get(id) {
                Some((added, removed)) if before.is_some() && model.ipsets.contains_key(id) => {
                    self.apply_member_delta(model, id, added, removed)
                }
                _ => self.refresh_base_set(model, id),
            }
            let after = self.out.ipsets.get(&key).map(|s| s.kind);
            if before != after {
                // Existence or kind decides whether referring rules are valid.
                for (pid, c) in &self.policy_cache {
                    if c.sets.contains(id) {
                        dirty_policies.insert(pid.clone());
                    }
                }
                for (pid, c) in &self.profile_cache {
                    if c.sets.contains(id) {
                        dirty_profiles.insert(pid.clone());
                    }
                }
            }
            let derived: Vec<IpSetKey> = self
                .derived_by_set
                .get(id)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            for dk in derived {
                if let Some(def) = self.derived_defs.get(&dk) {
                    let set = def.compute(&model.ipsets);
                    self.set_ipset(&dk, Some(set));
                }
            }
        }
        for pid in &dirty_policies {
            self.policy_cache.remove(pid);
            self.policy_notes(model, pid);
            let tiers: Vec<PolicyKey> = self
                .tiers_by_policy
                .get(pid)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
            for tk in tiers {
                self.rebuild_policy(model, &tk);
            }
        }
        for pid in &dirty_profiles {
            self.profile_cache.remove(pid);
            let key = profile_key(pid);
            if self.policy_refs.contains_key(&key) {
                self.rebuild_policy(model, &key);
            } else {
                self.report.set(Subject::Profile(pid.clone()), Vec::new());
            }
        }
        let mut services = crate::services::ServiceDiff::default();
        if changes.kube_resync || changes.hosts {
            let new = crate::services::desired_services(
                &model.kube,
                model.hostname(),
                &crate::services::node_ips(model),
            );
            services
                .translations
                .note_all(&self.out.translations, &new.translations);
            services
                .rejects
                .note_all(&self.out.service_rejects, &new.rejects);
            self.services = crate::services::ServiceIndex::of(&new);
            self.out.translations = new.translations;
            self.out.service_rejects = new.rejects;
        } else if !changes.kube_services.is_empty() {
            let mut objects = crate::services::ServiceObjects {
                translations: std::mem::take(&mut self.out.translations),
                rejects: std::mem::take(&mut self.out.service_rejects),
            };
            crate::services::update_services(
                &mut objects,
                &mut self.services,
                &mut services,
                model,
                &changes.kube_services,
            );
            self.out.translations = objects.translations;
            self.out.service_rejects = objects.rejects;
        }
        let services_synced =
            (self.out.services_synced != model.kube_synced).then_some(model.kube_synced);
        self.out.services_synced = model.kube_synced;
        let mut ifaces: BTreeSet<InterfaceKey> = BTreeSet::new();
        let (mut pods, mut pod_links) = Default::default();
        let mut acls = crate::KindDiff::default();
        if !changes.pods.is_empty() {
            // Pods go dark on creation: the dark ACL is desired while there is a pod.
            let (dark, acl) = crate::guard::pod_dark_acl();
            let had = self.out.acls.get(&dark).cloned();
            let want = (!model.pods.is_empty()).then_some(acl);
            acls.note(&dark, had.as_ref(), want.as_ref());
            match want {
                Some(a) => self.out.acls.insert(dark, a),
                None => self.out.acls.remove(&dark),
            };
            for name in &changes.pods {
                let key = InterfaceKey(name.clone());
                let new = model.pods.get(name).map(crate::pods::desired_pod);
                crate::KindDiff::note(&mut pods, &key, self.out.pods.get(&key), new.as_ref());
                match new {
                    Some(p) => {
                        self.out.pods.insert(key.clone(), p);
                        let link = crate::DesiredPodLink {
                            interface: key.clone(),
                        };
                        crate::KindDiff::note(
                            &mut pod_links,
                            &key,
                            self.out.pod_links.get(&key),
                            Some(&link),
                        );
                        self.out.pod_links.insert(key.clone(), link);
                    }
                    None => {
                        self.out.pods.remove(&key);
                        if self.out.pod_links.remove(&key).is_some() {
                            pod_links.removed.push(key.clone());
                        }
                    }
                }
                // The endpoint's neighbours may come from the pod's MAC.
                if self.iface_eps.contains_key(&key) {
                    ifaces.insert(key);
                }
            }
        }
        for id in &changes.workload_endpoints {
            if let Some(old) = self.ep_iface.remove(id) {
                if let Some(s) = self.iface_eps.get_mut(&old) {
                    s.remove(id);
                    if s.is_empty() {
                        self.iface_eps.remove(&old);
                    }
                }
                ifaces.insert(old);
            }
            self.report.set(Subject::Workload(id.clone()), Vec::new());
            if let Some(ep) = model.workload_endpoints.get(id) {
                let k = InterfaceKey(ep.name.clone());
                self.ep_iface.insert(id.clone(), k.clone());
                self.iface_eps
                    .entry(k.clone())
                    .or_default()
                    .insert(id.clone());
                ifaces.insert(k);
            }
        }
        for k in ifaces {
            self.configure_interface(model, &k);
        }
        for id in &changes.host_endpoints {
            self.host_endpoint_note(id, model.host_endpoints.get(id));
        }

        let track = self.track.take().unwrap_or_default();
        let mut diff = DesiredDiff {
            kinds: crate::KindDiffs {
                routes,
                local_routes,
                tunnels,
                snat,
                snat_excludes,
                snat_interfaces,
                pods,
                pod_links,
                acls,
                translations: services.translations,
                service_rejects: services.rejects,
                ..crate::KindDiffs::default()
            },
            services_synced,
            ..DesiredDiff::default()
        };
        for (k, old) in &track.ipsets {
            diff.note_ipset(k, old.as_ref(), self.out.ipsets.get(k));
        }
        for (k, (added, removed)) in track.members {
            if !added.is_empty() || !removed.is_empty() {
                diff.ipset_members.insert(
                    k,
                    MemberDelta {
                        added: added.into_iter().collect(),
                        removed: removed.into_iter().collect(),
                    },
                );
            }
        }
        for (k, old) in &track.rules {
            diff.kinds
                .rules
                .note(k, old.as_ref(), self.out.rules.get(k));
        }
        for (k, old) in &track.policies {
            diff.kinds
                .policies
                .note(k, old.as_ref(), self.out.policies.get(k));
        }
        for (k, old) in &track.interfaces {
            diff.note_interface(k, old.as_ref(), self.out.interfaces.get(k));
        }
        diff
    }

    /// [`Compiler::update`] with the model's own change report.
    pub fn apply_changes(&mut self, model: &Model, changes: &Changes) -> DesiredDiff {
        self.update(model, &ChangeSet::from(changes))
    }

    // ---- object store with change tracking ---------------------------------------------

    fn set_ipset(&mut self, k: &IpSetKey, v: Option<npol::IpSet>) {
        let old = match v {
            Some(v) => self.out.ipsets.insert(k.clone(), Arc::new(v)),
            None => self.out.ipsets.remove(k),
        };
        if let Some(t) = &mut self.track {
            if t.ipsets.contains_key(k) {
                return;
            }
            // Members changed in place earlier in this update: the value before the update
            // is the current one with those changes undone.
            let old = match (old, t.members.remove(k)) {
                (Some(mut set), Some((added, removed))) => {
                    let s = Arc::make_mut(&mut set);
                    for m in &added {
                        s.members.remove(m);
                    }
                    s.members.extend(removed);
                    Some(set)
                }
                (old, _) => old,
            };
            t.ipsets.insert(k.clone(), old);
        }
    }

    fn set_rule(&mut self, k: &RuleKey, v: Option<npol::Rule<IpSetKey>>) {
        let old = match v {
            Some(v) => self.out.rules.insert(k.clone(), v),
            None => self.out.rules.remove(k),
        };
        if let Some(t) = &mut self.track {
            t.rules.entry(k.clone()).or_insert(old);
        }
    }

    fn set_policy(&mut self, k: &PolicyKey, v: Option<npol::Policy<RuleKey>>) {
        let old = match v {
            Some(v) => self.out.policies.insert(k.clone(), v),
            None => self.out.policies.remove(k),
        };
        if let Some(t) = &mut self.track {
            t.policies.entry(k.clone()).or_insert(old);
        }
    }

    fn set_interface(&mut self, k: &InterfaceKey, v: Option<DesiredInterface>) {
        let old = match v {
            Some(v) => self.out.interfaces.insert(k.clone(), v),
            None => self.out.interfaces.remove(k),
        };
        if let Some(t) = &mut self.track {
            t.interfaces.entry(k.clone()).or_insert(old);
        }
    }

    // ---- ipsets ---------------------------------------------------------------------------

    fn refresh_base_set(&mut self, model: &Model, id: &IpSetId) {
        let key = base_key(id);
        match model.ipsets.get(id) {
            Some(set) => {
                let (s, bad) = ipsets::convert(set);
                if bad > 0 {
                    tracing::warn!(ipset = %id, bad, "IP set members of the wrong kind left out");
                }
                let notes = if bad > 0 {
                    vec![Note::BadMembers { count: bad }]
                } else {
                    Vec::new()
                };
                self.report.set(Subject::IpSet(id.clone()), notes);
                if self.out.ipsets.get(&key).map(|a| &**a) != Some(&s) {
                    self.set_ipset(&key, Some(s));
                }
            }
            None => {
                self.report.set(Subject::IpSet(id.clone()), Vec::new());
                self.set_ipset(&key, None);
            }
        }
    }

    /// Applies a member delta to a base set without rescanning it.
    fn apply_member_delta(
        &mut self,
        model: &Model,
        id: &IpSetId,
        added: &BTreeSet<IpSetMember>,
        removed: &BTreeSet<IpSetMember>,
    ) {
        let key = base_key(id);
        let Some(kind) = self.out.ipsets.get(&key).map(|s| s.kind) else {
            return;
        };
        let conv = |m: &IpSetMember| match (kind, m) {
            (npol::IpSetType::Net, IpSetMember::Net(n)) => Some(npol::IpSetMember::Net(*n)),
            (npol::IpSetType::IpAndPort, IpSetMember::IpPort { addr, proto, port }) => {
                Some(npol::IpSetMember::IpAndPort {
                    addr: *addr,
                    proto: *proto,
                    port: *port,
                })
            }
            _ => None,
        };
        let rm: Vec<npol::IpSetMember> = removed.iter().filter_map(conv).collect();
        let add: Vec<npol::IpSetMember> = added.iter().filter_map(conv).collect();
        if rm.len() != removed.len() || add.len() != added.len() {
            // Members of the wrong kind: take the slow path, which counts and reports them.
            return self.refresh_base_set(model, id);
        }
        self.change_members(&key, rm, add);
    }

    /// Removes `rm` from and adds `add` to set `k` in place, recording the net change.
    fn change_members(
        &mut self,
        k: &IpSetKey,
        rm: Vec<npol::IpSetMember>,
        add: Vec<npol::IpSetMember>,
    ) {
        let Some(set) = self.out.ipsets.get_mut(k) else {
            return;
        };
        // Shared with the reconciler's copy until now: this copies the set once.
        let set = Arc::make_mut(set);
        // A set whose old value is kept is diffed whole at the end; only record otherwise.
        let mut net = match &mut self.track {
            Some(t) if !t.ipsets.contains_key(k) => Some(t.members.entry(k.clone()).or_default()),
            _ => None,
        };
        for m in rm {
            if set.members.remove(&m) {
                if let Some((added, removed)) = net.as_mut() {
                    if !added.remove(&m) {
                        removed.insert(m);
                    }
                }
            }
        }
        for m in add {
            if set.members.insert(m) {
                if let Some((added, removed)) = net.as_mut() {
                    if !removed.remove(&m) {
                        added.insert(m);
                    }
                }
            }
        }
    }

    fn refresh_host_set(&mut self, model: &Model) {
        let mut s = npol::IpSet::new(npol::IpSetType::Net);
        for r in model.routes.values() {
            if r.types.contains(RouteTypes::LOCAL_HOST) {
                s.members.insert(npol::IpSetMember::Net(r.dst.trunc()));
            }
        }
        self.set_ipset(&IpSetKey(LOCAL_HOST_SET.into()), Some(s));
    }

    fn acquire_derived(&mut self, model: &Model, k: &IpSetKey) {
        let n = self.derived_refs.entry(k.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            return;
        }
        let Some(def) = self.derived_defs.get(k).cloned() else {
            // Rules only name derived keys whose definitions were registered with them.
            tracing::error!(ipset = %k, "derived ipset without a definition");
            return;
        };
        for src in def.sources() {
            self.derived_by_set
                .entry(src.clone())
                .or_default()
                .insert(k.clone());
        }
        let set = def.compute(&model.ipsets);
        self.set_ipset(k, Some(set));
    }

    fn release_derived(&mut self, k: &IpSetKey) {
        let Some(n) = self.derived_refs.get_mut(k) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        self.derived_refs.remove(k);
        if let Some(def) = self.derived_defs.get(k).cloned() {
            for src in def.sources() {
                if let Some(s) = self.derived_by_set.get_mut(src) {
                    s.remove(k);
                    if s.is_empty() {
                        self.derived_by_set.remove(src);
                    }
                }
            }
        }
        self.set_ipset(k, None);
    }

    // ---- rules ----------------------------------------------------------------------------

    fn acquire_rule(&mut self, model: &Model, k: &RuleKey, r: &npol::Rule<IpSetKey>) {
        let n = self.rule_refs.entry(k.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            return;
        }
        for s in derived_refs_of(r) {
            self.acquire_derived(model, &s);
        }
        self.set_rule(k, Some(r.clone()));
    }

    fn release_rule(&mut self, k: &RuleKey) {
        let Some(n) = self.rule_refs.get_mut(k) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        self.rule_refs.remove(k);
        if let Some(r) = self.out.rules.get(k).cloned() {
            for s in derived_refs_of(&r) {
                self.release_derived(&s);
            }
        }
        self.set_rule(k, None);
    }

    // ---- policies -------------------------------------------------------------------------

    fn compiled_policy(&mut self, model: &Model, id: &PolicyId) -> Option<&CompiledRules> {
        if !self.policy_cache.contains_key(id) {
            let p = model.policies.get(id)?;
            let c = compile_rules(
                &p.inbound_rules,
                &p.outbound_rules,
                p.invalid.as_ref().map(|i| i.reason.as_str()),
                model,
                &mut self.derived_defs,
            );
            log_notes(&format!("policy {id}"), &c.notes);
            self.policy_cache.insert(id.clone(), c);
        }
        self.policy_cache.get(id)
    }

    fn compiled_profile(&mut self, model: &Model, id: &ProfileId) -> Option<&CompiledRules> {
        if !self.profile_cache.contains_key(id) {
            let p = model.profiles.get(id)?;
            let c = compile_rules(
                &p.inbound_rules,
                &p.outbound_rules,
                p.invalid.as_ref().map(|i| i.reason.as_str()),
                model,
                &mut self.derived_defs,
            );
            log_notes(&format!("profile {id}"), &c.notes);
            self.profile_cache.insert(id.clone(), c);
        }
        self.profile_cache.get(id)
    }

    /// Notes for a Calico policy while a live tier policy contains it: its compile notes,
    /// or "unknown".
    fn policy_notes(&mut self, model: &Model, id: &PolicyId) {
        let notes = if !self.tiers_by_policy.contains_key(id) {
            Vec::new()
        } else if model.policies.contains_key(id) {
            self.compiled_policy(model, id)
                .map(|c| c.notes.clone())
                .unwrap_or_default()
        } else {
            self.unknown_policy_notes(id)
        };
        self.report.set(Subject::Policy(id.clone()), notes);
    }

    fn unknown_policy_notes(&self, id: &PolicyId) -> Vec<Note> {
        let mut tiers: BTreeSet<String> = BTreeSet::new();
        for k in self.tiers_by_policy.get(id).into_iter().flatten() {
            if let Some(PolicyDef::Tier(d)) = self.policy_defs.get(k) {
                tiers.insert(d.tier.clone());
            }
        }
        tiers
            .into_iter()
            .map(|tier| Note::UnknownPolicy {
                tier,
                policy: id.clone(),
            })
            .collect()
    }

    /// The npol policy for a definition, and the rules it uses.
    fn build_policy(&mut self, model: &Model, def: &PolicyDef) -> (npol::Policy<RuleKey>, Rules) {
        let mut rules: Rules = Vec::new();
        let mut policy = npol::Policy {
            inbound: Vec::new(),
            outbound: Vec::new(),
        };
        match def {
            PolicyDef::Tier(t) => {
                for pid in &t.policies {
                    match self.compiled_policy(model, pid) {
                        Some(c) => rules.extend(
                            match t.dir {
                                CalicoDirection::Ingress => &c.ingress,
                                CalicoDirection::Egress => &c.egress,
                            }
                            .iter()
                            .cloned(),
                        ),
                        None => {
                            tracing::warn!(policy = %pid, tier = %t.tier, "tier names an unknown policy; that position denies");
                            rules.push(deny_all());
                        }
                    }
                }
                if !t.default_pass {
                    rules.push(deny_all());
                }
                let keys: Vec<RuleKey> = rules.iter().map(|(k, _)| k.clone()).collect();
                // npol RX (a pod's egress) reads the policy's inbound list.
                match t.dir {
                    CalicoDirection::Egress => policy.inbound = keys,
                    CalicoDirection::Ingress => policy.outbound = keys,
                }
            }
            PolicyDef::Profile(id) => {
                let (ingress, egress, notes) = match self.compiled_profile(model, id) {
                    Some(c) => (c.ingress.clone(), c.egress.clone(), c.notes.clone()),
                    None => {
                        tracing::warn!(profile = %id, "endpoint names an unknown profile; it denies");
                        (
                            vec![deny_all()],
                            vec![deny_all()],
                            vec![Note::UnknownProfile {
                                profile: id.clone(),
                            }],
                        )
                    }
                };
                self.report.set(Subject::Profile(id.clone()), notes);
                policy.inbound = egress.iter().map(|(k, _)| k.clone()).collect();
                policy.outbound = ingress.iter().map(|(k, _)| k.clone()).collect();
                rules.extend(egress);
                rules.extend(ingress);
            }
            PolicyDef::EncapDrop => {
                if !self.cfg.allow_vxlan_from_workloads {
                    rules.push(keyed(npol::Rule {
                        action: RuleAction::Deny,
                        filters: [
                            Filter {
                                kind: FilterType::L4Proto,
                                value: 17,
                                should_match: true,
                            },
                            Filter::NONE,
                            Filter::NONE,
                        ],
                        entries: vec![Entry {
                            is_src: false,
                            is_not: false,
                            data: EntryData::PortRange {
                                start: self.cfg.vxlan_port,
                                end: self.cfg.vxlan_port,
                            },
                        }],
                    }));
                }
                if !self.cfg.allow_ipip_from_workloads {
                    rules.push(keyed(npol::Rule {
                        action: RuleAction::Deny,
                        filters: [
                            Filter {
                                kind: FilterType::L4Proto,
                                value: 4,
                                should_match: true,
                            },
                            Filter::NONE,
                            Filter::NONE,
                        ],
                        entries: Vec::new(),
                    }));
                }
                policy.inbound = rules.iter().map(|(k, _)| k.clone()).collect();
            }
            PolicyDef::AntiSpoof(sources) => {
                // One rule: a negated source list skips entries of the other family, so a
                // packet of a family the workload has no source of matches it and is denied;
                // with no sources at all it denies everything, as Felix's RPF check does.
                rules.push(keyed(npol::Rule {
                    action: RuleAction::Deny,
                    filters: [Filter::NONE; 3],
                    entries: sources
                        .iter()
                        .map(|n| Entry {
                            is_src: true,
                            is_not: true,
                            data: EntryData::Cidr(*n),
                        })
                        .collect(),
                }));
                policy.inbound = rules.iter().map(|(k, _)| k.clone()).collect();
            }
            PolicyDef::ToHostDrop => {
                rules.push(keyed(npol::Rule {
                    action: RuleAction::Deny,
                    filters: [Filter::NONE; 3],
                    entries: vec![Entry {
                        is_src: false,
                        is_not: false,
                        data: EntryData::IpSet(IpSetKey(LOCAL_HOST_SET.into())),
                    }],
                }));
                policy.inbound = rules.iter().map(|(k, _)| k.clone()).collect();
            }
        }
        (policy, rules)
    }

    /// Replaces a live policy's content (new rules acquired before old ones are released,
    /// so shared rules never disappear in between).
    fn rebuild_policy(&mut self, model: &Model, key: &PolicyKey) {
        let Some(def) = self.policy_defs.get(key).cloned() else {
            return;
        };
        let (policy, rules) = self.build_policy(model, &def);
        for (k, r) in &rules {
            self.acquire_rule(model, k, r);
        }
        if let Some(old) = self.out.policies.get(key).cloned() {
            for k in old.inbound.iter().chain(&old.outbound) {
                self.release_rule(k);
            }
        }
        self.set_policy(key, Some(policy));
    }

    fn acquire_policy(&mut self, model: &Model, key: &PolicyKey, def: PolicyDef) {
        let n = self.policy_refs.entry(key.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            return;
        }
        if let PolicyDef::Tier(t) = &def {
            for pid in &t.policies {
                self.tiers_by_policy
                    .entry(pid.clone())
                    .or_default()
                    .insert(key.clone());
            }
        }
        self.policy_defs.insert(key.clone(), def.clone());
        self.rebuild_policy(model, key);
        if let PolicyDef::Tier(t) = &def {
            for pid in &t.policies {
                self.policy_notes(model, pid);
            }
        }
    }

    fn release_policy(&mut self, model: &Model, key: &PolicyKey) {
        let Some(n) = self.policy_refs.get_mut(key) else {
            return;
        };
        *n -= 1;
        if *n > 0 {
            return;
        }
        self.policy_refs.remove(key);
        if let Some(old) = self.out.policies.get(key).cloned() {
            for k in old.inbound.iter().chain(&old.outbound) {
                self.release_rule(k);
            }
        }
        self.set_policy(key, None);
        match self.policy_defs.remove(key) {
            Some(PolicyDef::Tier(t)) => {
                for pid in &t.policies {
                    if let Some(s) = self.tiers_by_policy.get_mut(pid) {
                        s.remove(key);
                        if s.is_empty() {
                            self.tiers_by_policy.remove(pid);
                        }
                    }
                    self.policy_notes(model, pid);
                }
            }
            Some(PolicyDef::Profile(id)) => {
                self.report.set(Subject::Profile(id), Vec::new());
            }
            _ => {}
        }
    }

    // ---- endpoints ------------------------------------------------------------------------

    /// The interface configuration of one workload, and the policies it refers to.
    fn workload_config(
        &self,
        ep: &WorkloadEndpoint,
    ) -> (
        npol::InterfaceConfig<PolicyKey>,
        Vec<(PolicyKey, PolicyDef)>,
    ) {
        let mut defs: Vec<(PolicyKey, PolicyDef)> = Vec::new();
        let mut cfg = npol::InterfaceConfig {
            rx_policies: Vec::new(),
            tx_policies: Vec::new(),
            profiles: Vec::new(),
            invert_rx_tx: false,
            policy_default_rx: PolicyDefault::Pass,
            policy_default_tx: PolicyDefault::Pass,
            profile_default_rx: PolicyDefault::Deny,
            profile_default_tx: PolicyDefault::Deny,
        };
        if !ep.active || ep.invalid.is_some() {
            cfg.policy_default_rx = PolicyDefault::Deny;
            cfg.policy_default_tx = PolicyDefault::Deny;
            return (cfg, defs);
        }
        // Felix drops spoofed sources before any policy (its RPF check).
        let sources = permitted_sources(ep);
        let key = anti_spoof_key(&sources);
        cfg.rx_policies.push(key.clone());
        defs.push((key, PolicyDef::AntiSpoof(sources)));
        if !(self.cfg.allow_vxlan_from_workloads && self.cfg.allow_ipip_from_workloads) {
            defs.push((PolicyKey(ENCAP_DROP_POLICY.into()), PolicyDef::EncapDrop));
            cfg.rx_policies.push(PolicyKey(ENCAP_DROP_POLICY.into()));
        }
        if self.cfg.endpoint_to_host == EndpointToHostAction::Drop {
            defs.push((PolicyKey(TO_HOST_DROP_POLICY.into()), PolicyDef::ToHostDrop));
            cfg.rx_policies.push(PolicyKey(TO_HOST_DROP_POLICY.into()));
        }
        for tier in &ep.tiers {
            for (dir, list) in [
                (CalicoDirection::Ingress, &tier.ingress_policies),
                (CalicoDirection::Egress, &tier.egress_policies),
            ] {
                let policies: Vec<PolicyId> =
                    list.iter().filter(|p| !p.is_staged()).cloned().collect();
                if policies.is_empty() {
                    // No (non-staged) policy for this direction: the tier is skipped.
                    continue;
                }
                let def = TierDef {
                    tier: tier.name.clone(),
                    dir,
                    policies,
                    default_pass: tier.default_action == TierDefaultAction::Pass,
                };
                let key = tier_key(&def);
                match dir {
                    CalicoDirection::Ingress => cfg.tx_policies.push(key.clone()),
                    CalicoDirection::Egress => cfg.rx_policies.push(key.clone()),
                }
                defs.push((key, PolicyDef::Tier(def)));
            }
        }
        for p in &ep.profile_ids {
            let key = profile_key(p);
            cfg.profiles.push(key.clone());
            defs.push((key, PolicyDef::Profile(p.clone())));
        }
        (cfg, defs)
    }

    fn configure_interface(&mut self, model: &Model, iface: &InterfaceKey) {
        let eps: Vec<WorkloadEndpointId> = self
            .iface_eps
            .get(iface)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let pod_mac = crate::pods::pod_mac(model, &iface.0);
        let new = match eps.as_slice() {
            [] => None,
            [id] => model.workload_endpoints.get(id).map(|ep| {
                let notes = if !ep.active || ep.invalid.is_some() {
                    let reason = ep
                        .invalid
                        .as_ref()
                        .map(|i| i.reason.clone())
                        .unwrap_or_else(|| "not active".into());
                    vec![Note::EndpointDown { reason }]
                } else {
                    Vec::new()
                };
                self.report.set(Subject::Workload(id.clone()), notes);
                let (config, defs) = self.workload_config(ep);
                (desired_interface(id, ep, pod_mac, config), defs)
            }),
            many => {
                tracing::error!(interface = %iface, endpoints = many.len(), "several endpoints name one interface; it denies everything");
                for id in many {
                    self.report.set(
                        Subject::Workload(id.clone()),
                        vec![Note::InterfaceConflict {
                            interface: iface.0.clone(),
                        }],
                    );
                }
                let ep = model.workload_endpoints.get(&many[0]);
                ep.map(|ep| {
                    let down = WorkloadEndpoint {
                        active: false,
                        ..ep.clone()
                    };
                    let (config, defs) = self.workload_config(&down);
                    (desired_interface(&many[0], ep, pod_mac, config), defs)
                })
            }
        };
        let old_keys: Vec<PolicyKey> = self
            .out
            .interfaces
            .get(iface)
            .map(|i| policy_keys_of(&i.config))
            .unwrap_or_default();
        match new {
            Some((di, defs)) => {
                for (k, d) in defs {
                    self.acquire_policy(model, &k, d);
                }
                for k in &old_keys {
                    self.release_policy(model, k);
                }
                if self.out.interfaces.get(iface) != Some(&di) {
                    self.set_interface(iface, Some(di));
                }
            }
            None => {
                for k in &old_keys {
                    self.release_policy(model, k);
                }
                self.set_interface(iface, None);
            }
        }
    }

    fn host_endpoint_note(
        &mut self,
        id: &HostEndpointId,
        hep: Option<&calico_model::HostEndpoint>,
    ) {
        let notes = hep
            .map(|h| {
                tracing::warn!(host_endpoint = %id, "host endpoint policy is not enforced by this dataplane yet");
                vec![Note::HostEndpointNotEnforced {
                    tiers: h.tiers.len(),
                    untracked_tiers: h.untracked_tiers.len(),
                    pre_dnat_tiers: h.pre_dnat_tiers.len(),
                    forward_tiers: h.forward_tiers.len(),
                    profiles: h.profile_ids.len(),
                }]
            })
            .unwrap_or_default();
        self.report.set(Subject::Host(id.clone()), notes);
    }

    fn node_notes(&mut self, _model: &Model) {
        let mut notes = Vec::new();
        if self.cfg.guard_icmp_errors {
            notes.push(Note::GuardIcmpErrors);
        }
        let how = match self.cfg.endpoint_to_host {
            EndpointToHostAction::Drop => format!(
                "every workload's RX list starts with {TO_HOST_DROP_POLICY}, denying destinations in {LOCAL_HOST_SET} (routes of type LOCAL_HOST)"
            ),
            EndpointToHostAction::Accept => "workload egress policy alone decides".into(),
            EndpointToHostAction::Return => {
                "host endpoint policy is not compiled: behaves as ACCEPT".into()
            }
        };
        notes.push(Note::EndpointToHost {
            action: self.cfg.endpoint_to_host,
            how,
        });
        self.report.set(Subject::Node, notes);
    }
}

fn keyed(r: npol::Rule<IpSetKey>) -> (RuleKey, npol::Rule<IpSetKey>) {
    (rule_key(&r), r)
}

/// `pod_mac`: the MAC of the pod link the driver made for this interface, used when Felix's
/// endpoint has none (the Kubernetes datastore sends none).
fn desired_interface(
    id: &WorkloadEndpointId,
    ep: &WorkloadEndpoint,
    pod_mac: Option<calico_model::MacAddr>,
    config: npol::InterfaceConfig<PolicyKey>,
) -> DesiredInterface {
    let mut neighbours = Vec::new();
    if let Some(mac) = ep.mac.or(pod_mac) {
        for n in &ep.ipv4_nets {
            neighbours.push((std::net::IpAddr::V4(n.addr()), mac));
        }
        for n in &ep.ipv6_nets {
            neighbours.push((std::net::IpAddr::V6(n.addr()), mac));
        }
    }
    DesiredInterface {
        endpoint: id.clone().into(),
        interface_name: ep.name.clone(),
        neighbours,
        config,
        guard: crate::guard::InterfaceGuard::workload(),
    }
}

fn policy_keys_of(c: &npol::InterfaceConfig<PolicyKey>) -> Vec<PolicyKey> {
    c.rx_policies
        .iter()
        .chain(&c.tx_policies)
        .chain(&c.profiles)
        .cloned()
        .collect()
}

fn derived_refs_of(r: &npol::Rule<IpSetKey>) -> Vec<IpSetKey> {
    r.entries
        .iter()
        .filter_map(|e| match &e.data {
            EntryData::IpSet(k) | EntryData::PortIpSet(k) if k.0.starts_with("d:") => {
                Some(k.clone())
            }
            _ => None,
        })
        .collect()
}

/// Logs each fail-closed decision once, when the policy or profile is compiled.
fn log_notes(owner: &str, notes: &[Note]) {
    for n in notes {
        match n {
            Note::Invalid { reason } | Note::BadIpSetReference { reason } => {
                tracing::warn!(owner, reason = %reason, "compiled to deny-all");
            }
            Note::HttpMatchIgnored { direction, index } => {
                tracing::info!(owner, ?direction, index, "HTTP match ignored");
            }
            Note::GuardStricter {
                direction,
                index,
                rule_id,
            } => {
                tracing::info!(owner, ?direction, index, rule_id = %rule_id, "allow rule may match protocols the protocol guard drops (only TCP, UDP, SCTP, ICMP echo/errors and ND cross a workload interface)");
            }
            _ => {}
        }
    }
}
