//! Throw-away network namespaces for the tests: each test gets a "host"
//! namespace (standing in for the driver's own, so no veth ever lands in the
//! machine's real namespace) and a "pod" namespace, both named after the
//! test and the process id so tests can run in parallel, and both deleted on
//! drop. Inspection goes through `ip`, `ethtool` and /proc, independently of
//! the code under test.

use std::{
    fs::File,
    os::fd::AsRawFd,
    path::PathBuf,
    process::{Command, Output},
    thread,
};

pub struct Namespaces {
    pub host: String,
    pub pod: String,
    extra: Vec<String>,
    tag: &'static str,
}

impl Namespaces {
    /// `tag` must be unique per test and at most 6 characters.
    pub fn new(tag: &'static str) -> Self {
        assert!(
            tag.len() <= 6,
            "tag {tag} is too long for an interface name"
        );
        let pid = std::process::id();
        let ns = Self {
            host: format!("pnt-{pid}-{tag}-host"),
            pod: format!("pnt-{pid}-{tag}-pod"),
            extra: Vec::new(),
            tag,
        };
        add_netns(&ns.host);
        add_netns(&ns.pod);
        ns
    }

    /// Another namespace, deleted with the others.
    pub fn add_extra(&mut self, suffix: &str) -> String {
        let name = format!("pnt-{}-{}-{suffix}", std::process::id(), self.tag);
        add_netns(&name);
        self.extra.push(name.clone());
        name
    }

    pub fn pod_path(&self) -> PathBuf {
        netns_path(&self.pod)
    }

    /// A host interface name unique to this test and process, ≤ 15 bytes.
    pub fn host_ifname(&self) -> String {
        let name = format!("pn{:x}{}", std::process::id(), self.tag);
        assert!(name.len() <= 15, "{name} is too long");
        name
    }

    /// Runs `f` on a thread that has joined the "host" namespace, as the
    /// driver runs in its own namespace.
    pub fn in_host<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.host, f)
    }

    /// `ip -n <ns> <args>`, which must succeed; its stdout.
    pub fn ip(&self, ns: &str, args: &str) -> String {
        let mut cmd = Command::new("ip");
        cmd.arg("-n").arg(ns).args(args.split_whitespace());
        stdout_of(cmd)
    }

    /// `ip netns exec <ns> <args>`, which must succeed; its stdout.
    pub fn exec(&self, ns: &str, args: &[&str]) -> String {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(args);
        stdout_of(cmd)
    }

    /// The content of a /proc/sys file as seen from inside `ns`.
    pub fn sysctl(&self, ns: &str, key: &str) -> String {
        self.exec(ns, &["cat", &format!("/proc/sys/{key}")])
            .trim()
            .to_string()
    }

    /// Names of the links in `ns`.
    pub fn links(&self, ns: &str) -> Vec<String> {
        self.ip(ns, "-o link show")
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name).to_string())
            .collect()
    }

    /// What a pod's wiring looks like from the outside, with everything the
    /// kernel changes on its own (counters, link-local addresses) left out.
    pub fn pod_snapshot(&self, ifname: &str) -> String {
        let addrs: Vec<String> = self
            .ip(&self.pod, &format!("-o addr show dev {ifname}"))
            .lines()
            .filter(|l| l.contains("scope global"))
            .map(str::to_string)
            .collect();
        format!(
            "{}\n{}\n{}\n{}\n{}",
            addrs.join("\n"),
            self.ip(&self.pod, "-4 route show table main"),
            self.ip(&self.pod, "-6 route show table main"),
            self.ip(&self.pod, "neigh show nud permanent"),
            self.link_summary(&self.pod, ifname),
        )
    }

    /// `ip -o link show` of one link without its flags and operational state:
    /// the kernel settles those asynchronously (linkwatch), so right after a
    /// change a veth may still read NO-CARRIER/DOWN for up to a second.
    pub fn link_summary(&self, ns: &str, ifname: &str) -> String {
        let line = self.ip(ns, &format!("-o link show dev {ifname}"));
        line.split_whitespace()
            .filter(|word| !word.starts_with('<'))
            .collect::<Vec<_>>()
            .join(" ")
            .replace("state UP ", "")
            .replace("state DOWN ", "")
            .replace("state LOWERLAYERDOWN ", "")
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.host, &self.pod].into_iter().chain(&self.extra) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

pub fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/var/run/netns").join(name)
}

/// Runs `f` on a thread that has joined the named namespace.
pub fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    let file = File::open(netns_path(name)).expect("open test namespace");
    thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: `file` is an open namespace file for the whole
                // call; setns only moves this short-lived thread.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn add_netns(name: &str) {
    // A leftover from a crashed run with the same pid would make `add` fail.
    let _ = Command::new("ip").args(["netns", "del", name]).output();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "add", name]);
    stdout_of(cmd);
}

fn stdout_of(mut cmd: Command) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run command");
    assert!(
        status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&stderr)
    );
    String::from_utf8_lossy(&stdout).into_owned()
}

pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
