//! The driver's own settings (CLI flags and `CALICO_VPP_*` environment variables), typed and
//! validated once at start. Felix's settings are separate: they arrive in `ConfigUpdate` and
//! live in the model (`calico_model::FelixConfig`).

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;

use crate::cli::Settings;

/// Which dataplane the agent drives once Felix is in sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataplaneKind {
    /// Keep the model only (tests, dry runs): nothing is programmed.
    None,
    /// A VPP reached through its binary API socket.
    Vpp,
    /// The built-in VPP simulator.
    Sim,
}

/// `CALICO_VPP_API_TRANSPORT`: how to reach VPP's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportKind {
    /// The API socket (`CALICO_VPP_API_SOCKET`).
    Socket,
    /// The shared-memory API segment (`CALICO_VPP_API_PREFIX`), through libvppapiclient.
    Shm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Smallest frame limit accepted: below this even a modest policy would not fit.
pub const MIN_FRAME_BYTES: usize = 64 * 1024;
/// Largest frame limit accepted (the length field is 64-bit, memory is not).
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024 * 1024;

/// Longest pass spacing accepted: beyond it a burst of changes would wait visibly long.
pub const MAX_APPLY_INTERVAL_MS: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("max frame size {0} bytes is out of range ({MIN_FRAME_BYTES}..={MAX_FRAME_BYTES})")]
    FrameLimit(usize),
    #[error("log level {value:?} is not a valid filter: {reason}")]
    LogLevel { value: String, reason: String },
    #[error("minimum apply interval {0} ms is out of range (0..={MAX_APPLY_INTERVAL_MS})")]
    ApplyInterval(u64),
    #[error("{what} {path} must be an absolute path")]
    RelativePath { what: &'static str, path: PathBuf },
    #[error("CALICO_VPP_SERVICE_CIDRS: {value:?} is not a CIDR")]
    ServiceCidr { value: String },
    #[error("CALICO_VPP_POD_MTU {0} is out of range (576..=65535)")]
    PodMtu(u32),
}

/// Validated driver settings.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    pub api_socket: PathBuf,
    pub state_dir: PathBuf,
    /// A `tracing` filter; when set it wins over Felix's `LogSeverityScreen`.
    pub log_level: Option<String>,
    pub log_format: LogFormat,
    pub max_frame_bytes: usize,
    pub dataplane: DataplaneKind,
    /// Socket of the built-in simulator for `dataplane = sim` (`None`: a temporary path).
    pub sim_socket: Option<PathBuf>,
    /// How long `felix-proxy` keeps trying to reach the driver's socket.
    pub proxy_connect_timeout: Duration,
    /// Least time between two reconcile passes (a lone change after idle is not delayed).
    pub min_apply_interval: Duration,
    /// How to reach VPP's API.
    pub api_transport: crate::dataplane::vpp::ApiTransport,
    /// This node's name when Felix's config does not say it.
    pub node_name: Option<String>,
    /// The VPP interface facing the network (tunnels are unnumbered to it).
    pub uplink_interface: Option<String>,
    /// Service CIDRs besides Felix's (they keep their source under SNAT).
    pub service_cidrs: Vec<ipnet::IpNet>,
    /// The CNI plugin's socket (`None`: pods are not wired here).
    pub cni_socket: Option<PathBuf>,
    /// How pod interfaces are made (`auto` resolved).
    pub pods: crate::cni::PodSettings,
    /// Watch the API server for Services and EndpointSlices (`auto` resolved).
    pub services: bool,
}

/// The pod interface back-end `kind` means on this host.
pub fn pod_backend(kind: crate::cli::PodInterfaceKind) -> calico_model::PodBackend {
    use crate::cli::PodInterfaceKind;
    match kind {
        PodInterfaceKind::Tun => calico_model::PodBackend::Tun,
        PodInterfaceKind::Veth => calico_model::PodBackend::Veth,
        PodInterfaceKind::Auto if std::path::Path::new("/dev/vhost-net").exists() => {
            calico_model::PodBackend::Tun
        }
        PodInterfaceKind::Auto => calico_model::PodBackend::Veth,
    }
}

fn cni_off(p: &std::path::Path) -> bool {
    p.as_os_str().is_empty() || p.as_os_str() == "off"
}

/// This node's name when no setting gives it: what Felix itself would use.
fn default_node_name() -> Option<String> {
    ["FELIX_FELIXHOSTNAME", "NODENAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
}

impl DriverConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        if !(MIN_FRAME_BYTES..=MAX_FRAME_BYTES).contains(&s.max_frame_bytes) {
            return Err(ConfigError::FrameLimit(s.max_frame_bytes));
        }
        if s.min_apply_interval_ms > MAX_APPLY_INTERVAL_MS {
            return Err(ConfigError::ApplyInterval(s.min_apply_interval_ms));
        }
        let log_level = match s.log_level.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(level) => {
                tracing_subscriber::EnvFilter::try_new(level).map_err(|e| {
                    ConfigError::LogLevel {
                        value: level.to_string(),
                        reason: e.to_string(),
                    }
                })?;
                Some(level.to_string())
            }
        };
        for (what, path) in [
            ("CALICO_VPP_API_SOCKET", Some(&s.api_socket)),
            ("CALICO_VPP_STATE_DIR", Some(&s.state_dir)),
            ("CALICO_VPP_SIM_SOCKET", s.sim_socket.as_ref()),
            (
                "CALICO_VPP_CNI_SOCKET",
                Some(&s.cni_socket).filter(|p| !cni_off(p)),
            ),
        ] {
            let Some(path) = path else { continue };
            if !path.is_absolute() {
                return Err(ConfigError::RelativePath {
                    what,
                    path: path.clone(),
                });
            }
        }
        let service_cidrs = s
            .service_cidrs
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| {
                c.parse::<ipnet::IpNet>()
                    .map(|n| n.trunc())
                    .map_err(|_| ConfigError::ServiceCidr {
                        value: c.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !(576..=65535).contains(&s.pod_mtu) {
            return Err(ConfigError::PodMtu(s.pod_mtu));
        }
        Ok(DriverConfig {
            cni_socket: (!cni_off(&s.cni_socket)).then(|| s.cni_socket.clone()),
            services: match s.services {
                crate::cli::ServicesMode::On => true,
                crate::cli::ServicesMode::Off => false,
                crate::cli::ServicesMode::Auto => {
                    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
                        || std::env::var_os("KUBECONFIG").is_some()
                }
            },
            pods: crate::cni::PodSettings {
                backend: pod_backend(s.pod_interface),
                default_mtu: s.pod_mtu,
            },
            service_cidrs,
            api_socket: s.api_socket.clone(),
            state_dir: s.state_dir.clone(),
            log_level,
            log_format: s.log_format,
            max_frame_bytes: s.max_frame_bytes,
            dataplane: s.dataplane,
            sim_socket: s.sim_socket.clone(),
            proxy_connect_timeout: s.proxy_connect_timeout.into(),
            min_apply_interval: Duration::from_millis(s.min_apply_interval_ms),
            api_transport: match s.api_transport {
                TransportKind::Socket => crate::dataplane::vpp::ApiTransport::Socket,
                TransportKind::Shm => crate::dataplane::vpp::ApiTransport::Shm {
                    prefix: s.api_prefix.clone().filter(|p| !p.is_empty()),
                },
            },
            node_name: s
                .node_name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .or_else(default_node_name),
            uplink_interface: s
                .uplink_interface
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<DriverConfig, ConfigError> {
        let cli = Cli::try_parse_from(args).unwrap();
        DriverConfig::from_settings(&cli.settings)
    }

    #[test]
    fn defaults_need_no_arguments() {
        let c = parse(&["calico-vpp-driver"]).unwrap();
        assert_eq!(c.api_socket, PathBuf::from("/run/vpp/api.sock"));
        assert_eq!(c.max_frame_bytes, 128 * 1024 * 1024);
        assert_eq!(c.dataplane, DataplaneKind::Vpp);
        assert_eq!(c.log_level, None);
    }

    #[test]
    fn min_apply_interval_defaults_to_0_and_is_range_checked() {
        let c = parse(&["x"]).unwrap();
        assert_eq!(c.min_apply_interval, Duration::ZERO);
        let c = parse(&["x", "--min-apply-interval-ms", "100"]).unwrap();
        assert_eq!(c.min_apply_interval, Duration::from_millis(100));
        assert!(matches!(
            parse(&["x", "--min-apply-interval-ms", "10001"]),
            Err(ConfigError::ApplyInterval(10_001))
        ));
    }

    #[test]
    fn frame_limit_is_range_checked() {
        assert!(matches!(
            parse(&["x", "--max-frame-bytes", "100"]),
            Err(ConfigError::FrameLimit(100))
        ));
        assert_eq!(
            parse(&["x", "--max-frame-bytes", "1048576"])
                .unwrap()
                .max_frame_bytes,
            1 << 20
        );
    }

    #[test]
    fn bad_log_filter_and_relative_paths_are_rejected() {
        assert!(matches!(
            parse(&["x", "--log-level", "info,=[bad"]),
            Err(ConfigError::LogLevel { .. })
        ));
        assert!(matches!(
            parse(&["x", "--state-dir", "relative/dir"]),
            Err(ConfigError::RelativePath { .. })
        ));
    }

    #[test]
    fn service_cidrs_are_a_checked_list() {
        assert!(parse(&["x"]).unwrap().service_cidrs.is_empty());
        let c = parse(&["x", "--service-cidrs", "10.96.0.0/12, fd00:96::/108"]).unwrap();
        assert_eq!(
            c.service_cidrs,
            vec![
                "10.96.0.0/12".parse::<ipnet::IpNet>().unwrap(),
                "fd00:96::/108".parse().unwrap()
            ]
        );
        assert!(matches!(
            parse(&["x", "--service-cidrs", "10.96.0.0/12,10.1.1.1"]),
            Err(ConfigError::ServiceCidr { value }) if value == "10.1.1.1"
        ));
    }

    #[test]
    fn flags_work_after_a_subcommand() {
        let cli = Cli::try_parse_from([
            "x",
            "run",
            "--felix-socket",
            "/tmp/f.sock",
            "--dataplane",
            "sim",
        ])
        .unwrap();
        assert_eq!(cli.settings.dataplane, DataplaneKind::Sim);
    }
}
