use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};

use super::*;

fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(ns.into()),
        name: Some(name.into()),
        ..ObjectMeta::default()
    }
}

fn service(spec: ServiceSpec) -> Service {
    Service {
        metadata: meta("web", "front"),
        spec: Some(spec),
        status: None,
    }
}

fn port(port: i32) -> ServicePort {
    ServicePort {
        port,
        ..ServicePort::default()
    }
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|ip| ip.parse().expect("test IP")).collect()
}

fn convert(svc: Service) -> KubeService {
    convert_service(svc).expect("a named Service converts").1
}

#[test]
fn cluster_ip_service_converts_every_field() {
    let mut svc = service(ServiceSpec {
        type_: Some("ClusterIP".into()),
        cluster_ip: Some("10.96.0.10".into()),
        cluster_ips: Some(vec!["10.96.0.10".into(), "fd00::10".into()]),
        external_ips: Some(vec!["192.0.2.7".into()]),
        external_traffic_policy: Some("Local".into()),
        internal_traffic_policy: Some("Local".into()),
        ports: Some(vec![ServicePort {
            name: Some("http".into()),
            protocol: Some("TCP".into()),
            port: 80,
            target_port: Some(IntOrString::Int(8080)),
            node_port: None,
            app_protocol: Some("http".into()),
        }]),
        ..ServiceSpec::default()
    });
    svc.metadata.annotations = Some(BTreeMap::from([("lb".into(), "maglev".into())]));
    let (key, got) = convert_service(svc).expect("converts");
    assert_eq!(
        key,
        ServiceKey {
            namespace: "web".into(),
            name: "front".into()
        }
    );
    assert_eq!(
        got,
        KubeService {
            kind: ServiceType::ClusterIp,
            cluster_ips: ips(&["10.96.0.10", "fd00::10"]),
            external_ips: ips(&["192.0.2.7"]),
            lb_ips: vec![],
            ports: vec![KubeServicePort {
                name: "http".into(),
                protocol: L4Proto::Tcp,
                port: 80,
                target_port: TargetPort::Number(8080),
                node_port: None,
            }],
            external_local: true,
            internal_local: true,
            headless: false,
            annotations: BTreeMap::from([("lb".into(), "maglev".into())]),
        }
    );
}

#[test]
fn unset_type_is_cluster_ip_and_unset_policies_are_cluster() {
    let got = convert(service(ServiceSpec::default()));
    assert_eq!(got.kind, ServiceType::ClusterIp);
    assert!(!got.external_local && !got.internal_local && !got.headless);
    assert!(got.annotations.is_empty());
}

#[test]
fn service_without_spec_converts_to_an_empty_cluster_ip_service() {
    let got = convert(Service {
        metadata: meta("web", "front"),
        spec: None,
        status: None,
    });
    assert_eq!(got.kind, ServiceType::ClusterIp);
    assert!(got.cluster_ips.is_empty() && got.ports.is_empty());
}

#[test]
fn service_types_map_one_to_one() {
    for (k8s, want) in [
        ("NodePort", ServiceType::NodePort),
        ("LoadBalancer", ServiceType::LoadBalancer),
        ("ExternalName", ServiceType::ExternalName),
        ("Bogus", ServiceType::ClusterIp),
    ] {
        let got = convert(service(ServiceSpec {
            type_: Some(k8s.into()),
            ..ServiceSpec::default()
        }));
        assert_eq!(got.kind, want, "{k8s}");
    }
}

#[test]
fn external_name_service_has_no_addresses() {
    let got = convert(service(ServiceSpec {
        type_: Some("ExternalName".into()),
        external_name: Some("db.example.com".into()),
        ..ServiceSpec::default()
    }));
    assert_eq!(got.kind, ServiceType::ExternalName);
    assert!(got.cluster_ips.is_empty());
}

#[test]
fn cluster_ip_is_the_fallback_for_missing_cluster_ips() {
    let got = convert(service(ServiceSpec {
        cluster_ip: Some("10.96.0.10".into()),
        cluster_ips: None,
        ..ServiceSpec::default()
    }));
    assert_eq!(got.cluster_ips, ips(&["10.96.0.10"]));
    let got = convert(service(ServiceSpec {
        cluster_ip: Some("10.96.0.10".into()),
        cluster_ips: Some(vec![]),
        ..ServiceSpec::default()
    }));
    assert_eq!(got.cluster_ips, ips(&["10.96.0.10"]));
}

#[test]
fn none_cluster_ip_is_headless_without_cluster_ips() {
    let got = convert(service(ServiceSpec {
        cluster_ip: Some("None".into()),
        cluster_ips: Some(vec!["None".into()]),
        ports: Some(vec![port(80)]),
        ..ServiceSpec::default()
    }));
    assert!(got.headless);
    assert!(got.cluster_ips.is_empty());
    assert_eq!(got.ports.len(), 1);
    // Only `clusterIP` set (an old client).
    let got = convert(service(ServiceSpec {
        cluster_ip: Some("None".into()),
        ..ServiceSpec::default()
    }));
    assert!(got.headless && got.cluster_ips.is_empty());
}

#[test]
fn invalid_ips_are_dropped_and_the_rest_kept() {
    let got = convert(service(ServiceSpec {
        cluster_ips: Some(vec!["10.96.0.300".into(), "10.96.0.11".into()]),
        external_ips: Some(vec!["not-an-ip".into(), "192.0.2.8".into(), "".into()]),
        ports: Some(vec![port(53)]),
        ..ServiceSpec::default()
    }));
    assert_eq!(got.cluster_ips, ips(&["10.96.0.11"]));
    assert_eq!(got.external_ips, ips(&["192.0.2.8"]));
    assert_eq!(got.ports.len(), 1);
}

#[test]
fn load_balancer_ips_come_from_status_ingress_ips_only() {
    let mut svc = service(ServiceSpec {
        type_: Some("LoadBalancer".into()),
        load_balancer_ip: Some("198.51.100.99".into()),
        ..ServiceSpec::default()
    });
    svc.status = Some(ServiceStatus {
        conditions: None,
        load_balancer: Some(LoadBalancerStatus {
            ingress: Some(vec![
                LoadBalancerIngress {
                    ip: Some("198.51.100.1".into()),
                    ..LoadBalancerIngress::default()
                },
                LoadBalancerIngress {
                    hostname: Some("lb.example.com".into()),
                    ..LoadBalancerIngress::default()
                },
                LoadBalancerIngress {
                    ip: Some("bad".into()),
                    ..LoadBalancerIngress::default()
                },
                LoadBalancerIngress {
                    ip: Some("2001:db8::1".into()),
                    ..LoadBalancerIngress::default()
                },
            ]),
        }),
    });
    let got = convert(svc);
    assert_eq!(got.kind, ServiceType::LoadBalancer);
    assert_eq!(got.lb_ips, ips(&["198.51.100.1", "2001:db8::1"]));
}

#[test]
fn port_protocol_defaults_to_tcp_and_unknown_protocols_skip_the_port() {
    let got = convert(service(ServiceSpec {
        ports: Some(vec![
            port(80),
            ServicePort {
                name: Some("dns".into()),
                protocol: Some("UDP".into()),
                ..port(53)
            },
            ServicePort {
                name: Some("sig".into()),
                protocol: Some("SCTP".into()),
                ..port(3868)
            },
            ServicePort {
                name: Some("weird".into()),
                protocol: Some("QUIC".into()),
                ..port(443)
            },
        ]),
        ..ServiceSpec::default()
    }));
    let protos: Vec<_> = got
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.protocol))
        .collect();
    assert_eq!(
        protos,
        [
            ("", L4Proto::Tcp),
            ("dns", L4Proto::Udp),
            ("sig", L4Proto::Sctp)
        ]
    );
}

#[test]
fn ports_out_of_range_are_skipped() {
    let got = convert(service(ServiceSpec {
        ports: Some(vec![
            port(0),
            port(65536),
            port(-1),
            port(65535),
            ServicePort {
                target_port: Some(IntOrString::Int(70000)),
                ..port(81)
            },
        ]),
        ..ServiceSpec::default()
    }));
    let numbers: Vec<_> = got.ports.iter().map(|p| p.port).collect();
    assert_eq!(numbers, [65535]);
}

#[test]
fn target_port_number_name_or_the_port_itself() {
    let got = convert(service(ServiceSpec {
        ports: Some(vec![
            ServicePort {
                name: Some("a".into()),
                target_port: Some(IntOrString::Int(8080)),
                ..port(80)
            },
            ServicePort {
                name: Some("b".into()),
                target_port: Some(IntOrString::String("http-alt".into())),
                ..port(81)
            },
            ServicePort {
                name: Some("c".into()),
                target_port: None,
                ..port(82)
            },
        ]),
        ..ServiceSpec::default()
    }));
    let targets: Vec<_> = got.ports.iter().map(|p| p.target_port.clone()).collect();
    assert_eq!(
        targets,
        [
            TargetPort::Number(8080),
            TargetPort::Name("http-alt".into()),
            TargetPort::Number(82)
        ]
    );
}

#[test]
fn node_ports_are_kept_and_bad_ones_dropped_without_the_port() {
    let got = convert(service(ServiceSpec {
        type_: Some("NodePort".into()),
        ports: Some(vec![
            ServicePort {
                node_port: Some(30080),
                ..port(80)
            },
            ServicePort {
                node_port: Some(0),
                ..port(81)
            },
            ServicePort {
                node_port: Some(99999),
                ..port(82)
            },
        ]),
        ..ServiceSpec::default()
    }));
    let node_ports: Vec<_> = got.ports.iter().map(|p| (p.port, p.node_port)).collect();
    assert_eq!(node_ports, [(80, Some(30080)), (81, None), (82, None)]);
}

#[test]
fn other_traffic_policies_are_not_local() {
    let got = convert(service(ServiceSpec {
        external_traffic_policy: Some("Cluster".into()),
        internal_traffic_policy: Some("Cluster".into()),
        ..ServiceSpec::default()
    }));
    assert!(!got.external_local && !got.internal_local);
}

#[test]
fn service_without_name_or_namespace_is_ignored() {
    let mut svc = service(ServiceSpec::default());
    svc.metadata.name = None;
    assert_eq!(convert_service(svc), Err(Ignored::NoName));
    let mut svc = service(ServiceSpec::default());
    svc.metadata.namespace = None;
    assert_eq!(convert_service(svc), Err(Ignored::NoNamespace));
}
