//! Model-side status → `FromDataplane` frames. The only place status meets protobuf.

use bytes::Bytes;
use calico_model::IpVersion;

use super::codec::encode_frame;
use super::proto;
use super::proto::from_dataplane::Payload;
use crate::status::{EndpointSummary, StatusEvent};

fn frame(seq: u64, payload: Payload) -> Bytes {
    encode_frame(&proto::FromDataplane {
        sequence_number: seq,
        payload: Some(payload),
    })
}

/// `ProcessStatusUpdate`: an ISO-8601 timestamp and the uptime in seconds.
pub fn heartbeat_frame(seq: u64, iso_timestamp: &str, uptime_secs: f64) -> Bytes {
    frame(
        seq,
        Payload::ProcessStatusUpdate(proto::ProcessStatusUpdate {
            iso_timestamp: iso_timestamp.to_string(),
            uptime: uptime_secs,
        }),
    )
}

/// The parts of a `WorkloadEndpoint` Felix's status files use.
fn endpoint(s: &EndpointSummary) -> proto::WorkloadEndpoint {
    proto::WorkloadEndpoint {
        name: s.name.clone(),
        mac: s.mac.map(|m| m.to_string()).unwrap_or_default(),
        ipv4_nets: s.ipv4_nets.iter().map(ToString::to_string).collect(),
        ipv6_nets: s.ipv6_nets.iter().map(ToString::to_string).collect(),
        ..Default::default()
    }
}

pub fn status_frame(seq: u64, ev: &StatusEvent) -> Bytes {
    let status = |s: crate::status::EndpointStatus| {
        Some(proto::EndpointStatus {
            status: s.as_str().to_string(),
        })
    };
    let payload = match ev {
        StatusEvent::Workload { id, status: st } => {
            let pid = Some(proto::WorkloadEndpointId {
                orchestrator_id: id.orchestrator_id.clone(),
                workload_id: id.workload_id.clone(),
                endpoint_id: id.endpoint_id.clone(),
            });
            match st {
                Some((s, summary)) => {
                    Payload::WorkloadEndpointStatusUpdate(proto::WorkloadEndpointStatusUpdate {
                        id: pid,
                        status: status(*s),
                        endpoint: summary.as_ref().map(endpoint),
                    })
                }
                None => {
                    Payload::WorkloadEndpointStatusRemove(proto::WorkloadEndpointStatusRemove {
                        id: pid,
                    })
                }
            }
        }
        StatusEvent::Host { id, status: st } => {
            let pid = Some(proto::HostEndpointId {
                endpoint_id: id.0.clone(),
            });
            match st {
                Some(s) => Payload::HostEndpointStatusUpdate(proto::HostEndpointStatusUpdate {
                    id: pid,
                    status: status(*s),
                }),
                None => {
                    Payload::HostEndpointStatusRemove(proto::HostEndpointStatusRemove { id: pid })
                }
            }
        }
        StatusEvent::Wireguard {
            public_key,
            ip_version,
        } => Payload::WireguardStatusUpdate(proto::WireguardStatusUpdate {
            public_key: public_key.clone(),
            ip_version: match ip_version {
                IpVersion::V4 => proto::IpVersion::Ipv4 as i32,
                IpVersion::V6 => proto::IpVersion::Ipv6 as i32,
            },
        }),
        StatusEvent::DataplaneInSync => Payload::DataplaneInSync(proto::DataplaneInSync {}),
    };
    frame(seq, payload)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use calico_model::{HostEndpointId, WorkloadEndpointId};
    use prost::Message;

    use super::*;
    use crate::felix::codec::FrameDecoder;
    use crate::status::EndpointStatus;

    fn decode(frame: Bytes) -> proto::FromDataplane {
        let mut buf = BytesMut::from(&frame[..]);
        let body = FrameDecoder::new(1 << 20)
            .decode(&mut buf)
            .unwrap()
            .unwrap();
        assert!(buf.is_empty());
        proto::FromDataplane::decode(body).unwrap()
    }

    #[test]
    fn heartbeat_round_trips() {
        let m = decode(heartbeat_frame(7, "2026-01-02T03:04:05.678Z", 12.5));
        assert_eq!(m.sequence_number, 7);
        assert_eq!(
            m.payload,
            Some(Payload::ProcessStatusUpdate(proto::ProcessStatusUpdate {
                iso_timestamp: "2026-01-02T03:04:05.678Z".into(),
                uptime: 12.5
            }))
        );
    }

    #[test]
    fn every_status_payload_round_trips() {
        let wid = WorkloadEndpointId {
            orchestrator_id: "k8s".into(),
            workload_id: "ns/pod".into(),
            endpoint_id: "eth0".into(),
        };
        let pwid = Some(proto::WorkloadEndpointId {
            orchestrator_id: "k8s".into(),
            workload_id: "ns/pod".into(),
            endpoint_id: "eth0".into(),
        });
        let hid = HostEndpointId("hep".into());
        let phid = Some(proto::HostEndpointId {
            endpoint_id: "hep".into(),
        });
        let st = |s: &str| {
            Some(proto::EndpointStatus {
                status: s.to_string(),
            })
        };
        let cases = vec![
            (
                StatusEvent::Workload {
                    id: wid.clone(),
                    status: Some((
                        EndpointStatus::Up,
                        Some(EndpointSummary {
                            name: "cali1".into(),
                            mac: Some(calico_model::MacAddr([0xee, 0, 0, 0, 0, 1])),
                            ipv4_nets: vec!["10.65.0.2/32".parse().unwrap()],
                            ipv6_nets: vec![],
                        }),
                    )),
                },
                Payload::WorkloadEndpointStatusUpdate(proto::WorkloadEndpointStatusUpdate {
                    id: pwid.clone(),
                    status: st("up"),
                    endpoint: Some(proto::WorkloadEndpoint {
                        name: "cali1".into(),
                        mac: "ee:00:00:00:00:01".into(),
                        ipv4_nets: vec!["10.65.0.2/32".into()],
                        ..Default::default()
                    }),
                }),
            ),
            (
                StatusEvent::Workload {
                    id: wid.clone(),
                    status: Some((EndpointStatus::Down, None)),
                },
                Payload::WorkloadEndpointStatusUpdate(proto::WorkloadEndpointStatusUpdate {
                    id: pwid.clone(),
                    status: st("down"),
                    endpoint: None,
                }),
            ),
            (
                StatusEvent::Workload {
                    id: wid,
                    status: None,
                },
                Payload::WorkloadEndpointStatusRemove(proto::WorkloadEndpointStatusRemove {
                    id: pwid,
                }),
            ),
            (
                StatusEvent::Host {
                    id: hid.clone(),
                    status: Some(EndpointStatus::Error),
                },
                Payload::HostEndpointStatusUpdate(proto::HostEndpointStatusUpdate {
                    id: phid.clone(),
                    status: st("error"),
                }),
            ),
            (
                StatusEvent::Host {
                    id: hid,
                    status: None,
                },
                Payload::HostEndpointStatusRemove(proto::HostEndpointStatusRemove { id: phid }),
            ),
            (
                StatusEvent::Wireguard {
                    public_key: "key=".into(),
                    ip_version: IpVersion::V6,
                },
                Payload::WireguardStatusUpdate(proto::WireguardStatusUpdate {
                    public_key: "key=".into(),
                    ip_version: proto::IpVersion::Ipv6 as i32,
                }),
            ),
            (
                StatusEvent::DataplaneInSync,
                Payload::DataplaneInSync(proto::DataplaneInSync {}),
            ),
        ];
        for (i, (ev, want)) in cases.into_iter().enumerate() {
            let m = decode(status_frame(i as u64, &ev));
            assert_eq!(m.sequence_number, i as u64);
            assert_eq!(m.payload, Some(want), "{ev:?}");
        }
    }
}
