use std::collections::BTreeMap;

use super::*;

fn slice(address_type: &str, endpoints: Vec<Endpoint>, ports: Vec<EndpointPort>) -> EndpointSlice {
    EndpointSlice {
        address_type: address_type.into(),
        endpoints: Some(endpoints),
        metadata: ObjectMeta {
            namespace: Some("web".into()),
            name: Some("front-abc12".into()),
            labels: Some(BTreeMap::from([
                (SERVICE_NAME_LABEL.into(), "front".into()),
                (
                    "endpointslice.kubernetes.io/managed-by".into(),
                    "endpointslice-controller.k8s.io".into(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        ports: Some(ports),
    }
}

fn endpoint(addresses: &[&str], conditions: Option<EndpointConditions>) -> Endpoint {
    Endpoint {
        addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
        conditions,
        ..Endpoint::default()
    }
}

fn conditions(
    ready: Option<bool>,
    serving: Option<bool>,
    terminating: Option<bool>,
) -> Option<EndpointConditions> {
    Some(EndpointConditions {
        ready,
        serving,
        terminating,
    })
}

fn convert(s: EndpointSlice) -> KubeEndpointSlice {
    convert_slice(s).expect("a labelled IP slice converts").1
}

#[test]
fn ipv4_slice_converts_every_field() {
    let mut ep = endpoint(
        &["10.0.1.5"],
        conditions(Some(true), Some(true), Some(false)),
    );
    ep.node_name = Some("node-a".into());
    ep.hostname = Some("pod-0".into());
    ep.zone = Some("z1".into());
    let (key, got) = convert_slice(slice(
        "IPv4",
        vec![ep],
        vec![EndpointPort {
            name: Some("http".into()),
            protocol: Some("TCP".into()),
            port: Some(8080),
            app_protocol: Some("http".into()),
        }],
    ))
    .expect("converts");
    assert_eq!(
        key,
        SliceKey {
            namespace: "web".into(),
            name: "front-abc12".into()
        }
    );
    assert_eq!(
        got,
        KubeEndpointSlice {
            service: "front".into(),
            ports: vec![SlicePort {
                name: "http".into(),
                protocol: L4Proto::Tcp,
                port: 8080
            }],
            endpoints: vec![SliceEndpoint {
                addresses: vec!["10.0.1.5".parse().expect("ip")],
                ready: true,
                serving: true,
                terminating: false,
                node_name: Some("node-a".into()),
            }],
        }
    );
}

#[test]
fn ipv6_slice_converts() {
    let got = convert(slice("IPv6", vec![endpoint(&["fd00::5"], None)], vec![]));
    assert_eq!(
        got.endpoints[0].addresses,
        vec!["fd00::5".parse::<IpAddr>().expect("ip")]
    );
}

#[test]
fn unset_conditions_mean_ready_serving_not_terminating() {
    let got = convert(slice("IPv4", vec![endpoint(&["10.0.1.5"], None)], vec![]));
    let ep = &got.endpoints[0];
    assert!(ep.ready && ep.serving && !ep.terminating);
    assert_eq!(ep.node_name, None);

    let got = convert(slice(
        "IPv4",
        vec![endpoint(&["10.0.1.5"], conditions(None, None, None))],
        vec![],
    ));
    let ep = &got.endpoints[0];
    assert!(ep.ready && ep.serving && !ep.terminating);
}

#[test]
fn unset_serving_follows_ready() {
    let got = convert(slice(
        "IPv4",
        vec![endpoint(&["10.0.1.5"], conditions(Some(false), None, None))],
        vec![],
    ));
    let ep = &got.endpoints[0];
    assert!(!ep.ready && !ep.serving && !ep.terminating);
}

#[test]
fn terminating_endpoint_may_still_serve() {
    let got = convert(slice(
        "IPv4",
        vec![endpoint(
            &["10.0.1.5"],
            conditions(Some(false), Some(true), Some(true)),
        )],
        vec![],
    ));
    let ep = &got.endpoints[0];
    assert!(!ep.ready && ep.serving && ep.terminating);
}

#[test]
fn bad_addresses_are_dropped_and_the_endpoint_kept() {
    let got = convert(slice(
        "IPv4",
        vec![endpoint(&["10.0.1.300", "10.0.1.6", "pod.example"], None)],
        vec![],
    ));
    assert_eq!(got.endpoints.len(), 1);
    assert_eq!(
        got.endpoints[0].addresses,
        vec!["10.0.1.6".parse::<IpAddr>().expect("ip")]
    );
}

#[test]
fn port_name_defaults_to_empty_and_protocol_to_tcp() {
    let got = convert(slice(
        "IPv4",
        vec![],
        vec![EndpointPort {
            port: Some(80),
            ..EndpointPort::default()
        }],
    ));
    assert_eq!(
        got.ports,
        vec![SlicePort {
            name: String::new(),
            protocol: L4Proto::Tcp,
            port: 80
        }]
    );
}

#[test]
fn ports_without_number_out_of_range_or_of_unknown_protocol_are_skipped() {
    let port = |name: &str, protocol: Option<&str>, port: Option<i32>| EndpointPort {
        name: Some(name.into()),
        protocol: protocol.map(Into::into),
        port,
        app_protocol: None,
    };
    let got = convert(slice(
        "IPv4",
        vec![],
        vec![
            port("all", None, None),
            port("big", None, Some(70000)),
            port("zero", None, Some(0)),
            port("quic", Some("QUIC"), Some(443)),
            port("dns", Some("UDP"), Some(53)),
            port("sig", Some("SCTP"), Some(3868)),
        ],
    ));
    let kept: Vec<_> = got
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.protocol, p.port))
        .collect();
    assert_eq!(
        kept,
        [("dns", L4Proto::Udp, 53), ("sig", L4Proto::Sctp, 3868)]
    );
}

#[test]
fn slice_without_service_label_is_ignored() {
    let mut s = slice("IPv4", vec![endpoint(&["10.0.1.5"], None)], vec![]);
    s.metadata.labels = None;
    assert_eq!(convert_slice(s), Err(Ignored::NoServiceLabel));

    let mut s = slice("IPv4", vec![], vec![]);
    s.metadata.labels = Some(BTreeMap::from([(SERVICE_NAME_LABEL.into(), String::new())]));
    assert_eq!(convert_slice(s), Err(Ignored::NoServiceLabel));
}

#[test]
fn fqdn_slices_are_ignored() {
    let s = slice("FQDN", vec![endpoint(&["db.example.com"], None)], vec![]);
    assert_eq!(convert_slice(s), Err(Ignored::NotIp("FQDN".into())));
}

#[test]
fn slice_without_name_is_ignored() {
    let mut s = slice("IPv4", vec![], vec![]);
    s.metadata.name = None;
    assert_eq!(convert_slice(s), Err(Ignored::NoName));
}
