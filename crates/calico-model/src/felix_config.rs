//! Typed view of the Felix settings the driver acts on, parsed from `ConfigUpdate`'s raw
//! strings. Pure: a bad value is reported and replaced by Felix's default, never fatal here.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// What happens to traffic from a workload to its own host after the workload's egress
/// policy (`DefaultEndpointToHostAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum EndpointToHostAction {
    /// Felix's default.
    #[default]
    Drop,
    /// Accept without consulting host endpoint policy.
    Accept,
    /// Hand the packet on to host endpoint policy (the input path).
    Return,
}

/// Felix's `LogSeverityScreen` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LogSeverity {
    Trace,
    Debug,
    Info,
    Warning,
    Error,
    Fatal,
}

impl LogSeverity {
    /// The `tracing` filter directive equivalent (`fatal` has none; it maps to `error`).
    pub fn as_filter(&self) -> &'static str {
        match self {
            LogSeverity::Trace => "trace",
            LogSeverity::Debug => "debug",
            LogSeverity::Info => "info",
            LogSeverity::Warning => "warn",
            LogSeverity::Error | LogSeverity::Fatal => "error",
        }
    }
}

/// L4 protocol of a failsafe port: Felix allows only TCP and UDP here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FailsafeProtocol {
    Tcp,
    Udp,
}

impl FailsafeProtocol {
    /// IP protocol number.
    pub fn number(&self) -> u8 {
        match self {
            FailsafeProtocol::Tcp => 6,
            FailsafeProtocol::Udp => 17,
        }
    }
}

/// One failsafe entry: `[proto:][net:]port` (a v6 net is written in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProtoPort {
    pub protocol: FailsafeProtocol,
    /// Restricts the entry to a peer network; `None` means any peer.
    pub net: Option<IpNet>,
    pub port: u16,
}

/// A Felix setting whose value could not be parsed; the default was used instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Felix setting {name}={value:?} is invalid ({reason}); using the default")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub reason: String,
}

/// The Felix settings this dataplane uses, with Felix's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FelixConfig {
    /// `ReportingIntervalSecs`; `None` when set to 0 (status reporting disabled).
    pub reporting_interval: Option<Duration>,
    /// `LogSeverityScreen`; `None` when Felix did not set it.
    pub log_severity_screen: Option<LogSeverity>,
    pub default_endpoint_to_host_action: EndpointToHostAction,
    pub failsafe_inbound_host_ports: Vec<ProtoPort>,
    pub failsafe_outbound_host_ports: Vec<ProtoPort>,
    /// `InterfacePrefix`: comma-separated prefixes of workload interface names.
    pub interface_prefixes: Vec<String>,
}

const DEFAULT_FAILSAFE_INBOUND: &str =
    "tcp:22,udp:68,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667";
const DEFAULT_FAILSAFE_OUTBOUND: &str =
    "udp:53,udp:67,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667";

impl Default for FelixConfig {
    fn default() -> Self {
        FelixConfig {
            reporting_interval: Some(Duration::from_secs(30)),
            log_severity_screen: None,
            default_endpoint_to_host_action: EndpointToHostAction::Drop,
            failsafe_inbound_host_ports: parse_port_list(DEFAULT_FAILSAFE_INBOUND)
                .unwrap_or_default(),
            failsafe_outbound_host_ports: parse_port_list(DEFAULT_FAILSAFE_OUTBOUND)
                .unwrap_or_default(),
            interface_prefixes: vec!["cali".to_string()],
        }
    }
}

impl FelixConfig {
    /// Parses the settings from Felix's raw map. Every invalid value is returned as an error
    /// and replaced by its default, so one bad setting never blocks the others.
    pub fn from_raw(raw: &BTreeMap<String, String>) -> (FelixConfig, Vec<ConfigError>) {
        let mut cfg = FelixConfig::default();
        let mut errors = Vec::new();
        let mut bad = |name: &str, value: &str, reason: String| {
            errors.push(ConfigError {
                name: name.to_string(),
                value: value.to_string(),
                reason,
            })
        };
        for (name, value) in raw {
            let v = value.trim();
            match name.as_str() {
                "ReportingIntervalSecs" => match v.parse::<f64>() {
                    Ok(0.0) => cfg.reporting_interval = None,
                    Ok(secs) if secs > 0.0 && secs.is_finite() && secs < 1e9 => {
                        cfg.reporting_interval = Some(Duration::from_secs_f64(secs))
                    }
                    _ => bad(
                        name,
                        value,
                        "expected a non-negative number of seconds".into(),
                    ),
                },
                "LogSeverityScreen" => match parse_severity(v) {
                    Some(s) => cfg.log_severity_screen = Some(s),
                    None => bad(
                        name,
                        value,
                        "expected one of TRACE, DEBUG, INFO, WARNING, ERROR, FATAL".into(),
                    ),
                },
                "DefaultEndpointToHostAction" => match v.to_ascii_uppercase().as_str() {
                    "DROP" => cfg.default_endpoint_to_host_action = EndpointToHostAction::Drop,
                    "ACCEPT" => cfg.default_endpoint_to_host_action = EndpointToHostAction::Accept,
                    "RETURN" => cfg.default_endpoint_to_host_action = EndpointToHostAction::Return,
                    _ => bad(name, value, "expected DROP, ACCEPT or RETURN".into()),
                },
                "FailsafeInboundHostPorts" => match parse_port_list(v) {
                    Ok(ports) => cfg.failsafe_inbound_host_ports = ports,
                    Err(reason) => bad(name, value, reason),
                },
                "FailsafeOutboundHostPorts" => match parse_port_list(v) {
                    Ok(ports) => cfg.failsafe_outbound_host_ports = ports,
                    Err(reason) => bad(name, value, reason),
                },
                "InterfacePrefix" => {
                    let prefixes: Vec<String> = v
                        .split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(str::to_string)
                        .collect();
                    if prefixes.is_empty() {
                        bad(name, value, "must name at least one prefix".into());
                    } else {
                        cfg.interface_prefixes = prefixes;
                    }
                }
                _ => {}
            }
        }
        (cfg, errors)
    }
}

fn parse_severity(v: &str) -> Option<LogSeverity> {
    Some(match v.to_ascii_uppercase().as_str() {
        "TRACE" => LogSeverity::Trace,
        "DEBUG" => LogSeverity::Debug,
        "INFO" => LogSeverity::Info,
        "WARNING" | "WARN" => LogSeverity::Warning,
        "ERROR" => LogSeverity::Error,
        "FATAL" | "PANIC" => LogSeverity::Fatal,
        _ => return None,
    })
}

/// Parses Felix's port-list syntax: comma separated `port`, `proto:port`, `proto:net:port`
/// or `proto:[v6net]:port`; the protocol defaults to tcp. `none` (or empty) is an empty list.
pub fn parse_port_list(raw: &str) -> Result<Vec<ProtoPort>, String> {
    let mut out = Vec::new();
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("none") {
        return Ok(out);
    }
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        out.push(parse_proto_port(entry)?);
    }
    Ok(out)
}

fn parse_proto_port(entry: &str) -> Result<ProtoPort, String> {
    let (proto_str, net_str, port_str): (&str, Option<&str>, &str) =
        if let (Some(open), Some(close)) = (entry.find('['), entry.find("]:")) {
            if close < open {
                return Err(format!("malformed IPv6 network in {entry:?}"));
            }
            let proto = entry[..open].trim_end_matches(':');
            let proto = if proto.is_empty() { "tcp" } else { proto };
            (proto, Some(&entry[open + 1..close]), &entry[close + 2..])
        } else {
            let parts: Vec<&str> = entry.split(':').collect();
            match parts.as_slice() {
                [port] => ("tcp", None, port),
                [proto, port] => (proto, None, port),
                [proto, net, port] => (proto, Some(net), port),
                _ => {
                    return Err(format!(
                        "{entry:?}: expected <protocol>:<net>:<port>, <protocol>:<port> or <port>"
                    ))
                }
            }
        };
    let protocol = match proto_str.to_ascii_lowercase().as_str() {
        "tcp" => FailsafeProtocol::Tcp,
        "udp" => FailsafeProtocol::Udp,
        other => return Err(format!("{entry:?}: unknown protocol {other:?}")),
    };
    let port: u16 = port_str
        .parse()
        .map_err(|_| format!("{entry:?}: port must be an integer in 0-65535"))?;
    let net = match net_str {
        None => None,
        Some(n) => Some(parse_net_or_ip(n).ok_or_else(|| format!("{entry:?}: bad CIDR {n:?}"))?),
    };
    Ok(ProtoPort {
        protocol,
        net,
        port,
    })
}

fn parse_net_or_ip(s: &str) -> Option<IpNet> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Some(n.trunc());
    }
    s.parse::<std::net::IpAddr>().ok().map(IpNet::from)
}

impl fmt::Display for ProtoPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.protocol {
            FailsafeProtocol::Tcp => "tcp",
            FailsafeProtocol::Udp => "udp",
        };
        match self.net {
            None => write!(f, "{proto}:{}", self.port),
            Some(IpNet::V6(n)) => write!(f, "{proto}:[{n}]:{}", self.port),
            Some(n) => write!(f, "{proto}:{n}:{}", self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_felix() {
        let (cfg, errors) = FelixConfig::from_raw(&BTreeMap::new());
        assert!(errors.is_empty());
        assert_eq!(cfg.reporting_interval, Some(Duration::from_secs(30)));
        assert_eq!(
            cfg.default_endpoint_to_host_action,
            EndpointToHostAction::Drop
        );
        assert_eq!(cfg.failsafe_inbound_host_ports.len(), 9);
        assert_eq!(cfg.failsafe_outbound_host_ports[0].to_string(), "udp:53");
        assert_eq!(cfg.interface_prefixes, vec!["cali"]);
    }

    #[test]
    fn reporting_interval_zero_disables_status() {
        let (cfg, _) = FelixConfig::from_raw(&raw(&[("ReportingIntervalSecs", "0")]));
        assert_eq!(cfg.reporting_interval, None);
        let (cfg, _) = FelixConfig::from_raw(&raw(&[("ReportingIntervalSecs", "2.5")]));
        assert_eq!(cfg.reporting_interval, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn invalid_value_is_reported_and_defaulted() {
        let (cfg, errors) = FelixConfig::from_raw(&raw(&[
            ("DefaultEndpointToHostAction", "ALLOW"),
            ("LogSeverityScreen", "debug"),
        ]));
        assert_eq!(
            cfg.default_endpoint_to_host_action,
            EndpointToHostAction::Drop
        );
        assert_eq!(cfg.log_severity_screen, Some(LogSeverity::Debug));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].name, "DefaultEndpointToHostAction");
    }

    #[test]
    fn port_list_accepts_every_felix_form() {
        let ports = parse_port_list("22, udp:68, tcp:10.0.0.0/8:179, udp:[fd00::/64]:53").unwrap();
        let shown: Vec<String> = ports.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            vec![
                "tcp:22",
                "udp:68",
                "tcp:10.0.0.0/8:179",
                "udp:[fd00::/64]:53"
            ]
        );
        assert!(parse_port_list("none").unwrap().is_empty());
        assert!(parse_port_list("icmp:1").is_err());
        assert!(parse_port_list("tcp:70000").is_err());
        assert!(parse_port_list("a:b:c:d").is_err());
    }
}
