//! Model-level updates (what `felix::convert` produces from one Felix message) and
//! `Model::apply`, which applies one and records what changed.
//!
//! Pure and total: an update that does not fit the model (a delta for an unknown IP set, a
//! member of the wrong type) is logged and ignored, never a panic.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::{IpNet, Ipv6Net};
use tracing::warn;

use crate::felix_config::FelixConfig;
use crate::model::Model;
use crate::types::*;

pub type Labels = BTreeMap<String, String>;

/// One change Felix asked for, already converted and validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// The snapshot is complete.
    InSync,
    /// Felix's whole config map (replaces the previous one).
    Config(BTreeMap<String, String>),

    /// A set's full membership (creates or replaces it).
    IpSetUpdate {
        id: IpSetId,
        set: IpSet,
    },
    /// Members added to / removed from an existing set.
    IpSetDelta {
        id: IpSetId,
        added: Vec<IpSetMember>,
        removed: Vec<IpSetMember>,
    },
    IpSetRemove {
        id: IpSetId,
    },

    ProfileUpdate {
        id: ProfileId,
        profile: Profile,
    },
    ProfileRemove {
        id: ProfileId,
    },
    PolicyUpdate {
        id: PolicyId,
        policy: Policy,
    },
    PolicyRemove {
        id: PolicyId,
    },

    WorkloadEndpointUpdate {
        id: WorkloadEndpointId,
        endpoint: WorkloadEndpoint,
    },
    WorkloadEndpointRemove {
        id: WorkloadEndpointId,
    },
    HostEndpointUpdate {
        id: HostEndpointId,
        endpoint: HostEndpoint,
    },
    HostEndpointRemove {
        id: HostEndpointId,
    },

    /// A host's record (Calico v3.33 sends it whole; v3.32 sends the IPv4 address here and
    /// the IPv6 one in [`Update::HostIpv6Update`], merged by hostname).
    HostMetadataUpdate {
        hostname: String,
        metadata: HostMetadata,
    },
    /// The host is gone (v3.33), or its IPv4 address is (v3.32, once the host's IPv6
    /// address came on its own: the rest of the record stays).
    HostMetadataRemove {
        hostname: String,
    },
    /// v3.32: a host's IPv6 address, on its own.
    HostIpv6Update {
        hostname: String,
        ipv6_addr: Option<Ipv6Net>,
    },
    /// v3.32: a host's IPv6 address is gone.
    HostIpv6Remove {
        hostname: String,
    },
    /// v3.32: a whole host record (`HostMetadataV4V6Update`).
    HostRecordUpdate {
        hostname: String,
        metadata: HostMetadata,
    },
    /// v3.32: the whole host is gone (`HostMetadataV4V6Remove`).
    HostRecordRemove {
        hostname: String,
    },
    IpamPoolUpdate {
        id: String,
        pool: IpamPool,
    },
    IpamPoolRemove {
        id: String,
    },
    ServiceAccountUpdate {
        id: ServiceAccountId,
        labels: Labels,
    },
    ServiceAccountRemove {
        id: ServiceAccountId,
    },
    NamespaceUpdate {
        id: NamespaceId,
        labels: Labels,
    },
    NamespaceRemove {
        id: NamespaceId,
    },
    ServiceUpdate {
        id: ServiceId,
        service: Service,
    },
    ServiceRemove {
        id: ServiceId,
    },

    RouteUpdate {
        route: Route,
    },
    RouteRemove {
        dst: IpNet,
    },
    VtepUpdate {
        node: String,
        vtep: Vtep,
    },
    VtepRemove {
        node: String,
    },
    WireguardUpdate {
        hostname: String,
        endpoint: WireguardEndpoint,
    },
    WireguardRemove {
        hostname: String,
    },
    WireguardV6Update {
        hostname: String,
        endpoint: WireguardEndpoint,
    },
    WireguardV6Remove {
        hostname: String,
    },
    GlobalBgpConfig(GlobalBgpConfig),
    Encapsulation(Encapsulation),
}

impl Update {
    /// Short name of the update kind, for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Update::InSync => "in_sync",
            Update::Config(_) => "config",
            Update::IpSetUpdate { .. } => "ipset_update",
            Update::IpSetDelta { .. } => "ipset_delta",
            Update::IpSetRemove { .. } => "ipset_remove",
            Update::ProfileUpdate { .. } => "profile_update",
            Update::ProfileRemove { .. } => "profile_remove",
            Update::PolicyUpdate { .. } => "policy_update",
            Update::PolicyRemove { .. } => "policy_remove",
            Update::WorkloadEndpointUpdate { .. } => "workload_endpoint_update",
            Update::WorkloadEndpointRemove { .. } => "workload_endpoint_remove",
            Update::HostEndpointUpdate { .. } => "host_endpoint_update",
            Update::HostEndpointRemove { .. } => "host_endpoint_remove",
            Update::HostMetadataUpdate { .. } => "host_metadata_update",
            Update::HostMetadataRemove { .. } => "host_metadata_remove",
            Update::HostIpv6Update { .. } => "host_metadata_v6_update",
            Update::HostIpv6Remove { .. } => "host_metadata_v6_remove",
            Update::HostRecordUpdate { .. } => "host_metadata_v4v6_update",
            Update::HostRecordRemove { .. } => "host_metadata_v4v6_remove",
            Update::IpamPoolUpdate { .. } => "ipam_pool_update",
            Update::IpamPoolRemove { .. } => "ipam_pool_remove",
            Update::ServiceAccountUpdate { .. } => "service_account_update",
            Update::ServiceAccountRemove { .. } => "service_account_remove",
            Update::NamespaceUpdate { .. } => "namespace_update",
            Update::NamespaceRemove { .. } => "namespace_remove",
            Update::ServiceUpdate { .. } => "service_update",
            Update::ServiceRemove { .. } => "service_remove",
            Update::RouteUpdate { .. } => "route_update",
            Update::RouteRemove { .. } => "route_remove",
            Update::VtepUpdate { .. } => "vtep_update",
            Update::VtepRemove { .. } => "vtep_remove",
            Update::WireguardUpdate { .. } => "wireguard_update",
            Update::WireguardRemove { .. } => "wireguard_remove",
            Update::WireguardV6Update { .. } => "wireguard_v6_update",
            Update::WireguardV6Remove { .. } => "wireguard_v6_remove",
            Update::GlobalBgpConfig(_) => "global_bgp_config",
            Update::Encapsulation(_) => "encapsulation",
        }
    }
}

/// How one IP set changed, relative to the state before the first update recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpSetChange {
    /// New, or its type changed: treat it as a fresh set (its members are in the model).
    Replaced,
    /// Gone from the model.
    Removed,
    /// Same set, these members came and went (net of each other; never overlapping).
    Members {
        added: BTreeSet<IpSetMember>,
        removed: BTreeSet<IpSetMember>,
    },
}

/// What changed in the model. Keys name objects that were created, modified or removed (look
/// the key up in the model: absent means removed). Updates that changed nothing (identical
/// re-sends) are not recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub ipsets: BTreeMap<IpSetId, IpSetChange>,
    pub profiles: BTreeSet<ProfileId>,
    pub policies: BTreeSet<PolicyId>,
    pub workload_endpoints: BTreeSet<WorkloadEndpointId>,
    pub host_endpoints: BTreeSet<HostEndpointId>,
    pub routes: BTreeSet<IpNet>,
    pub ipam_pools: BTreeSet<String>,
    pub host_metadata: BTreeSet<String>,
    pub namespaces: BTreeSet<NamespaceId>,
    pub service_accounts: BTreeSet<ServiceAccountId>,
    pub services: BTreeSet<ServiceId>,
    pub vteps: BTreeSet<String>,
    pub wireguard_v4: BTreeSet<String>,
    pub wireguard_v6: BTreeSet<String>,
    pub global_bgp: bool,
    pub encapsulation: bool,
    /// Felix config keys whose raw value was added, changed or removed.
    pub felix_config: BTreeSet<String>,
    /// Pod interfaces (by host interface name) added, changed or removed by the CNI side.
    pub pods: BTreeSet<String>,
    /// Kubernetes services whose Service or EndpointSlices changed.
    pub kube_services: BTreeSet<crate::kube::ServiceKey>,
    /// The Kubernetes state was replaced as a whole (a list, or a relist).
    pub kube_resync: bool,
    /// `InSync` arrived (first time) while these changes were recorded.
    pub became_in_sync: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }

    /// Folds `later` (changes recorded after `self`) into `self`.
    pub fn merge(&mut self, later: Changes) {
        for (id, change) in later.ipsets {
            record_ipset(&mut self.ipsets, id, change);
        }
        self.profiles.extend(later.profiles);
        self.policies.extend(later.policies);
        self.workload_endpoints.extend(later.workload_endpoints);
        self.host_endpoints.extend(later.host_endpoints);
        self.routes.extend(later.routes);
        self.ipam_pools.extend(later.ipam_pools);
        self.host_metadata.extend(later.host_metadata);
        self.namespaces.extend(later.namespaces);
        self.service_accounts.extend(later.service_accounts);
        self.services.extend(later.services);
        self.vteps.extend(later.vteps);
        self.wireguard_v4.extend(later.wireguard_v4);
        self.wireguard_v6.extend(later.wireguard_v6);
        self.global_bgp |= later.global_bgp;
        self.encapsulation |= later.encapsulation;
        self.felix_config.extend(later.felix_config);
        self.pods.extend(later.pods);
        self.kube_services.extend(later.kube_services);
        self.kube_resync |= later.kube_resync;
        self.became_in_sync |= later.became_in_sync;
    }
}

/// Records `next` for `id` on top of whatever was recorded before, keeping the member deltas
/// net: a member added then removed within the batch disappears from both lists.
fn record_ipset(map: &mut BTreeMap<IpSetId, IpSetChange>, id: IpSetId, next: IpSetChange) {
    use std::collections::btree_map::Entry;
    match map.entry(id) {
        Entry::Vacant(v) => {
            v.insert(next);
        }
        Entry::Occupied(mut o) => {
            let merged = match (std::mem::replace(o.get_mut(), IpSetChange::Replaced), next) {
                (
                    IpSetChange::Members { added, removed },
                    IpSetChange::Members {
                        added: a2,
                        removed: r2,
                    },
                ) => {
                    let mut net_added: BTreeSet<IpSetMember> =
                        added.difference(&r2).cloned().collect();
                    let mut net_removed: BTreeSet<IpSetMember> =
                        removed.difference(&a2).cloned().collect();
                    net_added.extend(a2.into_iter().filter(|m| !removed.contains(m)));
                    net_removed.extend(r2.into_iter().filter(|m| !added.contains(m)));
                    IpSetChange::Members {
                        added: net_added,
                        removed: net_removed,
                    }
                }
                // Anything after a replace is still a replace of the pre-batch set, unless the
                // set is gone at the end.
                (IpSetChange::Replaced, IpSetChange::Members { .. }) => IpSetChange::Replaced,
                (_, IpSetChange::Removed) => IpSetChange::Removed,
                (_, IpSetChange::Replaced) => IpSetChange::Replaced,
                // A delta on a removed set is ignored by apply, so it is never recorded.
                (IpSetChange::Removed, IpSetChange::Members { .. }) => IpSetChange::Removed,
            };
            if matches!(&merged, IpSetChange::Members { added, removed } if added.is_empty() && removed.is_empty())
            {
                o.remove();
            } else {
                *o.get_mut() = merged;
            }
        }
    }
}

/// Inserts `value` under `key` and records `key` in `changed` when the stored value differs.
fn upsert<K: Ord + Clone, V: PartialEq>(
    map: &mut BTreeMap<K, V>,
    key: K,
    value: V,
    changed: &mut BTreeSet<K>,
) {
    match map.get_mut(&key) {
        Some(old) if *old == value => {}
        Some(old) => {
            *old = value;
            changed.insert(key);
        }
        None => {
            map.insert(key.clone(), value);
            changed.insert(key);
        }
    }
}

fn remove<K: Ord, V>(map: &mut BTreeMap<K, V>, key: K, changed: &mut BTreeSet<K>) {
    if map.remove(&key).is_some() {
        changed.insert(key);
    }
}

fn member_fits(kind: IpSetKind, member: &IpSetMember) -> bool {
    matches!(
        (kind, member),
        (IpSetKind::IpAndPort, IpSetMember::IpPort { .. })
            | (IpSetKind::Ip | IpSetKind::Net, IpSetMember::Net(_))
    )
}

impl Model {
    /// Changes one host's record (created empty if missing), noting it when it changed.
    fn edit_host(
        &mut self,
        hostname: String,
        edit: impl FnOnce(&mut HostMetadata),
        changed: &mut BTreeSet<String>,
    ) {
        let mut h = self
            .host_metadata
            .get(&hostname)
            .cloned()
            .unwrap_or_default();
        edit(&mut h);
        upsert(&mut self.host_metadata, hostname, h, changed);
    }

    /// Applies one update and returns what it changed.
    pub fn apply(&mut self, update: Update) -> Changes {
        let mut changes = Changes::default();
        self.apply_into(update, &mut changes);
        changes
    }

    /// Applies one update, folding what it changed into `changes` (for batches).
    pub fn apply_into(&mut self, update: Update, changes: &mut Changes) {
        match update {
            Update::InSync => {
                if !self.in_sync {
                    self.in_sync = true;
                    changes.became_in_sync = true;
                }
            }
            Update::Config(raw) => self.apply_config(raw, changes),
            Update::IpSetUpdate { id, set } => self.apply_ipset_update(id, set, changes),
            Update::IpSetDelta { id, added, removed } => {
                self.apply_ipset_delta(id, added, removed, changes)
            }
            Update::IpSetRemove { id } => {
                if self.ipsets.remove(&id).is_some() {
                    record_ipset(&mut changes.ipsets, id, IpSetChange::Removed);
                }
            }
            Update::ProfileUpdate { id, profile } => {
                upsert(&mut self.profiles, id, profile, &mut changes.profiles)
            }
            Update::ProfileRemove { id } => remove(&mut self.profiles, id, &mut changes.profiles),
            Update::PolicyUpdate { id, policy } => {
                upsert(&mut self.policies, id, policy, &mut changes.policies)
            }
            Update::PolicyRemove { id } => remove(&mut self.policies, id, &mut changes.policies),
            Update::WorkloadEndpointUpdate { id, endpoint } => upsert(
                &mut self.workload_endpoints,
                id,
                endpoint,
                &mut changes.workload_endpoints,
            ),
            Update::WorkloadEndpointRemove { id } => remove(
                &mut self.workload_endpoints,
                id,
                &mut changes.workload_endpoints,
            ),
            Update::HostEndpointUpdate { id, endpoint } => upsert(
                &mut self.host_endpoints,
                id,
                endpoint,
                &mut changes.host_endpoints,
            ),
            Update::HostEndpointRemove { id } => {
                remove(&mut self.host_endpoints, id, &mut changes.host_endpoints)
            }
            Update::HostMetadataUpdate {
                hostname,
                mut metadata,
            } => {
                // v3.32 sends the IPv6 address on its own: this update does not carry it.
                if self.host_ipv6_apart.contains(&hostname) {
                    if let Some(old) = self.host_metadata.get(&hostname) {
                        metadata.ipv6_addr = metadata.ipv6_addr.or(old.ipv6_addr);
                        if metadata.asnumber.is_empty() {
                            metadata.asnumber = old.asnumber.clone();
                        }
                        if metadata.labels.is_empty() {
                            metadata.labels = old.labels.clone();
                        }
                    }
                }
                upsert(
                    &mut self.host_metadata,
                    hostname,
                    metadata,
                    &mut changes.host_metadata,
                )
            }
            Update::HostRecordUpdate { hostname, metadata } => upsert(
                &mut self.host_metadata,
                hostname,
                metadata,
                &mut changes.host_metadata,
            ),
            Update::HostMetadataRemove { hostname } => {
                let keep = self.host_ipv6_apart.contains(&hostname)
                    && self
                        .host_metadata
                        .get(&hostname)
                        .is_some_and(|h| h.ipv6_addr.is_some());
                if keep {
                    self.edit_host(hostname, |h| h.ipv4_addr = None, &mut changes.host_metadata);
                } else {
                    self.host_ipv6_apart.remove(&hostname);
                    remove(
                        &mut self.host_metadata,
                        hostname,
                        &mut changes.host_metadata,
                    )
                }
            }
            Update::HostRecordRemove { hostname } => {
                self.host_ipv6_apart.remove(&hostname);
                remove(
                    &mut self.host_metadata,
                    hostname,
                    &mut changes.host_metadata,
                )
            }
            Update::HostIpv6Update {
                hostname,
                ipv6_addr,
            } => {
                self.host_ipv6_apart.insert(hostname.clone());
                self.edit_host(
                    hostname,
                    |h| h.ipv6_addr = ipv6_addr,
                    &mut changes.host_metadata,
                );
            }
            Update::HostIpv6Remove { hostname } => {
                let v4 = self
                    .host_metadata
                    .get(&hostname)
                    .is_some_and(|h| h.ipv4_addr.is_some());
                if v4 {
                    self.host_ipv6_apart.insert(hostname.clone());
                    self.edit_host(hostname, |h| h.ipv6_addr = None, &mut changes.host_metadata);
                } else {
                    self.host_ipv6_apart.remove(&hostname);
                    remove(
                        &mut self.host_metadata,
                        hostname,
                        &mut changes.host_metadata,
                    )
                }
            }
            Update::IpamPoolUpdate { id, pool } => {
                upsert(&mut self.ipam_pools, id, pool, &mut changes.ipam_pools)
            }
            Update::IpamPoolRemove { id } => {
                remove(&mut self.ipam_pools, id, &mut changes.ipam_pools)
            }
            Update::ServiceAccountUpdate { id, labels } => upsert(
                &mut self.service_accounts,
                id,
                labels,
                &mut changes.service_accounts,
            ),
            Update::ServiceAccountRemove { id } => remove(
                &mut self.service_accounts,
                id,
                &mut changes.service_accounts,
            ),
            Update::NamespaceUpdate { id, labels } => {
                upsert(&mut self.namespaces, id, labels, &mut changes.namespaces)
            }
            Update::NamespaceRemove { id } => {
                remove(&mut self.namespaces, id, &mut changes.namespaces)
            }
            Update::ServiceUpdate { id, service } => {
                upsert(&mut self.services, id, service, &mut changes.services)
            }
            Update::ServiceRemove { id } => remove(&mut self.services, id, &mut changes.services),
            Update::RouteUpdate { route } => {
                upsert(&mut self.routes, route.dst, route, &mut changes.routes)
            }
            Update::RouteRemove { dst } => remove(&mut self.routes, dst, &mut changes.routes),
            Update::VtepUpdate { node, vtep } => {
                upsert(&mut self.vteps, node, vtep, &mut changes.vteps)
            }
            Update::VtepRemove { node } => remove(&mut self.vteps, node, &mut changes.vteps),
            Update::WireguardUpdate { hostname, endpoint } => upsert(
                &mut self.wireguard_v4,
                hostname,
                endpoint,
                &mut changes.wireguard_v4,
            ),
            Update::WireguardRemove { hostname } => {
                remove(&mut self.wireguard_v4, hostname, &mut changes.wireguard_v4)
            }
            Update::WireguardV6Update { hostname, endpoint } => upsert(
                &mut self.wireguard_v6,
                hostname,
                endpoint,
                &mut changes.wireguard_v6,
            ),
            Update::WireguardV6Remove { hostname } => {
                remove(&mut self.wireguard_v6, hostname, &mut changes.wireguard_v6)
            }
            Update::GlobalBgpConfig(cfg) => {
                if self.global_bgp.as_ref() != Some(&cfg) {
                    self.global_bgp = Some(cfg);
                    changes.global_bgp = true;
                }
            }
            Update::Encapsulation(encap) => {
                if self.encapsulation != Some(encap) {
                    self.encapsulation = Some(encap);
                    changes.encapsulation = true;
                }
            }
        }
    }

    fn apply_config(&mut self, raw: BTreeMap<String, String>, changes: &mut Changes) {
        let keys: BTreeSet<&String> = self.felix_config.keys().chain(raw.keys()).collect();
        let changed: Vec<String> = keys
            .into_iter()
            .filter(|k| self.felix_config.get(*k) != raw.get(*k))
            .cloned()
            .collect();
        if changed.is_empty() {
            return;
        }
        let (config, errors) = FelixConfig::from_raw(&raw);
        for e in &errors {
            warn!(setting = %e.name, value = %e.value, reason = %e.reason, "invalid Felix setting; using its default");
        }
        self.config = config;
        self.felix_config = raw;
        changes.felix_config.extend(changed);
    }

    /// A set whose content is no longer known leaves the model: every rule naming it then
    /// compiles to a deny at its position (fail closed) until Felix sends the set again.
    fn withdraw_ipset(&mut self, id: IpSetId, changes: &mut Changes) {
        if self.ipsets.remove(&id).is_some() {
            record_ipset(&mut changes.ipsets, id, IpSetChange::Removed);
        }
    }

    fn apply_ipset_update(&mut self, id: IpSetId, set: IpSet, changes: &mut Changes) {
        if set.members.iter().any(|m| !member_fits(set.kind, m)) {
            warn!(ipset = %id, kind = ?set.kind,
                "IP set update carried members of the wrong type; set withdrawn");
            self.withdraw_ipset(id, changes);
            return;
        }
        match self.ipsets.get_mut(&id) {
            Some(old) if old.kind == set.kind => {
                let added: BTreeSet<IpSetMember> =
                    set.members.difference(&old.members).cloned().collect();
                let removed: BTreeSet<IpSetMember> =
                    old.members.difference(&set.members).cloned().collect();
                if added.is_empty() && removed.is_empty() {
                    return;
                }
                *old = set;
                record_ipset(
                    &mut changes.ipsets,
                    id,
                    IpSetChange::Members { added, removed },
                );
            }
            Some(old) => {
                *old = set;
                record_ipset(&mut changes.ipsets, id, IpSetChange::Replaced);
            }
            None => {
                self.ipsets.insert(id.clone(), set);
                record_ipset(&mut changes.ipsets, id, IpSetChange::Replaced);
            }
        }
    }

    fn apply_ipset_delta(
        &mut self,
        id: IpSetId,
        added: Vec<IpSetMember>,
        removed: Vec<IpSetMember>,
        changes: &mut Changes,
    ) {
        let Some(set) = self.ipsets.get_mut(&id) else {
            warn!(ipset = %id, "IP set delta for an unknown IP set; ignored");
            return;
        };
        // A removal of a member of the wrong type is exact to skip (it cannot be in the
        // set); an addition of one means we no longer know the set.
        if added.iter().any(|m| !member_fits(set.kind, m)) {
            warn!(ipset = %id, kind = ?set.kind,
                "IP set delta added members of the wrong type; set withdrawn");
            self.withdraw_ipset(id, changes);
            return;
        }
        let mut net_removed = BTreeSet::new();
        let mut net_added = BTreeSet::new();
        // Felix's own dataplanes add first, then remove; do the same so a member listed in
        // both ends up absent exactly as it would there.
        for m in added {
            if set.members.insert(m) {
                net_added.insert(m);
            }
        }
        for m in removed {
            if set.members.remove(&m) && !net_added.remove(&m) {
                net_removed.insert(m);
            }
        }
        if net_added.is_empty() && net_removed.is_empty() {
            return;
        }
        record_ipset(
            &mut changes.ipsets,
            id,
            IpSetChange::Members {
                added: net_added,
                removed: net_removed,
            },
        );
    }
}

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;
