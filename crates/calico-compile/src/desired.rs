//! The compiler's output: the npol objects VPP should hold, keyed by stable keys.
//!
//! Keys are derived from content or from Calico ids so that a small model change yields a
//! small change here, and objects are shared between endpoints whose policy is the same.
//! The reconciler maps keys to VPP ids; nothing here knows a VPP id.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use calico_model::MacAddr;
use serde::{Deserialize, Serialize};

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
    /// An interface to configure: the endpoint's interface name as Felix gives it.
    InterfaceKey
);

/// One endpoint's interface and what to program on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredInterface {
    /// Which Calico endpoint this is, for status and logs (e.g. `k8s/ns/pod/eth0` or a host
    /// endpoint id).
    pub endpoint: String,
    /// Felix's interface name: matched against VPP interface tags, then names.
    pub interface_name: String,
    /// Static neighbour entries to program before the policy goes live (DESIGN section 3).
    pub neighbours: Vec<(IpAddr, MacAddr)>,
    /// npol configuration.
    pub config: npol::InterfaceConfig<PolicyKey>,
}

/// Everything the compiler wants in VPP.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    pub ipsets: BTreeMap<IpSetKey, npol::IpSet>,
    pub rules: BTreeMap<RuleKey, npol::Rule<IpSetKey>>,
    pub policies: BTreeMap<PolicyKey, npol::Policy<RuleKey>>,
    pub interfaces: BTreeMap<InterfaceKey, DesiredInterface>,
}
