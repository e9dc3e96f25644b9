//! What we believe VPP holds because we put it there, and its file on disk.
//!
//! npol has no dump, so this record is the only way to find our objects again after a driver
//! restart. It must only ever describe what VPP acknowledged; it never holds desired content.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use calico_compile::{InterfaceKey, IpSetKey};

use super::kinds::{KindRecords, KindTables};
use calico_model::{EndpointId, MacAddr};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tracing::warn;

use crate::dataplane::{AclIndex, IpSetId, PolicyId, RuleId, SwIfIndex, VppIdentity};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealIpSet {
    pub id: IpSetId,
    pub set: npol::IpSet,
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
    pub endpoint: EndpointId,
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
    /// Bindings to interfaces an endpoint no longer uses (its tag moved elsewhere).
    pub interfaces: BTreeMap<SwIfIndex, RealInterface>,
    /// cnat SNAT inclusions (interface, IPv6) the driver made and no record holds any more,
    /// which VPP may still have: cnat keeps an inclusion bit when its interface is deleted,
    /// and the next interface VPP gives that index inherits it. Cleared once an interface
    /// exists at that index again (unless an inclusion is wanted there), or with the SNAT
    /// entry.
    #[serde(default)]
    pub snat_inclusions: BTreeSet<(SwIfIndex, bool)>,
}

/// A table of realized objects that remembers which keys changed since the last
/// [`Realized::take_changes`], so that the state file can be appended to rather than
/// rewritten after every pass. Reads go through `Deref`; every write goes through a method
/// here, so no change can escape the journal.
#[derive(Debug, Clone)]
pub struct Table<K, V> {
    map: BTreeMap<K, V>,
    changed: BTreeSet<K>,
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Table {
            map: BTreeMap::new(),
            changed: BTreeSet::new(),
        }
    }
}

impl<K: PartialEq, V: PartialEq> PartialEq for Table<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<K: Eq, V: Eq> Eq for Table<K, V> {}

impl<K, V> std::ops::Deref for Table<K, V> {
    type Target = BTreeMap<K, V>;
    fn deref(&self) -> &BTreeMap<K, V> {
        &self.map
    }
}

impl<K: Ord + Clone, V> Table<K, V> {
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.changed.insert(key.clone());
        self.map.insert(key, value)
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let old = self.map.remove(key);
        if old.is_some() {
            self.changed.insert(key.clone());
        }
        old
    }

    /// Counts as a change of `key` whether or not the caller then writes.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let v = self.map.get_mut(key)?;
        self.changed.insert(key.clone());
        Some(v)
    }

    pub fn get_or_insert_with(&mut self, key: &K, make: impl FnOnce() -> V) -> &mut V {
        self.changed.insert(key.clone());
        self.map.entry(key.clone()).or_insert_with(make)
    }

    /// The changed keys with their current entries (`None`: removed), forgetting them.
    pub(super) fn take_changed(&mut self) -> Vec<(K, Option<V>)>
    where
        V: Clone,
    {
        std::mem::take(&mut self.changed)
            .into_iter()
            .map(|k| {
                let v = self.map.get(&k).cloned();
                (k, v)
            })
            .collect()
    }

    /// Forgets which keys changed, copying nothing (a whole snapshot is written instead).
    pub(super) fn forget_changed(&mut self) {
        self.changed.clear();
    }

    pub(super) fn apply_changed(&mut self, changes: Vec<(K, Option<V>)>) {
        for (k, v) in changes {
            match v {
                Some(v) => self.map.insert(k, v),
                None => self.map.remove(&k),
            };
        }
    }
}

impl<K: Serialize, V: Serialize> Serialize for Table<K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.map.serialize(s)
    }
}

impl<'de, K: Deserialize<'de> + Ord, V: Deserialize<'de>> Deserialize<'de> for Table<K, V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Table {
            map: BTreeMap::deserialize(d)?,
            changed: BTreeSet::new(),
        })
    }
}

/// Members added to and removed from one realized set since the last journal record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberChange {
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub added: BTreeSet<npol::IpSetMember>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub removed: BTreeSet<npol::IpSetMember>,
}

/// The realized ipsets. Member changes are journaled as deltas, so that one member more in a
/// set of a million costs a line, not the set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IpSetTable {
    table: Table<IpSetKey, RealIpSet>,
    #[serde(skip)]
    members: MemberLog,
}

/// Member deltas not yet journaled; never part of equality or of the file.
#[derive(Debug, Clone, Default)]
struct MemberLog(BTreeMap<IpSetKey, MemberChange>);

impl PartialEq for MemberLog {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for MemberLog {}

impl std::ops::Deref for IpSetTable {
    type Target = Table<IpSetKey, RealIpSet>;
    fn deref(&self) -> &Table<IpSetKey, RealIpSet> {
        &self.table
    }
}

impl std::ops::DerefMut for IpSetTable {
    fn deref_mut(&mut self) -> &mut Table<IpSetKey, RealIpSet> {
        &mut self.table
    }
}

impl IpSetTable {
    /// Records that VPP now holds `members` in the set of `key` as well.
    pub fn add_members(&mut self, key: &IpSetKey, members: &[npol::IpSetMember]) {
        if let Some(have) = self.table.map.get_mut(key) {
            have.set.members.extend(members.iter().copied());
            // Net change since the last record: disjoint sets, so replay order is moot.
            let log = self.members.0.entry(key.clone()).or_default();
            for m in members {
                log.removed.remove(m);
                log.added.insert(*m);
            }
        }
    }

    /// Records that VPP no longer holds `members` in the set of `key`.
    pub fn remove_members(&mut self, key: &IpSetKey, members: &[npol::IpSetMember]) {
        if let Some(have) = self.table.map.get_mut(key) {
            for m in members {
                have.set.members.remove(m);
            }
            let log = self.members.0.entry(key.clone()).or_default();
            for m in members {
                log.added.remove(m);
                log.removed.insert(*m);
            }
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Realized {
    pub ipsets: IpSetTable,
    pub interfaces: Table<InterfaceKey, RealInterface>,
    pub orphans: Orphans,
    /// The generic kinds, each under its own field name.
    #[serde(flatten)]
    pub kinds: KindTables,
}

/// What changed in a [`Realized`] since the previous record: one line of the journal.
/// Entries are the values at the time the record was taken (`None`: removed); member deltas
/// are only for sets whose entry is not in `ipsets`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalRecord {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipsets: Vec<(IpSetKey, Option<RealIpSet>)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<(IpSetKey, MemberChange)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<(InterfaceKey, Option<RealInterface>)>,
    #[serde(flatten)]
    pub kinds: KindRecords,
    /// The whole orphan record, when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphans: Option<Orphans>,
}

impl JournalRecord {
    pub fn is_empty(&self) -> bool {
        self.ipsets.is_empty()
            && self.members.is_empty()
            && self.interfaces.is_empty()
            && self.kinds.is_empty()
            && self.orphans.is_none()
    }
}

impl Realized {
    pub fn is_empty(&self) -> bool {
        *self == Realized::default()
    }

    /// Everything changed since the last call, as one journal record. `orphans_written` is
    /// the orphan record as last journaled (updated here).
    pub fn take_changes(&mut self, orphans_written: &mut Orphans) -> JournalRecord {
        let ipsets = self.ipsets.table.take_changed();
        let whole: BTreeSet<&IpSetKey> = ipsets.iter().map(|(k, _)| k).collect();
        let members = std::mem::take(&mut self.ipsets.members.0)
            .into_iter()
            .filter(|(k, c)| !whole.contains(k) && (!c.added.is_empty() || !c.removed.is_empty()))
            .collect();
        let orphans = (self.orphans != *orphans_written).then(|| {
            *orphans_written = self.orphans.clone();
            self.orphans.clone()
        });
        JournalRecord {
            ipsets,
            members,
            interfaces: self.interfaces.take_changed(),
            kinds: self.kinds.take_changes(),
            orphans,
        }
    }

    /// Forgets everything changed since the last call, as [`Realized::take_changes`] does but
    /// without building the record: for when a whole snapshot is written anyway (the first
    /// sync of a million IP set members would otherwise be copied once more only to be
    /// dropped).
    pub fn forget_changes(&mut self, orphans_written: &mut Orphans) {
        self.ipsets.table.forget_changed();
        self.ipsets.members.0.clear();
        if self.orphans != *orphans_written {
            *orphans_written = self.orphans.clone();
        }
        self.interfaces.forget_changed();
        self.kinds.forget_changes();
    }

    /// Applies a journal record read back from the file.
    pub fn replay(&mut self, rec: JournalRecord) {
        let JournalRecord {
            ipsets,
            members,
            interfaces,
            kinds,
            orphans,
        } = rec;
        self.ipsets.table.apply_changed(ipsets);
        for (k, c) in members {
            if let Some(have) = self.ipsets.table.map.get_mut(&k) {
                have.set.members.extend(c.added);
                for m in &c.removed {
                    have.set.members.remove(m);
                }
            }
        }
        self.interfaces.apply_changed(interfaces);
        self.kinds.replay(kinds);
        if let Some(o) = orphans {
            self.orphans = o;
        }
    }

    /// Ipsets some realized rule refers to.
    pub fn referenced_ipsets(&self) -> BTreeSet<IpSetId> {
        let mut out = BTreeSet::new();
        for r in self.kinds.rules.values() {
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
        self.kinds
            .policies
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
    /// Which journal belongs to this snapshot (files from before the journal have none).
    #[serde(default)]
    pub generation: u64,
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
    /// Serialising or writing the state failed (the file on disk is untouched: snapshots
    /// are written to a temporary file and renamed).
    #[error("state file {path}: writing failed: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("state file {path}: version {found}, expected {STATE_VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("state journal {path}: line {line} is damaged: {source}")]
    Journal {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// The first line of a journal: the snapshot generation it continues.
#[derive(Debug, Serialize, Deserialize)]
struct JournalHeader {
    generation: u64,
}

/// Where the state lives: a snapshot `<dir>/reconciler-state.json` and a journal
/// `<dir>/reconciler-state.journal` of what changed since, one JSON record a line.
///
/// A pass that changed a little appends a line (a member delta costs bytes, not the set); the
/// snapshot is rewritten when the journal outgrows it. The journal names the snapshot
/// generation it continues, so a crash between writing a new snapshot and starting its
/// journal cannot replay old records over the new snapshot.
///
/// No fsync, on purpose: the files only matter while the VPP run they describe is alive, and
/// a crash that loses the page cache (the node's kernel) takes that VPP run with it.
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    journal: PathBuf,
    generation: u64,
    snapshot_bytes: u64,
    journal_bytes: u64,
    append: Option<std::fs::File>,
}

impl StateStore {
    pub const FILE_NAME: &'static str = "reconciler-state.json";
    pub const JOURNAL_NAME: &'static str = "reconciler-state.journal";
    /// The journal may grow to this, or to twice the snapshot, before a new snapshot.
    const MIN_JOURNAL_LIMIT: u64 = 4 << 20;

    pub fn in_dir(dir: &Path) -> Self {
        StateStore {
            path: dir.join(Self::FILE_NAME),
            journal: dir.join(Self::JOURNAL_NAME),
            generation: 0,
            snapshot_bytes: 0,
            journal_bytes: 0,
            append: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, path: &Path) -> impl Fn(std::io::Error) -> StateError {
        let path = path.to_path_buf();
        move |source| StateError::Io {
            path: path.clone(),
            source,
        }
    }

    /// The snapshot with its journal replayed; `Ok(None)` when there is no snapshot yet
    /// (first start on this node).
    pub fn load(&self) -> Result<Option<PersistedState>, StateError> {
        Ok(self.read()?.map(|(state, _, _)| state))
    }

    /// Like [`load`](Self::load), and continues this store from what it read: later records
    /// are appended to the same journal.
    pub fn open(&mut self) -> Result<Option<PersistedState>, StateError> {
        let Some((state, snapshot_bytes, journal_bytes)) = self.read()? else {
            return Ok(None);
        };
        self.generation = state.generation;
        self.snapshot_bytes = snapshot_bytes;
        self.journal_bytes = journal_bytes;
        self.append = None;
        Ok(Some(state))
    }

    fn read(&self) -> Result<Option<(PersistedState, u64, u64)>, StateError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(&self.path)(e)),
        };
        let mut state: PersistedState =
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
        let journal = match std::fs::read(&self.journal) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(self.io(&self.journal)(e)),
        };
        let journal_bytes = self.replay(&journal, &mut state)?;
        Ok(Some((state, bytes.len() as u64, journal_bytes)))
    }

    /// Replays the records of `journal` that continue `state`; returns the bytes that count
    /// (a journal of another generation counts none: it is replaced on the next write).
    fn replay(&self, journal: &[u8], state: &mut PersistedState) -> Result<u64, StateError> {
        let mut lines = journal.split_inclusive(|b| *b == b'\n').enumerate();
        let Some((_, first)) = lines.next() else {
            return Ok(0);
        };
        match serde_json::from_slice::<JournalHeader>(first) {
            Ok(h) if h.generation == state.generation && first.ends_with(b"\n") => {}
            // Another generation's journal (a crash between snapshot and journal), or a
            // header torn by a crash: the snapshot alone is the state.
            _ => return Ok(0),
        }
        let mut good = first.len();
        for (i, line) in lines {
            // Only the last line can be torn (no newline): a crash inside its write. What it
            // recorded is lost to the next run (those objects leak or are sent again).
            if !line.ends_with(b"\n") {
                warn!(path = %self.journal.display(), line = i + 1,
                    "state journal ends in a torn record; ignoring it");
                break;
            }
            let rec = serde_json::from_slice::<JournalRecord>(line).map_err(|source| {
                StateError::Journal {
                    path: self.journal.clone(),
                    line: i + 1,
                    source,
                }
            })?;
            state.realized.replay(rec);
            good += line.len();
        }
        Ok(good as u64)
    }

    /// Writes a new snapshot of everything and starts its (empty) journal. Each file is
    /// written under a temporary name and renamed, so a crash leaves the old or the new one.
    pub fn save(&mut self, vpp: &VppIdentity, realized: &Realized) -> Result<(), StateError> {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            version: u32,
            vpp: &'a VppIdentity,
            realized: &'a Realized,
            generation: u64,
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(self.io(dir))?;
        }
        let generation = self.generation + 1;
        let tmp = self.path.with_extension("json.tmp");
        let f = std::fs::File::create(&tmp).map_err(self.io(&tmp))?;
        let mut w = std::io::BufWriter::new(f);
        let state = Borrowed {
            version: STATE_VERSION,
            vpp,
            realized,
            generation,
        };
        serde_json::to_writer(&mut w, &state).map_err(|source| StateError::Write {
            path: tmp.clone(),
            source,
        })?;
        w.flush().map_err(self.io(&tmp))?;
        let f = w.into_inner().map_err(|e| self.io(&tmp)(e.into_error()))?;
        let snapshot_bytes = f.metadata().map_err(self.io(&tmp))?.len();
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(self.io(&self.path))?;
        self.generation = generation;
        self.snapshot_bytes = snapshot_bytes;
        // From here the old journal no longer matches: start this generation's.
        let mut header = serde_json::to_vec(&JournalHeader { generation }).map_err(|source| {
            StateError::Write {
                path: self.journal.clone(),
                source,
            }
        })?;
        header.push(b'\n');
        let tmp = self.journal.with_extension("journal.tmp");
        std::fs::write(&tmp, &header).map_err(self.io(&tmp))?;
        std::fs::rename(&tmp, &self.journal).map_err(self.io(&self.journal))?;
        self.journal_bytes = header.len() as u64;
        self.append = None;
        Ok(())
    }

    /// Appends `record` to the journal; `Ok(false)` when the journal has grown enough that a
    /// new snapshot should be written instead (nothing is written then).
    pub fn append(&mut self, record: &JournalRecord) -> Result<bool, StateError> {
        let mut line = serde_json::to_vec(record).map_err(|source| StateError::Write {
            path: self.journal.clone(),
            source,
        })?;
        line.push(b'\n');
        let limit = Self::MIN_JOURNAL_LIMIT.max(2 * self.snapshot_bytes);
        if self.journal_bytes == 0 || self.journal_bytes + line.len() as u64 > limit {
            return Ok(false);
        }
        if self.append.is_none() {
            let f = std::fs::OpenOptions::new()
                .append(true)
                .open(&self.journal)
                .map_err(self.io(&self.journal))?;
            self.append = Some(f);
        }
        let Some(f) = self.append.as_mut() else {
            return Ok(false);
        };
        // One write call for the line: a crash leaves it whole or torn at the end.
        if let Err(e) = f.write_all(&line) {
            self.append = None;
            return Err(self.io(&self.journal)(e));
        }
        self.journal_bytes += line.len() as u64;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::kinds::npol_objects::RealRule;
    use calico_compile::RuleKey;
    use proptest::prelude::*;

    fn member(i: u8) -> npol::IpSetMember {
        npol::IpSetMember::Ip(IpAddr::from([10, 0, 0, i]))
    }

    fn set(id: u32, members: &[u8]) -> RealIpSet {
        let mut set = npol::IpSet::new(npol::IpSetType::Ip);
        set.members.extend(members.iter().map(|i| member(*i)));
        RealIpSet {
            id: IpSetId(id),
            set,
        }
    }

    fn rule(id: u32) -> RealRule {
        RealRule {
            id: RuleId(id),
            rule: npol::Rule {
                action: npol::RuleAction::Allow,
                filters: [npol::Filter::NONE; 3],
                entries: Vec::new(),
            },
        }
    }

    fn key(s: &str) -> IpSetKey {
        IpSetKey(s.into())
    }

    fn vpp() -> VppIdentity {
        VppIdentity("boot".into())
    }

    /// Saves whatever changed the way the reconciler does: append, or snapshot when refused.
    fn save(store: &mut StateStore, r: &mut Realized, written: &mut Orphans) {
        let rec = r.take_changes(written);
        if rec.is_empty() {
            return;
        }
        if !store.append(&rec).unwrap() {
            store.save(&vpp(), r).unwrap();
        }
    }

    #[test]
    fn member_deltas_are_journaled_as_deltas_and_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StateStore::in_dir(dir.path());
        let mut r = Realized::default();
        let mut written = Orphans::default();
        r.ipsets.insert(key("a"), set(1, &[1, 2, 3]));
        let _ = r.take_changes(&mut written);
        store.save(&vpp(), &r).unwrap();

        r.ipsets.add_members(&key("a"), &[member(4)]);
        r.ipsets.remove_members(&key("a"), &[member(1)]);
        let rec = r.take_changes(&mut written);
        assert!(
            rec.ipsets.is_empty(),
            "a member change must not rewrite the set"
        );
        assert_eq!(rec.members.len(), 1);
        assert!(store.append(&rec).unwrap());

        r.kinds.rules.insert(RuleKey("r".into()), rule(7));
        r.orphans.ipsets.insert(IpSetId(9));
        save(&mut store, &mut r, &mut written);
        assert_eq!(store.load().unwrap().unwrap().realized, r);

        r.kinds.rules.remove(&RuleKey("r".into()));
        r.orphans.ipsets.clear();
        save(&mut store, &mut r, &mut written);
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded.realized, r);
        assert_eq!(loaded.generation, 1);
    }

    #[test]
    fn forgetting_changes_leaves_nothing_for_the_journal_and_notes_the_orphans() {
        let mut r = Realized::default();
        let mut written = Orphans::default();
        r.ipsets.insert(key("a"), set(1, &[1, 2]));
        let _ = r.take_changes(&mut written);
        r.ipsets.add_members(&key("a"), &[member(3)]);
        r.ipsets.insert(key("b"), set(2, &[1]));
        r.kinds.rules.insert(RuleKey("r".into()), rule(7));
        r.orphans.ipsets.insert(IpSetId(9));

        r.forget_changes(&mut written);
        assert_eq!(
            written, r.orphans,
            "a snapshot holds the orphans: noted as written"
        );
        assert!(
            r.take_changes(&mut written).is_empty(),
            "everything forgotten is in the snapshot written instead"
        );
        // What changes afterwards is journaled as before.
        r.ipsets.remove_members(&key("b"), &[member(1)]);
        assert_eq!(r.take_changes(&mut written).members.len(), 1);
    }

    #[test]
    fn a_member_added_back_after_its_removal_is_present_after_replay() {
        let mut r = Realized::default();
        let mut written = Orphans::default();
        r.ipsets.insert(key("a"), set(1, &[1]));
        let _ = r.take_changes(&mut written);
        r.ipsets.remove_members(&key("a"), &[member(1)]);
        r.ipsets.add_members(&key("a"), &[member(1)]);
        let rec = r.take_changes(&mut written);
        let mut copy = r.clone();
        copy.ipsets.remove_members(&key("a"), &[member(1)]);
        copy.replay(rec);
        assert_eq!(copy, r);
    }

    #[test]
    fn a_torn_last_record_is_ignored_and_a_damaged_middle_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StateStore::in_dir(dir.path());
        let mut r = Realized::default();
        let mut written = Orphans::default();
        store.save(&vpp(), &r).unwrap();
        r.kinds.rules.insert(RuleKey("r".into()), rule(1));
        save(&mut store, &mut r, &mut written);
        let journal = dir.path().join(StateStore::JOURNAL_NAME);
        let good = std::fs::read(&journal).unwrap();

        let mut torn = good.clone();
        torn.extend_from_slice(b"{\"rules\":[[\"x\",nu");
        std::fs::write(&journal, &torn).unwrap();
        assert_eq!(store.load().unwrap().unwrap().realized, r);

        let mut damaged = good.clone();
        damaged.extend_from_slice(b"{oops}\n");
        damaged.extend_from_slice(&good[good.iter().position(|b| *b == b'\n').unwrap() + 1..]);
        std::fs::write(&journal, &damaged).unwrap();
        assert!(matches!(
            store.load(),
            Err(StateError::Journal { line: 3, .. })
        ));
    }

    #[test]
    fn a_journal_of_an_older_snapshot_is_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StateStore::in_dir(dir.path());
        let mut r = Realized::default();
        let mut written = Orphans::default();
        store.save(&vpp(), &r).unwrap();
        r.kinds.rules.insert(RuleKey("r".into()), rule(1));
        save(&mut store, &mut r, &mut written);
        let journal = dir.path().join(StateStore::JOURNAL_NAME);
        let old_journal = std::fs::read(&journal).unwrap();
        // A new snapshot without the rule, then a crash before its journal replaced the old.
        r.kinds.rules.remove(&RuleKey("r".into()));
        let _ = r.take_changes(&mut written);
        store.save(&vpp(), &r).unwrap();
        std::fs::write(&journal, &old_journal).unwrap();
        let loaded = store.load().unwrap().unwrap();
        assert!(loaded.realized.kinds.rules.is_empty());
        assert_eq!(loaded.generation, 2);
    }

    #[test]
    fn an_outgrown_journal_asks_for_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = StateStore::in_dir(dir.path());
        let mut r = Realized::default();
        let mut written = Orphans::default();
        store.save(&vpp(), &r).unwrap();
        let mut snapshots = 0;
        for i in 0..30_000u32 {
            r.kinds
                .rules
                .insert(RuleKey(format!("r{}", i % 50)), rule(i));
            let rec = r.take_changes(&mut written);
            if !store.append(&rec).unwrap() {
                store.save(&vpp(), &r).unwrap();
                snapshots += 1;
            }
        }
        assert!(snapshots >= 1, "the journal never asked for a snapshot");
        assert!(
            std::fs::metadata(dir.path().join(StateStore::JOURNAL_NAME))
                .unwrap()
                .len()
                <= StateStore::MIN_JOURNAL_LIMIT
        );
        assert_eq!(store.load().unwrap().unwrap().realized, r);
    }

    /// One change to a realized record.
    #[derive(Debug, Clone)]
    enum Change {
        CreateSet(u8, Vec<u8>),
        AddMembers(u8, Vec<u8>),
        RemoveMembers(u8, Vec<u8>),
        DropSet(u8),
        Rule(u8, u32),
        DropRule(u8),
        Orphan(u32),
        ClearOrphans,
        Save,
        Snapshot,
    }

    fn change() -> impl Strategy<Value = Change> {
        let members = || proptest::collection::vec(0u8..8, 0..4);
        prop_oneof![
            (0u8..4, members()).prop_map(|(k, m)| Change::CreateSet(k, m)),
            (0u8..4, members()).prop_map(|(k, m)| Change::AddMembers(k, m)),
            (0u8..4, members()).prop_map(|(k, m)| Change::RemoveMembers(k, m)),
            (0u8..4).prop_map(Change::DropSet),
            (0u8..4, 0u32..100).prop_map(|(k, id)| Change::Rule(k, id)),
            (0u8..4).prop_map(Change::DropRule),
            (0u32..5).prop_map(Change::Orphan),
            Just(Change::ClearOrphans),
            Just(Change::Save),
            Just(Change::Save),
            Just(Change::Snapshot),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Whatever happens between saves, the file read back equals the record in memory.
        #[test]
        fn the_state_file_always_reads_back_as_the_record(changes in proptest::collection::vec(change(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let mut store = StateStore::in_dir(dir.path());
            let mut r = Realized::default();
            let mut written = Orphans::default();
            store.save(&vpp(), &r).unwrap();
            for c in changes {
                match c {
                    Change::CreateSet(k, m) => {
                        let ms: Vec<u8> = m;
                        r.ipsets.insert(key(&k.to_string()), set(u32::from(k), &ms));
                    }
                    Change::AddMembers(k, m) => {
                        let ms: Vec<_> = m.into_iter().map(member).collect();
                        r.ipsets.add_members(&key(&k.to_string()), &ms);
                    }
                    Change::RemoveMembers(k, m) => {
                        let ms: Vec<_> = m.into_iter().map(member).collect();
                        r.ipsets.remove_members(&key(&k.to_string()), &ms);
                    }
                    Change::DropSet(k) => {
                        r.ipsets.remove(&key(&k.to_string()));
                    }
                    Change::Rule(k, id) => {
                        r.kinds.rules.insert(RuleKey(k.to_string()), rule(id));
                    }
                    Change::DropRule(k) => {
                        r.kinds.rules.remove(&RuleKey(k.to_string()));
                    }
                    Change::Orphan(id) => {
                        r.orphans.ipsets.insert(IpSetId(id));
                    }
                    Change::ClearOrphans => r.orphans = Orphans::default(),
                    Change::Save => save(&mut store, &mut r, &mut written),
                    Change::Snapshot => {
                        let _ = r.take_changes(&mut written);
                        store.save(&vpp(), &r).unwrap();
                    }
                }
            }
            save(&mut store, &mut r, &mut written);
            prop_assert_eq!(store.load().unwrap().unwrap().realized, r.clone());
            // And a store continuing from the files keeps appending correctly.
            let mut again = StateStore::in_dir(dir.path());
            let mut loaded = again.open().unwrap().unwrap().realized;
            let mut w2 = loaded.orphans.clone();
            loaded.kinds.rules.insert(RuleKey("late".into()), rule(1));
            save(&mut again, &mut loaded, &mut w2);
            prop_assert_eq!(again.load().unwrap().unwrap().realized, loaded);
        }
    }
}
