//! A VPP of the test's own, from the install prefix in `CALICO_VPP_TEST_VPP_PREFIX`: private
//! runtime directory, API socket and api-segment prefix, no hugepages. Killed (and its
//! shared-memory segments removed) on drop. Shared by tests/shm_realvpp.rs and the
//! transports bench.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PREFIX_ENV: &str = "CALICO_VPP_TEST_VPP_PREFIX";

/// The install prefix, or a panic saying how to provide one (never a silent skip).
pub fn vpp_prefix() -> PathBuf {
    let Some(prefix) = std::env::var_os(PREFIX_ENV) else {
        panic!(
            "this needs a real VPP: set {PREFIX_ENV} to an unpacked VPP install \
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

pub fn client_library(prefix: &Path) -> PathBuf {
    prefix.join("lib/x86_64-linux-gnu/libvppapiclient.so")
}

pub struct Vpp {
    pub prefix: PathBuf,
    pub dir: tempfile::TempDir,
    /// The api-segment prefix.
    pub name: String,
    child: Option<Child>,
}

impl Vpp {
    pub fn start(tag: &str) -> Vpp {
        let prefix = vpp_prefix();
        let dir = tempfile::Builder::new().prefix("shmvpp").tempdir().unwrap();
        let name = format!("{tag}{}", std::process::id());
        let run = dir.path().display().to_string();
        let plugins = prefix.join("lib/x86_64-linux-gnu/vpp_plugins");
        let conf = format!(
            "unix {{ nodaemon runtime-dir {run} log {run}/vpp.log cli-listen {run}/cli.sock pidfile {run}/vpp.pid }}\n\
             api-segment {{ prefix {name} }}\n\
             socksvr {{ socket-name {run}/api.sock }}\n\
             memory {{ main-heap-size 1G main-heap-page-size 4k }}\n\
             cpu {{ main-core 0 }}\n\
             buffers {{ buffers-per-numa 16384 default data-size 2048 page-size 4k }}\n\
             statseg {{ socket-name {run}/stats.sock size 32m page-size 4k }}\n\
             plugins {{\n  path {plugins}\n  plugin default {{ disable }}\n  plugin npol_plugin.so {{ enable }}\n}}\n",
            plugins = plugins.display(),
        );
        std::fs::write(dir.path().join("startup.conf"), conf).unwrap();
        let log = std::fs::File::create(dir.path().join("stdout.log")).unwrap();
        let child = Command::new(prefix.join("bin/vpp"))
            .arg("-c")
            .arg(dir.path().join("startup.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start VPP from {}: {e}", prefix.display()));
        let mut vpp = Vpp {
            prefix,
            dir,
            name,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(vpp.socket().exists() && vpp.segment().exists()) {
            if let Some(status) = vpp.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("VPP exited at start ({status}):\n{}", vpp.log());
            }
            assert!(
                Instant::now() < deadline,
                "VPP did not start:\n{}",
                vpp.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The socket appears once the API is being served.
        std::thread::sleep(Duration::from_millis(200));
        vpp
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("api.sock")
    }

    pub fn segment(&self) -> PathBuf {
        PathBuf::from(format!("/dev/shm/{}-vpe-api", self.name))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    /// A CLI command's output (`vppctl` on the instance's CLI socket).
    pub fn cli(&self, cmd: &str) -> String {
        let out = Command::new(self.prefix.join("bin/vppctl"))
            .arg("-s")
            .arg(self.dir.path().join("cli.sock"))
            .args(cmd.split_whitespace())
            .output()
            .unwrap_or_else(|e| panic!("vppctl {cmd}: {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// SIGKILL, as a crash would: VPP gets no chance to tell its clients.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for seg in ["vpe-api", "global_vm"] {
            let _ = std::fs::remove_file(format!("/dev/shm/{}-{seg}", self.name));
        }
    }
}

impl Drop for Vpp {
    fn drop(&mut self) {
        self.kill();
    }
}
