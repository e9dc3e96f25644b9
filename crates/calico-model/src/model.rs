//! The model state: what Felix has said, keyed by typed ids. `apply` (in `update.rs`) changes it
//! one update at a time and reports what changed so later stages can work incrementally.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::felix_config::FelixConfig;
use crate::types::*;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    pub ipsets: BTreeMap<IpSetId, IpSet>,
    pub profiles: BTreeMap<ProfileId, Profile>,
    pub policies: BTreeMap<PolicyId, Policy>,
    pub workload_endpoints: BTreeMap<WorkloadEndpointId, WorkloadEndpoint>,
    pub host_endpoints: BTreeMap<HostEndpointId, HostEndpoint>,
    pub routes: BTreeMap<IpNet, Route>,
    pub ipam_pools: BTreeMap<String, IpamPool>,
    /// Keyed by hostname.
    pub host_metadata: BTreeMap<String, HostMetadata>,
    /// Hosts whose IPv6 address came on its own (Calico v3.32's `HostMetadataV6Update`):
    /// their `HostMetadataUpdate` carries the IPv4 address only.
    #[serde(default)]
    pub host_ipv6_apart: BTreeSet<String>,
    /// Namespace labels.
    pub namespaces: BTreeMap<NamespaceId, BTreeMap<String, String>>,
    /// Service account labels.
    pub service_accounts: BTreeMap<ServiceAccountId, BTreeMap<String, String>>,
    pub services: BTreeMap<ServiceId, Service>,
    /// Keyed by node name.
    pub vteps: BTreeMap<String, Vtep>,
    /// Keyed by hostname.
    pub wireguard_v4: BTreeMap<String, WireguardEndpoint>,
    pub wireguard_v6: BTreeMap<String, WireguardEndpoint>,
    pub global_bgp: Option<GlobalBgpConfig>,
    pub encapsulation: Option<Encapsulation>,
    /// Felix's `ConfigUpdate.config`: canonical names, raw strings, as last received.
    pub felix_config: BTreeMap<String, String>,
    /// The typed settings parsed from `felix_config` (Felix's defaults until a ConfigUpdate).
    pub config: FelixConfig,
    /// `InSync` received: the snapshot is complete.
    pub in_sync: bool,
    /// This node's name when Felix's config carries no `FelixHostname` (set by the driver
    /// from its environment, as Felix finds its own: `FELIX_FELIXHOSTNAME`, `NODENAME`,
    /// the system hostname).
    #[serde(default)]
    pub default_hostname: Option<String>,
    /// Service CIDRs the driver is told of (`CALICO_VPP_SERVICE_CIDRS`), for clusters whose
    /// BGP configuration names none: they keep their source under SNAT like Felix's own.
    #[serde(default)]
    pub default_service_cidrs: Vec<ipnet::IpNet>,
    /// Pod interfaces the driver created for the CNI plugin (not Felix's: carried from one
    /// session's model to the next).
    #[serde(default)]
    pub pods: crate::Pods,
    /// Kubernetes Services and EndpointSlices (the driver's own watch, not Felix's: carried
    /// from one session's model to the next).
    #[serde(default)]
    pub kube: crate::kube::KubeState,
    /// Both of the watch's initial lists are in: services may be programmed and pruned.
    #[serde(default)]
    pub kube_synced: bool,
}

impl Model {
    /// This node's name as Felix knows it: `FelixHostname`, else the driver's default.
    pub fn hostname(&self) -> Option<&str> {
        self.felix_config
            .get("FelixHostname")
            .map(|h| h.trim())
            .filter(|h| !h.is_empty())
            .or(self.default_hostname.as_deref())
    }
}
