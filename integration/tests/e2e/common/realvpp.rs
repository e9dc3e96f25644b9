//! Real VPP instances for the real-VPP tests: each test starts its own VPP from the install
//! prefix named by `CALICO_VPP_TEST_VPP_PREFIX` (an unpacked upstream VPP: `bin/vpp`,
//! `bin/vppctl`, `lib/x86_64-linux-gnu/vpp_plugins`), with its own runtime directory, API
//! socket and api-segment prefix, and can stop and restart it. Pods are network namespaces
//! joined to VPP by a veth pair whose host end VPP attaches with af_packet.
//!
//! The tests that use this are `#[ignore = "needs a real VPP ..."]`: a plain `cargo test`
//! lists them as ignored, and `.ci/run` runs them with `--ignored` after unpacking VPP. Run
//! that way without the variable, they fail with the reason; they never pass by skipping.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use calico_vpp_driver::felix::proto;
use calico_vpp_driver::felix::proto::to_dataplane::Payload;
use calico_vpp_driver::felix::script::envelope;
use vpp_bindings::client::{Client, ClientConfig};

/// The variable that names the VPP install prefix.
pub const PREFIX_ENV: &str = "CALICO_VPP_TEST_VPP_PREFIX";

pub const PYTHON: &str = "python3";

/// The plugins the tests need (everything else stays off, as in `shared/vpp`'s example).
const PLUGINS: &[&str] = &[
    "acl_plugin.so",
    "af_packet_plugin.so",
    "cnat_plugin.so",
    "ipip_plugin.so",
    "npol_plugin.so",
    "ping_plugin.so",
    "vxlan_plugin.so",
];

/// One real-VPP test at a time in a test binary: they measure packets and timing on a
/// 2-core machine, and several VPPs at once would make that flaky.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub fn serialise() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// The VPP install prefix, or a panic that says how to provide one.
pub fn vpp_prefix() -> PathBuf {
    let Some(prefix) = std::env::var_os(PREFIX_ENV) else {
        panic!(
            "this test needs a real VPP: set {PREFIX_ENV} to an unpacked VPP install \
             (e.g. `tar xJf ../shared/vpp/vpp-*.tar.xz -C /opt` and {PREFIX_ENV}=/opt/vpp)"
        );
    };
    let prefix = PathBuf::from(prefix);
    assert!(
        prefix.join("bin/vpp").is_file(),
        "{PREFIX_ENV}={} has no bin/vpp",
        prefix.display()
    );
    prefix
}

/// A short name unique on this host for this process (interface names have 15 bytes).
pub fn unique(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{tag}{:x}{n:x}", std::process::id() & 0xfff)
}

pub fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd} {args:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn must(cmd: &str, args: &[&str]) -> String {
    run(cmd, args).unwrap_or_else(|e| panic!("{e}"))
}

pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A VPP process of the test's own.
pub struct VppInstance {
    prefix: PathBuf,
    dir: tempfile::TempDir,
    name: String,
    child: Option<Child>,
}

impl VppInstance {
    /// Starts a VPP and waits until its API socket answers.
    pub fn start() -> VppInstance {
        let prefix = vpp_prefix();
        let dir = tempfile::Builder::new()
            .prefix("realvpp")
            .tempdir()
            .unwrap();
        // The api-segment prefix is the runtime directory's name, so that a driver given
        // only the API socket's path can find the segment too (see `driver::Driver::spawn`).
        let name = dir
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("realvpp")
            .to_string();
        let mut vpp = VppInstance {
            prefix,
            dir,
            name,
            child: None,
        };
        std::fs::write(vpp.dir.path().join("startup.conf"), vpp.startup_conf()).unwrap();
        vpp.spawn();
        vpp
    }

    fn startup_conf(&self) -> String {
        let run = self.dir.path().display();
        let plugins = self.prefix.join("lib/x86_64-linux-gnu/vpp_plugins");
        let mut enabled = String::new();
        for p in PLUGINS {
            enabled.push_str(&format!("  plugin {p} {{ enable }}\n"));
        }
        format!(
            "unix {{ nodaemon runtime-dir {run} log {run}/vpp.log cli-listen {run}/cli.sock pidfile {run}/vpp.pid }}\n\
             api-segment {{ prefix {name} }}\n\
             socksvr {{ socket-name {run}/api.sock }}\n\
             memory {{ main-heap-size 1G main-heap-page-size 4k }}\n\
             cpu {{ main-core 0 }}\n\
             buffers {{ buffers-per-numa 16384 default data-size 2048 page-size 4k }}\n\
             statseg {{ socket-name {run}/stats.sock size 32m page-size 4k }}\n\
             plugins {{\n  path {plugins}\n  plugin default {{ disable }}\n{enabled}}}\n",
            name = self.name,
            plugins = plugins.display(),
        )
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.socket());
        let log = std::fs::File::create(self.dir.path().join("stdout.log")).unwrap();
        let child = Command::new(self.prefix.join("bin/vpp"))
            .arg("-c")
            .arg(self.dir.path().join("startup.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start VPP from {}: {e}", self.prefix.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.socket().exists() && block_on(self.client()).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("VPP exited at start ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "VPP's API socket did not answer within 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What VPP printed, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    /// VPP's shared-memory API segment prefix.
    pub fn api_prefix(&self) -> &str {
        &self.name
    }

    /// The shared-memory client library of this VPP install.
    pub fn client_library(&self) -> PathBuf {
        self.prefix.join("lib/x86_64-linux-gnu/libvppapiclient.so")
    }

    /// VPP's binary API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("api.sock")
    }

    /// A directory that lives as long as this VPP (for the driver's state file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A new API client of this VPP.
    pub async fn client(&self) -> Result<Client, String> {
        let config = ClientConfig {
            name: "realvpp-test".into(),
            ..Default::default()
        };
        Client::connect(&self.socket(), config)
            .await
            .map_err(|e| format!("connect {}: {e}", self.socket().display()))
    }

    /// A VPP CLI command through the API (`cli_inband`); its output.
    pub fn cli(&self, cmd: &str) -> String {
        use vpp_bindings::gen::vlib::CliInband;
        block_on(async {
            let client = self.client().await?;
            let r = client
                .request(&CliInband { cmd: cmd.into() })
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(r.reply)
        })
        .unwrap_or_else(|e| panic!("VPP CLI {cmd:?}: {e}"))
    }

    /// Stops VPP (SIGTERM, then SIGKILL) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on a child process id this process spawned and has not reaped.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops VPP and starts it again with the same configuration (empty, as after a crash).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for VppInstance {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A network namespace `ns` (replaced if it exists) with a veth pair: `<ns>-host` in the
/// root namespace (up) and `<ns>-ns` inside; their names.
fn netns_veth(ns: &str) -> (String, String) {
    let host_if = format!("{ns}-host");
    let pod_if = format!("{ns}-ns");
    let _ = run("ip", &["netns", "del", ns]);
    let _ = run("ip", &["link", "del", &host_if]);
    must("ip", &["netns", "add", ns]);
    must(
        "ip",
        &[
            "link", "add", &host_if, "type", "veth", "peer", "name", &pod_if,
        ],
    );
    must("ip", &["link", "set", &pod_if, "netns", ns]);
    must("ip", &["link", "set", &host_if, "up"]);
    (host_if, pod_if)
}

/// The MAC address of `ifname` in namespace `ns`.
fn link_mac(ns: &str, ifname: &str) -> String {
    must(
        "ip",
        &[
            "netns",
            "exec",
            ns,
            "cat",
            &format!("/sys/class/net/{ifname}/address"),
        ],
    )
    .trim()
    .to_string()
}

/// A pod: a network namespace with `eth0`-like veth end inside, the other end attached to VPP
/// as `host-<host_if>` with the pod's gateway addresses. Felix's endpoint name for it is
/// `host_if` (the driver binds `host-<name>`).
pub struct Pod {
    pub ns: String,
    pub host_if: String,
    pub pod_if: String,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
    pub mac: String,
    /// VPP's addresses on the pod's link.
    pub gw4: Ipv4Addr,
    pub gw6: Ipv6Addr,
}

impl Pod {
    /// Pod `n` (1..=250) with a name of its own: 10.80.n.2/24 and fd80:n::2/64, gateways .1
    /// and ::1 on VPP.
    pub fn attach(vpp: &VppInstance, n: u8) -> Pod {
        Pod::attach_as(vpp, &unique("p"), [10, 80, n], &format!("fd80:{n:x}"))
    }

    /// A pod in namespace `ns` (replaced if it exists), veth `<ns>-host` (VPP's
    /// `host-<ns>-host`) / `<ns>-ns`, with `<net>.2/24` and `<net6>::2/64`; VPP holds `.1`
    /// and `::1`.
    pub fn attach_as(vpp: &VppInstance, ns: &str, net: [u8; 3], net6: &str) -> Pod {
        let (host_if, pod_if) = netns_veth(ns);
        let [a, b, c] = net;
        let v4 = Ipv4Addr::new(a, b, c, 2);
        let v6: Ipv6Addr = format!("{net6}::2").parse().unwrap();
        // Keep the kernel from answering for the pod's addresses on the host end.
        let _ = run(
            "sysctl",
            &["-qw", &format!("net.ipv6.conf.{host_if}.disable_ipv6=1")],
        );
        let steps: Vec<Vec<String>> = vec![
            vec!["link".into(), "set".into(), "lo".into(), "up".into()],
            vec!["link".into(), "set".into(), pod_if.clone(), "up".into()],
            vec![
                "addr".into(),
                "add".into(),
                format!("{v4}/24"),
                "dev".into(),
                pod_if.clone(),
            ],
            vec![
                "-6".into(),
                "addr".into(),
                "add".into(),
                format!("{v6}/64"),
                "dev".into(),
                pod_if.clone(),
                "nodad".into(),
            ],
            vec![
                "route".into(),
                "add".into(),
                "default".into(),
                "via".into(),
                format!("{a}.{b}.{c}.1"),
            ],
            vec![
                "-6".into(),
                "route".into(),
                "add".into(),
                "default".into(),
                "via".into(),
                format!("{net6}::1"),
            ],
        ];
        for s in steps {
            let mut args: Vec<&str> = vec!["-n", ns];
            args.extend(s.iter().map(String::as_str));
            must("ip", &args);
        }
        let mac = link_mac(ns, &pod_if);
        let pod = Pod {
            ns: ns.to_string(),
            host_if,
            pod_if,
            v4,
            v6,
            mac,
            gw4: Ipv4Addr::new(a, b, c, 1),
            gw6: format!("{net6}::1").parse().unwrap(),
        };
        pod.plug_into(vpp);
        pod
    }

    /// A pod as Calico's CNI wires one: its address alone (`v4`/32), its default route via
    /// the link-local gateway 169.254.1.1 (VPP's MAC, a permanent neighbour), and, on VPP's
    /// side, no address and no subnet: the interface borrows `borrow`'s addresses
    /// (unnumbered). Only a route to `v4` out of its interface reaches it.
    pub fn attach_bare(vpp: &VppInstance, ns: &str, v4: Ipv4Addr, borrow: &str) -> Pod {
        let (host_if, pod_if) = netns_veth(ns);
        let gw = "169.254.1.1";
        let mut pod = Pod {
            ns: ns.to_string(),
            host_if,
            pod_if: pod_if.clone(),
            v4,
            v6: Ipv6Addr::UNSPECIFIED,
            mac: String::new(),
            gw4: gw.parse().unwrap(),
            gw6: Ipv6Addr::UNSPECIFIED,
        };
        let vpp_mac = pod.vpp_mac();
        let mac = vpp_mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        for s in [
            vec!["link", "set", "lo", "up"],
            vec!["link", "set", &pod_if, "up"],
            vec!["addr", "add", &format!("{v4}/32"), "dev", &pod_if],
            vec!["route", "add", gw, "dev", &pod_if],
            vec![
                "neigh",
                "add",
                gw,
                "lladdr",
                &mac,
                "dev",
                &pod_if,
                "nud",
                "permanent",
            ],
            vec!["route", "add", "default", "via", gw, "dev", &pod_if],
        ] {
            let mut args: Vec<&str> = vec!["-n", ns];
            args.extend(s);
            must("ip", &args);
        }
        pod.mac = link_mac(ns, &pod_if);
        attach_af_packet(vpp, &pod.host_if, vpp_mac, &[]);
        let unnumbered = vpp.cli(&format!(
            "set interface unnumbered host-{} use {borrow}",
            pod.host_if
        ));
        assert!(unnumbered.trim().is_empty(), "unnumbered: {unnumbered}");
        pod
    }

    /// Attaches the host end to `vpp` (again, after a VPP restart) with the gateway addresses.
    pub fn plug_into(&self, vpp: &VppInstance) {
        attach_af_packet(
            vpp,
            &self.host_if,
            self.vpp_mac(),
            &[(self.gw4.into(), 24), (self.gw6.into(), 64)],
        );
    }

    /// VPP's MAC on the pod's link: locally administered, from the pod's name.
    fn vpp_mac(&self) -> [u8; 6] {
        let h = self.ns.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let b = h.to_be_bytes();
        [0x02, 0xfe, b[0], b[1], b[2], b[3]]
    }

    /// Felix's endpoint for this pod (`k8s`, `workload_id`, `eth0`): its interface, MAC and
    /// IPv4 address (and IPv6 with `v6`), profile `profile`.
    pub fn endpoint(&self, workload_id: &str, profile: &str, v6: bool) -> proto::ToDataplane {
        envelope(Payload::WorkloadEndpointUpdate(
            proto::WorkloadEndpointUpdate {
                id: Some(proto::WorkloadEndpointId {
                    orchestrator_id: "k8s".into(),
                    workload_id: workload_id.into(),
                    endpoint_id: "eth0".into(),
                }),
                endpoint: Some(proto::WorkloadEndpoint {
                    state: "active".into(),
                    name: self.host_if.clone(),
                    mac: self.mac.clone(),
                    profile_ids: vec![profile.into()],
                    ipv4_nets: vec![format!("{}/32", self.v4)],
                    ipv6_nets: if v6 {
                        vec![format!("{}/128", self.v6)]
                    } else {
                        Vec::new()
                    },
                    ..Default::default()
                }),
            },
        ))
    }

    /// Runs a Python program in the pod's namespace; its exit status and stdout.
    pub fn python(&self, code: &str, args: &[&str]) -> (bool, String) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, PYTHON, "-c", code]);
        cmd.args(args);
        let out = cmd.stderr(Stdio::null()).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Starts a Python program in the pod's namespace in the background.
    pub fn spawn_python(&self, code: &str, args: &[&str]) -> Background {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, PYTHON, "-c", code])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Background(child)
    }

    /// ICMP echo requests to `dst` (v4 or v6) with echo identifier `ident`, `count` of them
    /// one after another (the same flow); how many were answered.
    pub fn ping(&self, dst: &str, ident: u16, count: u32) -> u32 {
        self.ping_code(dst, ident, count, 0)
    }

    /// [`ping`](Self::ping) with ICMP code `code` in the requests.
    pub fn ping_code(&self, dst: &str, ident: u16, count: u32, code: u8) -> u32 {
        let (_, out) = self.python(
            PING,
            &[
                dst,
                &ident.to_string(),
                &count.to_string(),
                &code.to_string(),
            ],
        );
        out.trim().parse().unwrap_or(0)
    }

    /// One TCP connection to `dst`:`port`: did the handshake complete?
    pub fn connects(&self, dst: &str, port: u16) -> bool {
        let code = format!(
            "import socket\nsocket.create_connection(('{dst}',{port}),timeout=1.2).close()"
        );
        self.python(&code, &[]).0
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.ns]);
        let _ = run("ip", &["link", "del", &self.host_if]);
    }
}

/// Felix's IPAM pool `cidr` (id as Calico writes it), VXLAN never.
pub fn ipam_pool(cidr: &str, masquerade: bool, ipip_mode: &str) -> proto::ToDataplane {
    envelope(Payload::IpamPoolUpdate(proto::IpamPoolUpdate {
        id: cidr.replace('/', "-"),
        pool: Some(proto::IpamPool {
            cidr: cidr.into(),
            masquerade,
            ipip_mode: ipip_mode.into(),
            vxlan_mode: "Never".into(),
            ..Default::default()
        }),
    }))
}

/// A node running Felix's Linux dataplane, as far as a test needs one: a network namespace
/// holding one end of the fabric (with the node's address) and a "pod" address on its
/// loopback. What its dataplane programs (tunnel devices, routes) is the test's. Deleted
/// when dropped.
pub struct LinuxNode {
    pub ns: String,
    pub pod: String,
}

impl LinuxNode {
    pub fn new(fabric_end: &str, node_cidr: &str, pod: &str) -> LinuxNode {
        let ns = unique("ln");
        let _ = run("ip", &["netns", "del", &ns]);
        must("ip", &["netns", "add", &ns]);
        must("ip", &["link", "set", fabric_end, "netns", &ns]);
        let node = LinuxNode {
            ns,
            pod: pod.to_string(),
        };
        node.ip(&["link", "set", "lo", "up"]);
        node.ip(&["link", "set", fabric_end, "up"]);
        node.ip(&["addr", "add", node_cidr, "dev", fabric_end]);
        node.ip(&["addr", "add", &format!("{pod}/32"), "dev", "lo"]);
        node
    }

    /// `ip -n <ns> <args>`; panics with the reason on failure.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.ns.as_str()];
        all.extend_from_slice(args);
        must("ip", &all);
    }

    /// Runs `cmd` in the namespace; its stdout.
    pub fn exec(&self, cmd: &[&str]) -> String {
        let mut all = vec!["netns", "exec", self.ns.as_str()];
        all.extend_from_slice(cmd);
        must("ip", &all)
    }

    /// Whether a TCP connection from the node's pod address to `dst`:`port` opens.
    pub fn connects(&self, dst: &str, port: u16) -> bool {
        let code = format!(
            "import socket\nsocket.create_connection(('{dst}',{port}),timeout=1.2,\
             source_address=('{}',0)).close()",
            self.pod
        );
        Command::new("ip")
            .args(["netns", "exec", &self.ns, PYTHON, "-c", &code])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts a Python program in the namespace in the background (its stdout piped).
    pub fn spawn_python(&self, code: &str, args: &[&str]) -> Background {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, PYTHON, "-c", code])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Background(child)
    }

    /// What arrives on `ifname` in the namespace while `during` runs (see [`sniff`]).
    pub fn sniff(&self, ifname: &str, proto: u8, during: impl FnOnce()) -> Vec<String> {
        sniff(Some(&self.ns), ifname, proto, during)
    }
}

impl Drop for LinuxNode {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.ns]);
    }
}

/// What arrives on `ifname` (in namespace `ns`, else the root one) while `during` runs: one
/// line per IPv4 packet of protocol `proto` (see [`SNIFF`]: source, destination, header
/// length, and for IP-in-IP the inner protocol).
pub fn sniff(ns: Option<&str>, ifname: &str, proto: u8, during: impl FnOnce()) -> Vec<String> {
    let proto = proto.to_string();
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, PYTHON]);
            c
        }
        None => Command::new(PYTHON),
    };
    let child = cmd
        .args(["-c", SNIFF, ifname, "3", &proto])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    during();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Felix's profile `name` for test pods: inbound everything, or only TCP to port 8080;
/// outbound everything.
pub fn profile_allowing(name: &str, only_8080: bool) -> proto::ToDataplane {
    let inbound = proto::Rule {
        action: "allow".into(),
        protocol: only_8080.then(|| proto::Protocol {
            number_or_name: Some(proto::protocol::NumberOrName::Name("tcp".into())),
        }),
        dst_ports: if only_8080 {
            vec![proto::PortRange {
                first: 8080,
                last: 8080,
            }]
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    envelope(Payload::ActiveProfileUpdate(proto::ActiveProfileUpdate {
        id: Some(proto::ProfileId { name: name.into() }),
        profile: Some(proto::Profile {
            inbound_rules: vec![inbound],
            outbound_rules: vec![proto::Rule {
                action: "allow".into(),
                ..Default::default()
            }],
        }),
    }))
}

/// A background process, killed on drop.
pub struct Background(Child);

impl Background {
    /// Starts `cmd` with no standard input or output.
    pub fn spawn(cmd: &mut Command) -> Background {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Background(child)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Attaches the root namespace's interface `host_if` to `vpp` with af_packet (VPP names it
/// `host-<host_if>`), with MAC `mac` and `addrs`, admin up, in interrupt mode; its index.
pub fn attach_af_packet(
    vpp: &VppInstance,
    host_if: &str,
    mac: [u8; 6],
    addrs: &[(std::net::IpAddr, u8)],
) -> u32 {
    use vpp_bindings::gen::af_packet::{AfPacketCreateV3, AfPacketFlags, AfPacketMode};
    use vpp_bindings::gen::ethernet_types::MacAddress;
    use vpp_bindings::gen::interface::{
        SwInterfaceAddDelAddress, SwInterfaceSetFlags, SwInterfaceSetRxMode,
    };
    use vpp_bindings::gen::interface_types::{IfStatusFlags, RxMode};
    use vpp_bindings::gen::ip_types::Prefix;
    block_on(async {
        let client = vpp.client().await?;
        let r = client
            .request(&AfPacketCreateV3 {
                mode: AfPacketMode::AfPacketApiModeEthernet,
                // The same MAC every time: after a VPP restart the pod's ARP and ND
                // entries for its gateway stay right, as they do with a TUN pod.
                hw_addr: MacAddress(mac),
                use_random_hw_addr: false,
                host_if_name: host_if.to_string(),
                flags: AfPacketFlags::AF_PACKET_API_FLAG_QDISC_BYPASS
                    | AfPacketFlags::AF_PACKET_API_FLAG_CKSUM_GSO,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        if r.retval != 0 {
            return Err(format!("af_packet_create_v3 {host_if}: {}", r.retval));
        }
        let sw_if_index = r.sw_if_index;
        for (address, len) in addrs {
            let rv = client
                .request(&SwInterfaceAddDelAddress {
                    sw_if_index,
                    is_add: true,
                    del_all: false,
                    prefix: Prefix {
                        address: (*address).into(),
                        len: *len,
                    },
                })
                .await
                .map_err(|e| e.to_string())?
                .retval;
            if rv != 0 {
                return Err(format!("address on {host_if}: {rv}"));
            }
        }
        let rv = client
            .request(&SwInterfaceSetFlags {
                sw_if_index,
                flags: IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP,
            })
            .await
            .map_err(|e| e.to_string())?
            .retval;
        if rv != 0 {
            return Err(format!("admin up {host_if}: {rv}"));
        }
        // Interrupt mode: VPP does not spin a core polling the socket.
        client
            .request(&SwInterfaceSetRxMode {
                sw_if_index,
                mode: RxMode::RxModeApiInterrupt,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(sw_if_index)
    })
    .unwrap_or_else(|e: String| panic!("{e}"))
}

/// A veth pair in the root namespace joining two VPPs (or a VPP and something else): the
/// nodes' fabric. Deleted when dropped.
pub struct Wire {
    pub a: String,
    pub b: String,
}

impl Wire {
    pub fn new() -> Wire {
        let tag = unique("w");
        let (a, b) = (format!("{tag}a"), format!("{tag}b"));
        let _ = run("ip", &["link", "del", &a]);
        must(
            "ip",
            &["link", "add", &a, "type", "veth", "peer", "name", &b],
        );
        for end in [&a, &b] {
            must("ip", &["link", "set", end, "up"]);
            let _ = run(
                "sysctl",
                &["-qw", &format!("net.ipv6.conf.{end}.disable_ipv6=1")],
            );
        }
        Wire { a, b }
    }
}

/// A fabric link for `vpp`'s uplink: a new [`Wire`] whose `a` end VPP takes with
/// af_packet (MAC `mac`, address `node_ip`/24); the wire and the uplink's VPP name.
pub fn uplink_wire(vpp: &VppInstance, mac: [u8; 6], node_ip: &str) -> (Wire, String) {
    let wire = Wire::new();
    attach_af_packet(vpp, &wire.a, mac, &[(node_ip.parse().unwrap(), 24)]);
    let uplink = format!("host-{}", wire.a);
    (wire, uplink)
}

impl Drop for Wire {
    fn drop(&mut self) {
        let _ = run("ip", &["link", "del", &self.a]);
    }
}

/// Reads frames arriving on a root-namespace interface for argv[2] seconds and prints one
/// line per IPv4 packet of protocol argv[3]: outer source, destination, header length,
/// inner protocol.
pub const SNIFF: &str = r#"
import socket, sys, time, select
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3))
s.bind((sys.argv[1], 0))
end = time.time() + float(sys.argv[2])
proto = int(sys.argv[3])
while time.time() < end:
    r, _, _ = select.select([s], [], [], max(0, end - time.time()))
    if not r: break
    f = s.recv(4096)
    if len(f) < 34 or f[12:14] != b"\x08\x00": continue
    ip = f[14:]
    if ip[9] != proto: continue
    ihl = (ip[0] & 15) * 4
    inner = ip[ihl + 9] if len(ip) > ihl + 9 else -1
    print(socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20]), ihl, inner, flush=True)
"#;

/// A TCP server accepting (and closing) connections on the given ports (argv).
pub const TCP_SERVER: &str = r#"
import socket, select, sys
ls = []
for p in sys.argv[1:]:
    for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(fam)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, int(p)))
        s.listen(64)
        ls.append(s)
while True:
    for s in select.select(ls, [], [])[0]:
        c, _ = s.accept()
        c.close()
"#;

/// Echo requests on a raw socket: argv dst, identifier, count, code. Prints how many echo replies
/// with that identifier came back, each awaited up to 0.8 s. The kernel's own ping is not
/// used: the identifier must be chosen (a new one is a new flow for VPP) and kept.
const PING: &str = r#"
import socket, struct, sys, time, select
dst, ident, count, code = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
v6 = ":" in dst
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16: t = (t >> 16) + (t & 0xFFFF)
    return ~t & 0xFFFF
if v6:
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    req, rep = 128, 129
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    req, rep = 8, 0
got = 0
for seq in range(count):
    body = struct.pack("!HH", ident, seq) + b"calico-vpp-icmp"
    hdr = struct.pack("!BBH", req, code, 0)
    c = 0 if v6 else csum(hdr + body)
    s.sendto(struct.pack("!BBH", req, code, c) + body, (dst, 0))
    end = time.time() + 0.8
    while time.time() < end:
        r, _, _ = select.select([s], [], [], max(0, end - time.time()))
        if not r: break
        data = s.recv(2048)
        if not v6: data = data[(data[0] & 15) * 4:]
        if len(data) >= 8 and data[0] == rep and struct.unpack("!HH", data[4:8]) == (ident, seq):
            got += 1
            break
print(got)
"#;

/// Felix's start of a one-node session: this node is `node1`, its address `node_ip`/24.
pub fn node1(node_ip: &str) -> Vec<proto::ToDataplane> {
    vec![
        envelope(Payload::ConfigUpdate(proto::ConfigUpdate {
            config: calico_vpp_driver::felix::script::labels(&[("FelixHostname", "node1")]),
            ..Default::default()
        })),
        envelope(Payload::HostMetadataUpdate(proto::HostMetadataUpdate {
            hostname: "node1".into(),
            ipv4_addr: format!("{node_ip}/24"),
            ..Default::default()
        })),
    ]
}

/// Felix's endpoint for a pod the driver wired (`k8s`, `workload`, `eth0`): interface
/// `name`, IPv4 `ip`, profile `profile`, and no MAC (the Kubernetes datastore sends none).
pub fn cni_endpoint(workload: &str, name: &str, ip: &str, profile: &str) -> proto::ToDataplane {
    envelope(Payload::WorkloadEndpointUpdate(
        proto::WorkloadEndpointUpdate {
            id: Some(proto::WorkloadEndpointId {
                orchestrator_id: "k8s".into(),
                workload_id: workload.into(),
                endpoint_id: "eth0".into(),
            }),
            endpoint: Some(proto::WorkloadEndpoint {
                state: "active".into(),
                name: name.into(),
                profile_ids: vec![profile.into()],
                ipv4_nets: vec![format!("{ip}/32")],
                ..Default::default()
            }),
        },
    ))
}

/// How many interfaces VPP has (`show interface`'s unindented lines, header left out).
pub fn interface_count(vpp: &VppInstance) -> usize {
    vpp.cli("show interface")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(' ') && !l.trim_start().starts_with("Name"))
        .count()
}
