//! The agent's side of pod wiring: the checks a new pod must pass against the node's pods and
//! Felix's pools, the names held while an `Add` is under way, and the record of pods kept on
//! disk. Runs on the model task: plain data, no I/O but the pods file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use calico_model::{Changes, Model, PodInterface, PodKey, Pods};
use tokio::sync::oneshot;
use tracing::{info, warn};

/// What the CNI server asks the agent.
#[derive(Debug)]
pub enum PodRequest {
    /// Check a new pod against the node's pods and Felix's pools, and hold its names while
    /// its Linux side is built.
    Reserve(Box<PodInterface>),
    /// The Linux side is built: program VPP's side.
    Commit(Box<PodInterface>),
    /// Forget the pod at this key (a `Del`, or an `Add` that failed part-way).
    Remove(PodKey),
    /// Every pod of the node.
    List,
}

/// The agent's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodAnswer {
    /// Names held: build it.
    Reserved,
    /// The same pod is wired already (a repeated `Add`): its record.
    Existing(Box<PodInterface>),
    Committed,
    /// The pod that was removed, if there was one.
    Removed(Option<Box<PodInterface>>),
    Pods(Vec<PodInterface>),
    /// It cannot be wired: why, for the CNI reply.
    Refused(String),
}

/// A question and where its answer goes.
#[derive(Debug)]
pub struct PodQuery {
    pub request: PodRequest,
    pub reply: oneshot::Sender<PodAnswer>,
}

#[derive(Debug, thiserror::Error)]
pub enum PodStoreError {
    #[error("reading the pods file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the pods file {path} does not parse: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("writing the pods file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The pods of this node on disk (`pods.json` in the state directory), so that a restarted
/// driver knows them and adopts their VPP side without a write.
#[derive(Debug, Clone)]
pub struct PodStore {
    path: PathBuf,
}

impl PodStore {
    pub fn in_dir(dir: &Path) -> PodStore {
        PodStore {
            path: dir.join("pods.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pods recorded; none when there is no file.
    pub fn load(&self) -> Result<Pods, PodStoreError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Pods::new()),
            Err(source) => {
                return Err(PodStoreError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let list: Vec<PodInterface> =
            serde_json::from_str(&text).map_err(|source| PodStoreError::Parse {
                path: self.path.clone(),
                source,
            })?;
        Ok(list
            .into_iter()
            .map(|p| (p.host_ifname.clone(), p))
            .collect())
    }

    /// Replaces the file (written aside, then renamed: never half-written).
    pub fn save(&self, pods: &Pods) -> Result<(), PodStoreError> {
        let write = |source| PodStoreError::Write {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let list: Vec<&PodInterface> = pods.values().collect();
        let text = serde_json::to_vec_pretty(&list).map_err(|e| write(std::io::Error::other(e)))?;
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(write)?;
        std::fs::rename(&tmp, &self.path).map_err(write)
    }
}

/// The agent's pod state beside the model: names held by `Add`s under way, and the store.
#[derive(Debug, Default)]
pub struct PodBook {
    /// Host interface name → the pod whose `Add` holds it.
    reserved: BTreeMap<String, PodKey>,
    store: Option<PodStore>,
}

impl PodBook {
    pub fn new(store: Option<PodStore>) -> PodBook {
        PodBook {
            reserved: BTreeMap::new(),
            store,
        }
    }

    /// The pods recorded on disk (none without a store; a bad file is logged and ignored,
    /// so the driver starts, and their interfaces stay unknown to it).
    pub fn load(&self) -> Pods {
        let Some(store) = &self.store else {
            return Pods::new();
        };
        match store.load() {
            Ok(pods) => {
                if !pods.is_empty() {
                    info!(path = %store.path().display(), pods = pods.len(), "pods adopted from the pods file");
                }
                pods
            }
            Err(e) => {
                warn!(error = %e, "ignoring the pods file");
                Pods::new()
            }
        }
    }

    /// Answers one request, recording in `changes` the pods it changed.
    pub fn answer(
        &mut self,
        request: PodRequest,
        model: &mut Model,
        changes: &mut Changes,
    ) -> PodAnswer {
        match request {
            PodRequest::Reserve(pod) => match self.check(&pod, model) {
                Ok(Some(existing)) => PodAnswer::Existing(Box::new(existing)),
                Ok(None) => {
                    self.reserved
                        .insert(pod.host_ifname.clone(), pod.key.clone());
                    PodAnswer::Reserved
                }
                Err(why) => PodAnswer::Refused(why),
            },
            PodRequest::Commit(pod) => {
                if self.reserved.get(&pod.host_ifname) != Some(&pod.key) {
                    return PodAnswer::Refused(format!(
                        "interface {} was not reserved for {}",
                        pod.host_ifname, pod.key
                    ));
                }
                self.reserved.remove(&pod.host_ifname);
                info!(pod = %pod.workload, interface = %pod.host_ifname, backend = %pod.backend,
                    addresses = ?pod.addrs, "pod interface added");
                changes.pods.insert(pod.host_ifname.clone());
                model.pods.insert(pod.host_ifname.clone(), *pod);
                self.save(&model.pods);
                PodAnswer::Committed
            }
            PodRequest::Remove(key) => {
                self.reserved.retain(|_, k| *k != key);
                let name = model
                    .pods
                    .iter()
                    .find(|(_, p)| p.key == key)
                    .map(|(n, _)| n.clone());
                let removed = name.and_then(|n| {
                    changes.pods.insert(n.clone());
                    model.pods.remove(&n)
                });
                if let Some(p) = &removed {
                    info!(pod = %p.workload, interface = %p.host_ifname, "pod interface removed");
                    self.save(&model.pods);
                }
                PodAnswer::Removed(removed.map(Box::new))
            }
            PodRequest::List => PodAnswer::Pods(model.pods.values().cloned().collect()),
        }
    }

    /// `Ok(Some(pod))`: wired already, identically. `Ok(None)`: new and fine.
    fn check(&self, pod: &PodInterface, model: &Model) -> Result<Option<PodInterface>, String> {
        if let Some(have) = model.pods.get(&pod.host_ifname) {
            if have.key != pod.key {
                return Err(format!(
                    "host interface {} already belongs to the pod at {} ({})",
                    pod.host_ifname, have.key, have.workload
                ));
            }
            let same = have.addrs == pod.addrs
                && have.routes == pod.routes
                && have.backend == pod.backend
                && have.mtu == pod.mtu;
            return if same {
                Ok(Some(have.clone()))
            } else {
                Err(format!(
                    "{} is wired already with other settings; delete it first",
                    pod.key
                ))
            };
        }
        if let Some(other) = model.pods.values().find(|p| p.key == pod.key) {
            return Err(format!(
                "{} is wired already as host interface {}",
                pod.key, other.host_ifname
            ));
        }
        if let Some(key) = self.reserved.get(&pod.host_ifname) {
            return Err(if *key == pod.key {
                format!("an Add of {} is already under way", pod.key)
            } else {
                format!(
                    "host interface {} is being wired for the pod at {key}",
                    pod.host_ifname
                )
            });
        }
        if self.reserved.values().any(|k| *k == pod.key) {
            return Err(format!("an Add of {} is already under way", pod.key));
        }
        if !model.in_sync {
            return Err("the driver has not had Felix's IP pools yet; try again".into());
        }
        for a in &pod.addrs {
            if !model
                .ipam_pools
                .values()
                .any(|p| p.cidr.contains(&a.addr()))
            {
                return Err(format!(
                    "address {} is in no IP pool of the cluster",
                    a.addr()
                ));
            }
            if let Some(other) = model.pods.values().find(|p| p.addrs.contains(a)) {
                return Err(format!(
                    "address {} is already used by the pod at {} ({})",
                    a.addr(),
                    other.key,
                    other.workload
                ));
            }
        }
        Ok(None)
    }

    fn save(&self, pods: &Pods) {
        if let Some(store) = &self.store {
            if let Err(e) = store.save(pods) {
                warn!(error = %e, "the pods file is not up to date; a restarted driver will not know every pod");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_model::{vpp_mac_for, IpamPool, MacAddr, PodBackend};

    fn model() -> Model {
        let mut m = Model {
            in_sync: true,
            ..Model::default()
        };
        m.ipam_pools.insert(
            "10.71.0.0-16".into(),
            IpamPool {
                cidr: "10.71.0.0/16".parse().unwrap(),
                masquerade: false,
                ipip_mode: Default::default(),
                vxlan_mode: Default::default(),
                allowed_uses: Vec::new(),
            },
        );
        m
    }

    fn pod(n: u8) -> PodInterface {
        let name = format!("cali000000000{n:02x}");
        PodInterface {
            key: PodKey {
                netns: format!("/var/run/netns/p{n}").into(),
                ifname: "eth0".into(),
            },
            vpp_mac: vpp_mac_for(&name),
            host_ifname: name,
            backend: PodBackend::Veth,
            addrs: vec![format!("10.71.0.{n}/32").parse().unwrap()],
            routes: vec!["0.0.0.0/0".parse().unwrap()],
            mtu: 1450,
            container_mac: None,
            workload: format!("default/p{n}"),
            ip_forwarding: false,
        }
    }

    fn add(book: &mut PodBook, m: &mut Model, p: &PodInterface) -> Changes {
        let mut ch = Changes::default();
        assert_eq!(
            book.answer(PodRequest::Reserve(Box::new(p.clone())), m, &mut ch),
            PodAnswer::Reserved
        );
        let mut done = p.clone();
        done.container_mac = Some(MacAddr([2, 0, 0, 0, 0, 9]));
        assert_eq!(
            book.answer(PodRequest::Commit(Box::new(done)), m, &mut ch),
            PodAnswer::Committed
        );
        ch
    }

    fn refused(a: PodAnswer) -> String {
        match a {
            PodAnswer::Refused(why) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn add_then_repeat_then_del() {
        let (mut book, mut m) = (PodBook::default(), model());
        let ch = add(&mut book, &mut m, &pod(2));
        assert_eq!(ch.pods, ["cali00000000002".to_string()].into());
        // A repeated Add answers the pod as wired, MAC included.
        let mut ch = Changes::default();
        match book.answer(PodRequest::Reserve(Box::new(pod(2))), &mut m, &mut ch) {
            PodAnswer::Existing(p) => {
                assert_eq!(p.container_mac, Some(MacAddr([2, 0, 0, 0, 0, 9])))
            }
            other => panic!("{other:?}"),
        }
        assert!(ch.is_empty(), "a repeated Add changes nothing");
        let removed = book.answer(PodRequest::Remove(pod(2).key), &mut m, &mut ch);
        assert!(matches!(removed, PodAnswer::Removed(Some(_))));
        assert!(m.pods.is_empty());
        assert_eq!(ch.pods, ["cali00000000002".to_string()].into());
        // Del of a pod nobody knows succeeds, changing nothing.
        let mut ch = Changes::default();
        assert_eq!(
            book.answer(PodRequest::Remove(pod(3).key), &mut m, &mut ch),
            PodAnswer::Removed(None)
        );
        assert!(ch.is_empty());
    }

    #[test]
    fn conflicts_and_bad_addresses_are_refused() {
        let (mut book, mut m) = (PodBook::default(), model());
        add(&mut book, &mut m, &pod(2));
        let mut ch = Changes::default();
        // Another pod's host interface name.
        let mut p = pod(3);
        p.host_ifname = pod(2).host_ifname;
        assert!(
            refused(book.answer(PodRequest::Reserve(Box::new(p)), &mut m, &mut ch))
                .contains("already belongs to the pod")
        );
        // The same pod with other settings.
        let mut p = pod(2);
        p.mtu = 9000;
        assert!(
            refused(book.answer(PodRequest::Reserve(Box::new(p)), &mut m, &mut ch))
                .contains("other settings")
        );
        // An address another pod holds.
        let mut p = pod(3);
        p.addrs = pod(2).addrs;
        assert!(
            refused(book.answer(PodRequest::Reserve(Box::new(p)), &mut m, &mut ch))
                .contains("already used")
        );
        // Outside every pool.
        let mut p = pod(3);
        p.addrs = vec!["192.168.7.7/32".parse().unwrap()];
        assert!(
            refused(book.answer(PodRequest::Reserve(Box::new(p)), &mut m, &mut ch))
                .contains("no IP pool")
        );
        // Two Adds of one pod at once.
        assert_eq!(
            book.answer(PodRequest::Reserve(Box::new(pod(4))), &mut m, &mut ch),
            PodAnswer::Reserved
        );
        assert!(
            refused(book.answer(PodRequest::Reserve(Box::new(pod(4))), &mut m, &mut ch))
                .contains("under way")
        );
        // A failed Add releases its names.
        book.answer(PodRequest::Remove(pod(4).key), &mut m, &mut ch);
        assert_eq!(
            book.answer(PodRequest::Reserve(Box::new(pod(4))), &mut m, &mut ch),
            PodAnswer::Reserved
        );
        // Before Felix's pools are known nothing is wired.
        m.in_sync = false;
        assert!(
            refused(book.answer(PodRequest::Reserve(Box::new(pod(5))), &mut m, &mut ch))
                .contains("IP pools")
        );
        assert!(ch.is_empty(), "refusals change nothing");
    }

    #[test]
    fn the_store_keeps_pods_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let (mut book, mut m) = (PodBook::new(Some(PodStore::in_dir(dir.path()))), model());
        add(&mut book, &mut m, &pod(2));
        add(&mut book, &mut m, &pod(3));
        let again = PodBook::new(Some(PodStore::in_dir(dir.path())));
        assert_eq!(again.load(), m.pods);
        let mut ch = Changes::default();
        book.answer(PodRequest::Remove(pod(2).key), &mut m, &mut ch);
        assert_eq!(again.load().len(), 1);
        // A broken file is ignored, not fatal.
        std::fs::write(dir.path().join("pods.json"), "{").unwrap();
        assert!(again.load().is_empty());
    }
}
