//! Command line: with no arguments the binary is Felix's dataplane driver (fds 3/4); the
//! subcommands cover socket mode, the Felix-side relay and the demo. Parsing only: the
//! settings are validated in `config`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{DataplaneKind, LogFormat, TransportKind};
use crate::felix::codec::DEFAULT_MAX_FRAME_BYTES;

/// Where the driver listens for Felix in socket mode (the Calico/VPP agent's path).
pub const DEFAULT_FELIX_SOCKET: &str = "/var/run/calico/felix-dataplane.sock";

#[derive(Debug, Parser)]
#[command(
    name = "calico-vpp-driver",
    version,
    about = "Calico dataplane driver for VPP. With no subcommand, runs as Felix's external \
             dataplane driver: ToDataplane on fd 3, FromDataplane on fd 4."
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve Felix on a unix socket (Felix runs `felix-proxy` as its driver). One Felix
    /// connection at a time; a new connection replaces the old one.
    Run {
        #[arg(long, env = "CALICO_VPP_FELIX_SOCKET", value_name = "PATH", default_value = DEFAULT_FELIX_SOCKET)]
        felix_socket: PathBuf,
    },
    /// The relay Felix runs as its driver in socket mode: fds 3/4 ⇄ the driver's socket.
    /// Installed as `calico-vpp-felix-proxy`, the binary runs this with no arguments.
    FelixProxy {
        #[arg(long, env = "CALICO_VPP_FELIX_SOCKET", value_name = "PATH", default_value = DEFAULT_FELIX_SOCKET)]
        socket: PathBuf,
    },
    /// Run the demo: a scripted Felix session through the driver into the built-in VPP
    /// simulator (or into the VPP at CALICO_VPP_API_SOCKET when that socket exists), then
    /// the programmed objects, endpoint status and a table of flow verdicts.
    Demo {
        /// Leave the demo's objects in a real VPP instead of removing them at the end.
        #[arg(long)]
        keep: bool,
        /// Use the simulator even when CALICO_VPP_API_SOCKET exists.
        #[arg(long)]
        sim: bool,
    },
    /// Connect to VPP, print its version and whether every API message the driver uses is
    /// there with the same CRC; exits 0 only when compatible.
    CheckVpp {
        /// VPP's API socket (default: CALICO_VPP_API_SOCKET, /run/vpp/api.sock).
        #[arg(long, value_name = "PATH")]
        vpp_socket: Option<PathBuf>,
        /// List every message, not only the mismatches.
        #[arg(long)]
        verbose: bool,
    },
    /// Serve the built-in VPP simulator on a socket until SIGTERM/ctrl-c (for tests and
    /// trying the driver without VPP). Never on a socket a server is listening on.
    Sim {
        #[arg(long, value_name = "PATH")]
        socket: PathBuf,
    },
    /// Ask the running driver (over its admin socket) which tier, policy and rule decide a
    /// new flow, in each direction this node polices, and whether the compiled objects (as
    /// VPP evaluates them) agree.
    Explain {
        /// Source: an IP address, or a workload endpoint (`namespace/pod` or its interface).
        #[arg(long, value_name = "IP|ENDPOINT")]
        from: String,
        /// Destination: an IP address or a workload endpoint.
        #[arg(long, value_name = "IP|ENDPOINT")]
        to: String,
        /// `tcp`, `udp`, `sctp`, `icmp` (echo request) or a protocol number.
        #[arg(long, default_value = "tcp")]
        proto: String,
        /// Destination port.
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Print the driver's JSON answer instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Settings shared by every mode; each flag also reads a `CALICO_VPP_*` variable.
#[derive(Debug, Args)]
pub struct Settings {
    /// The driver's admin socket (root only, mode 0600): where `explain` asks the running
    /// driver. `off`: no admin socket.
    #[arg(
        long,
        global = true,
        env = "CALICO_VPP_ADMIN_SOCKET",
        default_value = crate::admin::DEFAULT_ADMIN_SOCKET
    )]
    pub admin_socket: PathBuf,
    /// How to reach VPP's binary API: `socket` (`CALICO_VPP_API_SOCKET`) or `shm` (VPP's
    /// shared-memory segment through libvppapiclient.so, loaded at run time).
    #[arg(
        long,
        global = true,
        env = "CALICO_VPP_API_TRANSPORT",
        value_enum,
        default_value = "socket"
    )]
    pub api_transport: TransportKind,
    /// The shared-memory segment's prefix (VPP's `api-segment { prefix }`), for `shm`.
    #[arg(long, global = true, env = "CALICO_VPP_API_PREFIX")]
    pub api_prefix: Option<String>,
    /// Port of the Prometheus metrics and health endpoint (`/metrics`, `/liveness`,
    /// `/readiness`); 0: off.
    #[arg(
        long,
        global = true,
        env = "CALICO_VPP_PROMETHEUS_PORT",
        default_value_t = 0
    )]
    pub prometheus_port: u16,
    /// Address the metrics endpoint binds to (localhost unless set).
    #[arg(
        long,
        global = true,
        env = "CALICO_VPP_PROMETHEUS_HOST",
        default_value = "127.0.0.1"
    )]
    pub prometheus_host: std::net::IpAddr,
    /// VPP binary API socket.
    #[arg(
        long,
        global = true,
        env = "CALICO_VPP_API_SOCKET",
        default_value = "/run/vpp/api.sock"
    )]
    pub api_socket: PathBuf,
    /// This node's name, used when Felix's config carries no `FelixHostname` (finds this
    /// node's addresses in Felix's host metadata). Unset: `FELIX_FELIXHOSTNAME`, then
    /// `NODENAME`, then the system hostname, as Felix finds its own.
    #[arg(long, global = true, env = "CALICO_VPP_NODE_NAME")]
    pub node_name: Option<String>,
    /// The VPP interface facing the network (e.g. `host-eth0`), which tunnels to other nodes
    /// borrow their address from. It must exist in VPP; the driver does not create it.
    /// Unset: routes that need a tunnel wait (logged).
    #[arg(long, global = true, env = "CALICO_VPP_UPLINK_INTERFACE")]
    pub uplink_interface: Option<String>,
    /// Service CIDRs (comma-separated) that keep their source under SNAT, for clusters whose
    /// BGPConfiguration names none (Felix sends only those); both are used.
    #[arg(long, global = true, env = "CALICO_VPP_SERVICE_CIDRS")]
    pub service_cidrs: Option<String>,
    /// Directory for the driver's state (what it created in VPP, kept across restarts).
    #[arg(
        long,
        global = true,
        env = "CALICO_VPP_STATE_DIR",
        default_value = "/var/lib/calico-vpp-driver"
    )]
    pub state_dir: PathBuf,
    /// Log filter (`info`, `debug`, or a tracing filter such as
    /// `info,calico_vpp_driver::felix=debug`). Unset: Felix's LogSeverityScreen, else info.
    #[arg(long, global = true, env = "CALICO_VPP_LOG_LEVEL")]
    pub log_level: Option<String>,
    #[arg(
        long,
        global = true,
        env = "CALICO_VPP_LOG_FORMAT",
        value_enum,
        default_value = "human"
    )]
    pub log_format: LogFormat,
    /// Largest Felix frame accepted; a longer one is a fatal protocol error.
    #[arg(long, global = true, env = "CALICO_VPP_MAX_FRAME_BYTES", default_value_t = DEFAULT_MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,
    /// Dataplane to program once Felix is in sync.
    #[arg(
        long,
        global = true,
        env = "CALICO_VPP_DATAPLANE",
        value_enum,
        default_value = "vpp"
    )]
    pub dataplane: DataplaneKind,
    /// Socket for the built-in simulator when the dataplane is `sim` (default: a temporary
    /// path; never the VPP API socket).
    #[arg(
        long,
        global = true,
        env = "CALICO_VPP_SIM_SOCKET",
        value_name = "PATH"
    )]
    pub sim_socket: Option<PathBuf>,
    /// Least time between two reconcile passes, in milliseconds. With 0 a pass starts as
    /// soon as something changed, and whatever arrives during a pass joins the next one
    /// (passes compare only what changed, so they are cheap). A change after a quiet spell
    /// is applied at once whatever the setting.
    #[arg(
        long,
        global = true,
        env = "CALICO_VPP_MIN_APPLY_INTERVAL_MS",
        default_value_t = 0
    )]
    pub min_apply_interval_ms: u64,
    /// How long `felix-proxy` retries connecting to the driver's socket.
    #[arg(
        long,
        global = true,
        env = "CALICO_VPP_PROXY_CONNECT_TIMEOUT",
        default_value = "30s"
    )]
    pub proxy_connect_timeout: humantime::Duration,
    /// Where the CNI plugin's gRPC dataplane is served (the conflist's `dataplane_options`
    /// socket). `off`: pods are not wired by this driver.
    #[arg(
        long,
        global = true,
        env = "CALICO_VPP_CNI_SOCKET",
        default_value = crate::cni::DEFAULT_CNI_SOCKET
    )]
    pub cni_socket: PathBuf,
    /// How pod interfaces are made: `tun` (a TUN tap VPP creates in the pod; needs
    /// `/dev/vhost-net`), `veth` (a veth pair, the host end attached to VPP with af_packet),
    /// or `auto` (tun when `/dev/vhost-net` exists).
    #[arg(
        long,
        global = true,
        env = "CALICO_VPP_POD_INTERFACE",
        value_enum,
        default_value = "auto"
    )]
    pub pod_interface: PodInterfaceKind,
    /// Kubernetes services on VPP's cnat, from the driver's own watch of Services and
    /// EndpointSlices: `on`, `off`, or `auto` (on when the driver runs in a cluster, or
    /// `KUBECONFIG` is set).
    #[arg(
        long,
        global = true,
        env = "CALICO_VPP_SERVICES",
        value_enum,
        default_value = "auto"
    )]
    pub services: ServicesMode,
    /// Pod MTU when the CNI plugin's request sets none.
    #[arg(
        long,
        global = true,
        env = "CALICO_VPP_POD_MTU",
        default_value_t = 1450
    )]
    pub pod_mtu: u32,
}

/// `CALICO_VPP_SERVICES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServicesMode {
    Auto,
    On,
    Off,
}

/// `CALICO_VPP_POD_INTERFACE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PodInterfaceKind {
    Auto,
    Tun,
    Veth,
}

impl Cli {
    /// Parses `args` (first one is the program name) without exiting on error.
    pub fn try_parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        <Cli as Parser>::try_parse_from(args)
    }

    /// Every environment variable the command line reads, with the long flag of the global
    /// setting it feeds (`None` for a subcommand's own argument).
    pub fn env_vars() -> Vec<(String, Option<String>)> {
        use clap::CommandFactory;
        let cmd = Cli::command();
        let mut out = Vec::new();
        for arg in cmd.get_arguments() {
            if let Some(e) = arg.get_env() {
                out.push((
                    e.to_string_lossy().into_owned(),
                    arg.get_long().map(str::to_string),
                ));
            }
        }
        for sub in cmd.get_subcommands() {
            for arg in sub.get_arguments().filter(|a| !a.is_global_set()) {
                if let Some(e) = arg.get_env() {
                    out.push((e.to_string_lossy().into_owned(), None));
                }
            }
        }
        out
    }
}
