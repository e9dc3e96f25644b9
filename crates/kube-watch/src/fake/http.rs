//! The fake API server's HTTP face: the list and watch requests kube-runtime's watcher sends,
//! answered as the real API server answers them.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::stream;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{header, Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::store::{Resource, Store};

pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// What a real API server does without `timeoutSeconds` (it picks 30 to 60 minutes).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

pub(crate) fn handle<B>(store: &Arc<Mutex<Store>>, req: &Request<B>) -> Response<Body> {
    let Some((resource, namespace)) = route(req.uri().path()) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        );
    };
    if req.method() != Method::GET {
        return status(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the fake API server only reads",
        );
    }
    let query = Query::parse(req.uri().query().unwrap_or(""));
    let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
    if !query.watch {
        return json_response(&store.list(resource, namespace.as_deref()));
    }
    let from = match query.resource_version.as_deref() {
        None | Some("" | "0") => None,
        Some(rv) => match rv.parse::<u64>() {
            Ok(rv) => Some(rv),
            Err(_) => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    &format!("invalid resourceVersion {rv:?}"),
                );
            }
        },
    };
    let (tx, rx) = mpsc::unbounded_channel();
    store.watch(resource, namespace, from, query.bookmarks, tx);
    let deadline = Instant::now() + query.timeout.unwrap_or(DEFAULT_WATCH_TIMEOUT);
    let events = stream::unfold((rx, deadline), |(mut rx, deadline)| async move {
        tokio::select! {
            line = rx.recv() => line.map(|line| (Ok(Frame::data(line)), (rx, deadline))),
            () = tokio::time::sleep_until(deadline) => None,
        }
    });
    response(StatusCode::OK, StreamBody::new(events).boxed())
}

/// `(resource, namespace)` of a collection path.
fn route(path: &str) -> Option<(Resource, Option<String>)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api", "v1", "services"] => Some((Resource::Services, None)),
        ["api", "v1", "namespaces", ns, "services"] => {
            Some((Resource::Services, Some((*ns).to_owned())))
        }
        ["apis", "discovery.k8s.io", "v1", "endpointslices"] => {
            Some((Resource::EndpointSlices, None))
        }
        ["apis", "discovery.k8s.io", "v1", "namespaces", ns, "endpointslices"] => {
            Some((Resource::EndpointSlices, Some((*ns).to_owned())))
        }
        _ => None,
    }
}

/// The query parameters that matter here; selectors, `limit` and `continue` are accepted and
/// ignored (every list is complete in one page).
#[derive(Debug, Default)]
struct Query {
    watch: bool,
    resource_version: Option<String>,
    bookmarks: bool,
    timeout: Option<Duration>,
}

impl Query {
    fn parse(query: &str) -> Self {
        let mut parsed = Query::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "watch" => parsed.watch = value == "1" || value == "true",
                "resourceVersion" => parsed.resource_version = Some(value.to_owned()),
                "allowWatchBookmarks" => parsed.bookmarks = value == "true",
                "timeoutSeconds" => parsed.timeout = value.parse().ok().map(Duration::from_secs),
                _ => {}
            }
        }
        parsed
    }
}

fn json_response(value: &Value) -> Response<Body> {
    response(
        StatusCode::OK,
        Full::new(Bytes::from(value.to_string())).boxed(),
    )
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    let mut resp = json_response(&body);
    *resp.status_mut() = code;
    resp
}

fn response(code: StatusCode, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_cluster_wide_and_namespaced_collections() {
        assert_eq!(route("/api/v1/services"), Some((Resource::Services, None)));
        assert_eq!(
            route("/api/v1/namespaces/web/services"),
            Some((Resource::Services, Some("web".into())))
        );
        assert_eq!(
            route("/apis/discovery.k8s.io/v1/endpointslices"),
            Some((Resource::EndpointSlices, None))
        );
        assert_eq!(
            route("/apis/discovery.k8s.io/v1/namespaces/web/endpointslices"),
            Some((Resource::EndpointSlices, Some("web".into())))
        );
        assert_eq!(route("/api/v1/pods"), None);
        assert_eq!(route("/api/v1/namespaces/web/services/front"), None);
    }

    #[test]
    fn query_understands_what_kube_runtime_sends() {
        let q = Query::parse(
            "watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion=42",
        );
        assert!(q.watch && q.bookmarks);
        assert_eq!(q.resource_version.as_deref(), Some("42"));
        assert_eq!(q.timeout, Some(Duration::from_secs(290)));

        let q = Query::parse("watch=1&resourceVersion=7");
        assert!(q.watch && !q.bookmarks);

        let q = Query::parse("limit=500&labelSelector=a%3Db&continue=");
        assert!(!q.watch);
        assert_eq!(q.resource_version, None);
        assert_eq!(q.timeout, None);
    }
}
