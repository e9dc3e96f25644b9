//! What we believe VPP holds because we put it there, and its file on disk.
//!
//! npol has no dump, so this record is the only way to find our objects again after a driver
//! restart. It must only ever describe what VPP acknowledged; it never holds desired content.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use calico_compile::{AclKey, InterfaceKey, IpSetKey, PolicyKey, RuleKey};
use calico_model::MacAddr;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::dataplane::{AclIndex, IpSetId, PolicyId, RuleId, SwIfIndex, VppIdentity};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealIpSet {
    pub id: IpSetId,
    pub set: npol::IpSet,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealRule {
    pub id: RuleId,
    pub rule: npol::Rule<IpSetId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealPolicy {
    pub id: PolicyId,
    pub policy: npol::Policy<RuleId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealAcl {
    pub id: AclIndex,
    pub acl: calico_compile::Acl,
}

/// The guard ACLs VPP accepted on an interface (`acl_interface_set_acl_list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealGuard {
    pub input: AclIndex,
    pub output: AclIndex,
}

/// An interface we configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealInterface {
    pub endpoint: String,
    pub sw_if_index: SwIfIndex,
    /// The configuration VPP accepted last; `None` before the first one.
    pub config: Option<npol::InterfaceConfig<PolicyId>>,
    pub cnat: bool,
    pub neighbours: BTreeSet<(IpAddr, MacAddr)>,
    /// The protocol guard attached last; `None` before (and in state files older than it).
    #[serde(default)]
    pub guard: Option<RealGuard>,
}

/// Ids we own that no key maps to any more (replaced by a rebuild, or an interface we bound
/// before): deleted once nothing realized refers to them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphans {
    pub ipsets: BTreeSet<IpSetId>,
    pub rules: BTreeSet<RuleId>,
    pub policies: BTreeSet<PolicyId>,
    /// Bindings to interfaces an endpoint no longer uses (its tag moved elsewhere).
    pub interfaces: BTreeMap<SwIfIndex, RealInterface>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Realized {
    pub ipsets: BTreeMap<IpSetKey, RealIpSet>,
    pub rules: BTreeMap<RuleKey, RealRule>,
    pub policies: BTreeMap<PolicyKey, RealPolicy>,
    pub interfaces: BTreeMap<InterfaceKey, RealInterface>,
    pub orphans: Orphans,
    #[serde(default)]
    pub acls: BTreeMap<AclKey, RealAcl>,
}

impl Realized {
    pub fn is_empty(&self) -> bool {
        *self == Realized::default()
    }

    /// Ipsets some realized rule refers to.
    pub fn referenced_ipsets(&self) -> BTreeSet<IpSetId> {
        let mut out = BTreeSet::new();
        for r in self.rules.values() {
            for e in &r.rule.entries {
                if let npol::EntryData::IpSet(s) | npol::EntryData::PortIpSet(s) = &e.data {
                    out.insert(*s);
                }
            }
        }
        out
    }

    /// Rules some realized policy refers to.
    pub fn referenced_rules(&self) -> BTreeSet<RuleId> {
        self.policies
            .values()
            .flat_map(|p| p.policy.inbound.iter().chain(&p.policy.outbound))
            .copied()
            .collect()
    }

    /// ACLs some realized interface (bound or orphaned) carries.
    pub fn referenced_acls(&self) -> BTreeSet<AclIndex> {
        self.interfaces
            .values()
            .chain(self.orphans.interfaces.values())
            .filter_map(|i| i.guard.as_ref())
            .flat_map(|g| [g.input, g.output])
            .collect()
    }

    /// Policies some realized interface configuration refers to.
    pub fn referenced_policies(&self) -> BTreeSet<PolicyId> {
        self.interfaces
            .values()
            .chain(self.orphans.interfaces.values())
            .filter_map(|i| i.config.as_ref())
            .flat_map(|c| {
                c.rx_policies
                    .iter()
                    .chain(&c.tx_policies)
                    .chain(&c.profiles)
            })
            .copied()
            .collect()
    }
}

/// The state file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedState {
    pub version: u32,
    /// The VPP run these objects live in; another run means they are gone.
    pub vpp: VppIdentity,
    pub realized: Realized,
}

pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum StateError {
    #[error("state file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path}: not valid JSON state: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("state file {path}: version {found}, expected {STATE_VERSION}")]
    Version { path: PathBuf, found: u32 },
}

/// Where the state file lives: `<dir>/reconciler-state.json`.
#[derive(Debug, Clone)]
pub struct StateStore {
    path: PathBuf,
}

impl StateStore {
    pub const FILE_NAME: &'static str = "reconciler-state.json";

    pub fn in_dir(dir: &Path) -> Self {
        StateStore {
            path: dir.join(Self::FILE_NAME),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `Ok(None)` when there is no file yet (first start on this node).
    pub fn load(&self) -> Result<Option<PersistedState>, StateError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StateError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let state: PersistedState =
            serde_json::from_slice(&bytes).map_err(|source| StateError::Parse {
                path: self.path.clone(),
                source,
            })?;
        if state.version != STATE_VERSION {
            return Err(StateError::Version {
                path: self.path.clone(),
                found: state.version,
            });
        }
        Ok(Some(state))
    }

    /// Writes a temporary file and renames it over the old one, so that a crash of the driver
    /// leaves either the old or the new state, never half of one.
    ///
    /// No fsync, on purpose: the file only matters while the VPP run it describes is alive,
    /// and a crash that loses the page cache (the node's kernel) takes that VPP run with it.
    pub fn save(&self, vpp: &VppIdentity, realized: &Realized) -> Result<(), StateError> {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            version: u32,
            vpp: &'a VppIdentity,
            realized: &'a Realized,
        }
        let io = |source| StateError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let f = std::fs::File::create(&tmp).map_err(io)?;
        let mut w = std::io::BufWriter::new(f);
        let state = Borrowed {
            version: STATE_VERSION,
            vpp,
            realized,
        };
        serde_json::to_writer(&mut w, &state).map_err(|source| StateError::Parse {
            path: tmp.clone(),
            source,
        })?;
        w.flush().map_err(io)?;
        drop(w);
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        Ok(())
    }
}
