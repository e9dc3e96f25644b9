//! The fake API server's storage: objects, one global resourceVersion (as etcd's revision),
//! each resource's change history (what a watch from an older version replays), and the open
//! watches to notify.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    Services,
    EndpointSlices,
}

impl Resource {
    const ALL: [Resource; 2] = [Resource::Services, Resource::EndpointSlices];

    fn api_version(self) -> &'static str {
        match self {
            Resource::Services => "v1",
            Resource::EndpointSlices => "discovery.k8s.io/v1",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Resource::Services => "Service",
            Resource::EndpointSlices => "EndpointSlice",
        }
    }

    fn index(self) -> usize {
        match self {
            Resource::Services => 0,
            Resource::EndpointSlices => 1,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Store {
    resource_version: u64,
    /// A watch from a resourceVersion older than this is answered 410 Gone.
    oldest: u64,
    kinds: [Kind; 2],
}

#[derive(Debug, Default)]
struct Kind {
    /// By (namespace, name); each carries its current `metadata.resourceVersion`.
    objects: BTreeMap<(String, String), Value>,
    history: Vec<Change>,
    watches: Vec<Watch>,
}

#[derive(Debug)]
struct Change {
    resource_version: u64,
    namespace: String,
    line: Bytes,
}

#[derive(Debug)]
struct Watch {
    namespace: Option<String>,
    bookmarks: bool,
    tx: UnboundedSender<Bytes>,
}

impl Watch {
    fn sees(&self, namespace: &str) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace)
    }
}

impl Store {
    pub(crate) fn new() -> Self {
        Store {
            resource_version: 1,
            oldest: 1,
            kinds: Default::default(),
        }
    }

    pub(crate) fn resource_version(&self) -> u64 {
        self.resource_version
    }

    /// Creates or replaces an object (a JSON object with `metadata`) and notifies its watches.
    pub(crate) fn apply(
        &mut self,
        resource: Resource,
        namespace: &str,
        name: &str,
        mut object: Value,
    ) -> u64 {
        let rv = self.bump();
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), json!(namespace));
            meta.insert("name".into(), json!(name));
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        let kind = &mut self.kinds[resource.index()];
        let key = (namespace.to_owned(), name.to_owned());
        let event = if kind.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        let line = event_line(event, &object);
        kind.objects.insert(key, object);
        self.record(resource, rv, namespace, line);
        rv
    }

    /// Deletes an object; `None` when there was none.
    pub(crate) fn delete(
        &mut self,
        resource: Resource,
        namespace: &str,
        name: &str,
    ) -> Option<u64> {
        let key = (namespace.to_owned(), name.to_owned());
        let mut object = self.kinds[resource.index()].objects.remove(&key)?;
        let rv = self.bump();
        // The API server reports a deletion at the version that deleted it.
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        self.record(resource, rv, namespace, event_line("DELETED", &object));
        Some(rv)
    }

    /// Forgets all history: a watch from any version seen so far gets 410 Gone. Open watches
    /// are closed, as a restarted API server's would be.
    pub(crate) fn expire_history(&mut self) {
        self.oldest = self.bump();
        for kind in &mut self.kinds {
            kind.history.clear();
        }
        self.close_watches();
    }

    pub(crate) fn close_watches(&mut self) {
        for kind in &mut self.kinds {
            kind.watches.clear();
        }
    }

    /// A `<Kind>List` of everything (no pagination: no `continue`).
    pub(crate) fn list(&self, resource: Resource, namespace: Option<&str>) -> Value {
        let items: Vec<&Value> = self.kinds[resource.index()]
            .objects
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
            .map(|(_, object)| object)
            .collect();
        json!({
            "kind": format!("{}List", resource.kind()),
            "apiVersion": resource.api_version(),
            "metadata": { "resourceVersion": self.resource_version.to_string() },
            "items": items,
        })
    }

    /// Opens a watch: replays what happened after `from` (or, without `from`, everything that
    /// exists, as synthetic ADDED events), then keeps `tx` to notify. A version older than the
    /// kept history gets the API server's answer: one ERROR event with a 410 Status, and the
    /// end of the stream (`tx` is dropped).
    pub(crate) fn watch(
        &mut self,
        resource: Resource,
        namespace: Option<String>,
        from: Option<u64>,
        bookmarks: bool,
        tx: UnboundedSender<Bytes>,
    ) {
        let watch = Watch {
            namespace,
            bookmarks,
            tx,
        };
        let kind = &self.kinds[resource.index()];
        match from {
            Some(from) if from < self.oldest => {
                let status = json!({
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": format!("too old resource version: {from} ({})", self.oldest),
                    "reason": "Expired",
                    "code": 410,
                });
                let _ = watch.tx.send(event_line("ERROR", &status));
                return;
            }
            Some(from) => {
                for change in &kind.history {
                    if change.resource_version > from && watch.sees(&change.namespace) {
                        let _ = watch.tx.send(change.line.clone());
                    }
                }
            }
            None => {
                for ((ns, _), object) in &kind.objects {
                    if watch.sees(ns) {
                        let _ = watch.tx.send(event_line("ADDED", object));
                    }
                }
            }
        }
        self.kinds[resource.index()].watches.push(watch);
    }

    fn bump(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    /// Keeps a change for later watches and sends it to the open ones; every other watch that
    /// asked for bookmarks learns the new version.
    fn record(&mut self, changed: Resource, rv: u64, namespace: &str, line: Bytes) {
        for resource in Resource::ALL {
            let kind = &mut self.kinds[resource.index()];
            kind.watches.retain(|watch| {
                if resource == changed && watch.sees(namespace) {
                    watch.tx.send(line.clone()).is_ok()
                } else if watch.bookmarks {
                    watch.tx.send(bookmark_line(resource, rv)).is_ok()
                } else {
                    !watch.tx.is_closed()
                }
            });
        }
        self.kinds[changed.index()].history.push(Change {
            resource_version: rv,
            namespace: namespace.to_owned(),
            line,
        });
    }
}

fn event_line(event: &str, object: &Value) -> Bytes {
    let mut line = json!({ "type": event, "object": object }).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn bookmark_line(resource: Resource, rv: u64) -> Bytes {
    let object = json!({
        "kind": resource.kind(),
        "apiVersion": resource.api_version(),
        "metadata": { "resourceVersion": rv.to_string() },
    });
    event_line("BOOKMARK", &object)
}
