//! Model-side status → `FromDataplane` frames. The only place status meets protobuf.

use bytes::Bytes;
use calico_model::IpVersion;

use super::codec::encode_frame;
use super::proto;
use super::proto::from_dataplane::Payload;
use crate::status::StatusEvent;

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
                Some(s) => {
                    Payload::WorkloadEndpointStatusUpdate(proto::WorkloadEndpointStatusUpdate {
                        id: pid,
                        status: status(*s),
                        endpoint: None,
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
