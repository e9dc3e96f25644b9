//! The compiler's output: the npol objects VPP should hold, keyed by stable keys.
//!
//! Keys are derived from content or from Calico ids so that a small model change yields a
//! small change here, and objects are shared between endpoints whose policy is the same.
//! The reconciler maps keys to VPP ids; nothing here knows a VPP id.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use calico_model::MacAddr;
use serde::{Deserialize, Serialize};

use crate::guard::{Acl, InterfaceGuard};
use crate::pods::{DesiredPod, DesiredPodLink};
use crate::routes::{
    DesiredLocalRoute, DesiredRoute, DesiredTunnel, DesiredUplink, RouteKey, TunnelKey, UplinkKey,
};
use crate::services::{DesiredReject, DesiredTranslation, FrontendKey};
use crate::snat::{
    DesiredSnat, DesiredSnatExclude, DesiredSnatIf, SnatExcludeKey, SnatIfKey, SnatKey,
};

/// A state-file key that does not parse as the key of its table.
#[derive(Debug, thiserror::Error)]
#[error("not a state-file key of this table: {0:?}")]
pub struct BadKey(pub String);

/// The key of a table with one entry, written as `$text` (JSON keys are strings).
macro_rules! unit_key {
    ($(#[$m:meta])* $name:ident, $text:literal) => {
        $(#[$m])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
        )]
        #[serde(into = "String", try_from = "String")]
        pub struct $name;
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($text)
            }
        }
        impl From<$name> for String {
            fn from(key: $name) -> String {
                key.to_string()
            }
        }
        impl TryFrom<String> for $name {
            type Error = $crate::desired::BadKey;
            fn try_from(s: String) -> Result<$name, $crate::desired::BadKey> {
                if s == $text {
                    Ok($name)
                } else {
                    Err($crate::desired::BadKey(s))
                }
            }
        }
    };
}
pub(crate) use unit_key;

macro_rules! key {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub String);
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

key!(
    /// An npol ipset: one per (Calico IP set, npol set type) as needed, or a derived set.
    IpSetKey
);
key!(
    /// An npol rule.
    RuleKey
);
key!(
    /// An npol policy.
    PolicyKey
);
key!(
    /// An ACL (VPP ACL plugin): the protocol guards, shared by every workload interface.
    AclKey
);
key!(
    /// An interface to configure: the endpoint's interface name as Felix gives it.
    InterfaceKey
);

/// One endpoint's interface and what to program on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredInterface {
    /// Which Calico endpoint this is, for status and logs.
    pub endpoint: calico_model::EndpointId,
    /// Felix's interface name: matched against VPP interface tags, then names.
    pub interface_name: String,
    /// Static neighbour entries to program before the policy goes live (DESIGN section 3).
    pub neighbours: Vec<(IpAddr, MacAddr)>,
    /// npol configuration.
    pub config: npol::InterfaceConfig<PolicyKey>,
    /// The protocol guard ACLs (input and output); attached no later than `config`.
    pub guard: InterfaceGuard,
}

/// Declares the tables of the reconciler's generic object kinds, once: their fields in
/// [`DesiredState`], their [`KindDiff`]s in [`KindDiffs`], and the diff's bookkeeping. A new
/// kind of VPP object is one line here (its key and desired value), the compiler code that
/// fills its table, and its kind in the reconciler's registry.
macro_rules! generic_kinds {
    ($( $(#[$doc:meta])* $field:ident: $key:ty => $want:ty, )*) => {
        /// Everything the compiler wants in VPP.
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct DesiredState {
            /// Shared (`Arc`) with the reconciler's copy: a million members are held once,
            /// and a set is copied only when one side changes it.
            pub ipsets: BTreeMap<IpSetKey, Arc<npol::IpSet>>,
            pub interfaces: BTreeMap<InterfaceKey, DesiredInterface>,
            $(
                $(#[$doc])*
                #[serde(default)]
                pub $field: BTreeMap<$key, $want>,
            )*
            /// The Kubernetes watch has both its lists: translations not desired may be
            /// deleted (before, the realized ones are kept: nothing is known yet).
            #[serde(default)]
            pub services_synced: bool,
        }

        /// What changed in each generic kind's table, named as in [`DesiredState`].
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub struct KindDiffs {
            $( pub $field: KindDiff<$key, $want>, )*
        }

        impl KindDiffs {
            pub fn is_empty(&self) -> bool {
                true $( && self.$field.is_empty() )*
            }

            pub fn len(&self) -> usize {
                0 $( + self.$field.len() )*
            }

            /// Records every difference of the generic tables from `old` to `new`.
            pub fn note_all(&mut self, old: &DesiredState, new: &DesiredState) {
                $( self.$field.note_all(&old.$field, &new.$field); )*
            }

            /// Applies every change to `state` (which must equal the state they were
            /// computed from).
            pub fn apply_to(self, state: &mut DesiredState) {
                $( self.$field.apply_to(&mut state.$field); )*
            }
        }
    };
}

generic_kinds! {
    rules: RuleKey => npol::Rule<IpSetKey>,
    policies: PolicyKey => npol::Policy<RuleKey>,
    /// ACLs interfaces refer to (see [`crate::guard`]).
    acls: AclKey => Acl,
    /// Routes to other nodes' workloads (see [`crate::routes`]).
    routes: RouteKey => DesiredRoute,
    /// Routes to this node's workloads (see [`crate::routes::desired_local_routes`]).
    local_routes: RouteKey => DesiredLocalRoute,
    /// Tunnels to other nodes the routes go through (see [`crate::routes`]).
    tunnels: TunnelKey => DesiredTunnel,
    /// The uplink's preparation (see [`crate::routes::desired_uplinks`]).
    uplinks: UplinkKey => DesiredUplink,
    /// SNAT for masquerading pools (see [`crate::snat`]).
    snat: SnatKey => DesiredSnat,
    snat_excludes: SnatExcludeKey => DesiredSnatExclude,
    snat_interfaces: SnatIfKey => DesiredSnatIf,
    /// Pod interfaces the driver creates (see [`crate::pods`]).
    pods: InterfaceKey => DesiredPod,
    pod_links: InterfaceKey => DesiredPodLink,
    /// Kubernetes service frontends (see [`crate::services`]).
    translations: FrontendKey => DesiredTranslation,
    /// ClusterIPs routed to an ICMP unreachable (see [`crate::services::DesiredReject`]).
    service_rejects: RouteKey => DesiredReject,
}

/// Members to add to and remove from an ipset whose key and type did not change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDelta {
    pub added: Vec<npol::IpSetMember>,
    pub removed: Vec<npol::IpSetMember>,
}

/// The difference between two desired states, object by object. An ipset whose type
/// changed is in `ipsets_upserted` (it must be rebuilt); one whose members changed is in
/// `ipset_members`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredDiff {
    pub ipsets_upserted: BTreeMap<IpSetKey, Arc<npol::IpSet>>,
    pub ipset_members: BTreeMap<IpSetKey, MemberDelta>,
    pub ipsets_removed: Vec<IpSetKey>,
    pub interfaces_upserted: BTreeMap<InterfaceKey, DesiredInterface>,
    pub interfaces_removed: Vec<InterfaceKey>,
    /// The generic kinds' tables.
    pub kinds: KindDiffs,
    /// `services_synced` changed to this.
    pub services_synced: Option<bool>,
}

/// What changed in one kind's table of desired objects: the new values of the keys that
/// were added or changed, and the keys removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindDiff<K: Ord, V> {
    pub upserted: BTreeMap<K, V>,
    pub removed: Vec<K>,
}

impl<K: Ord, V> Default for KindDiff<K, V> {
    fn default() -> Self {
        KindDiff {
            upserted: BTreeMap::new(),
            removed: Vec::new(),
        }
    }
}

impl<K: Ord + Clone, V: PartialEq + Clone> KindDiff<K, V> {
    pub fn is_empty(&self) -> bool {
        self.upserted.is_empty() && self.removed.is_empty()
    }

    pub fn len(&self) -> usize {
        self.upserted.len() + self.removed.len()
    }

    /// Records the change of `key` from `old` to `new`.
    pub fn note(&mut self, key: &K, old: Option<&V>, new: Option<&V>) {
        match (old, new) {
            (Some(_), None) => self.removed.push(key.clone()),
            (o, Some(n)) if o != Some(n) => {
                self.upserted.insert(key.clone(), n.clone());
            }
            _ => {}
        }
    }

    /// Records every difference from `old` to `new`.
    pub fn note_all(&mut self, old: &BTreeMap<K, V>, new: &BTreeMap<K, V>) {
        for k in union(old.keys(), new.keys()) {
            self.note(k, old.get(k), new.get(k));
        }
    }

    /// Every key the change names, removals included.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.upserted.keys().chain(&self.removed)
    }

    /// Applies the change to `table` (which must equal the table it was computed from).
    pub fn apply_to(self, table: &mut BTreeMap<K, V>) {
        for k in self.removed {
            table.remove(&k);
        }
        table.extend(self.upserted);
    }
}

impl DesiredDiff {
    pub fn is_empty(&self) -> bool {
        self.ipsets_upserted.is_empty()
            && self.ipset_members.is_empty()
            && self.ipsets_removed.is_empty()
            && self.interfaces_upserted.is_empty()
            && self.interfaces_removed.is_empty()
            && self.kinds.is_empty()
            && self.services_synced.is_none()
    }

    /// Number of object-level changes (each member delta counts once per member).
    pub fn len(&self) -> usize {
        self.ipsets_upserted.len()
            + self
                .ipset_members
                .values()
                .map(|d| d.added.len() + d.removed.len())
                .sum::<usize>()
            + self.ipsets_removed.len()
            + self.interfaces_upserted.len()
            + self.interfaces_removed.len()
            + self.kinds.len()
    }

    /// Records the change of one ipset from `old` to `new`.
    pub fn note_ipset(
        &mut self,
        key: &IpSetKey,
        old: Option<&Arc<npol::IpSet>>,
        new: Option<&Arc<npol::IpSet>>,
    ) {
        match (old, new) {
            (Some(o), Some(n)) if Arc::ptr_eq(o, n) => {}
            (None, None) => {}
            (Some(_), None) => self.ipsets_removed.push(key.clone()),
            (Some(o), Some(n)) if o.kind == n.kind => {
                if o.members != n.members {
                    self.ipset_members.insert(
                        key.clone(),
                        MemberDelta {
                            added: n.members.difference(&o.members).copied().collect(),
                            removed: o.members.difference(&n.members).copied().collect(),
                        },
                    );
                }
            }
            (_, Some(n)) => {
                self.ipsets_upserted.insert(key.clone(), n.clone());
            }
        }
    }

    fn note<K: Ord + Clone, V: PartialEq + Clone>(
        up: &mut BTreeMap<K, V>,
        rm: &mut Vec<K>,
        key: &K,
        old: Option<&V>,
        new: Option<&V>,
    ) {
        match (old, new) {
            (Some(_), None) => rm.push(key.clone()),
            (o, Some(n)) if o != Some(n) => {
                up.insert(key.clone(), n.clone());
            }
            _ => {}
        }
    }

    pub fn note_interface(
        &mut self,
        key: &InterfaceKey,
        old: Option<&DesiredInterface>,
        new: Option<&DesiredInterface>,
    ) {
        Self::note(
            &mut self.interfaces_upserted,
            &mut self.interfaces_removed,
            key,
            old,
            new,
        );
    }
}

impl DesiredState {
    /// Everything that differs from `self` to `new` (a full comparison).
    pub fn diff(&self, new: &DesiredState) -> DesiredDiff {
        let mut d = DesiredDiff::default();
        for k in union(self.ipsets.keys(), new.ipsets.keys()) {
            d.note_ipset(k, self.ipsets.get(k), new.ipsets.get(k));
        }
        for k in union(self.interfaces.keys(), new.interfaces.keys()) {
            d.note_interface(k, self.interfaces.get(k), new.interfaces.get(k));
        }
        d.kinds.note_all(self, new);
        d.services_synced =
            (self.services_synced != new.services_synced).then_some(new.services_synced);
        d
    }
}

fn union<'a, K: Ord + 'a>(
    a: impl Iterator<Item = &'a K>,
    b: impl Iterator<Item = &'a K>,
) -> std::collections::BTreeSet<&'a K> {
    a.chain(b).collect()
}
