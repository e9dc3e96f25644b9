//! The real driver binary started exactly as Felix starts it: no arguments, `ToDataplane` on
//! fd 3, `FromDataplane` on fd 4. And the same through `run --felix-socket` with `felix-proxy`
//! as the Felix-side driver. No VPP is needed: the driver runs with CALICO_VPP_DATAPLANE=none.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use calico_vpp_driver::felix::codec::encode_to_dataplane;
use calico_vpp_driver::felix::proto;
use calico_vpp_driver::felix::proto::from_dataplane::Payload as Out;
use calico_vpp_driver::felix::proto::to_dataplane::Payload;
use calico_vpp_driver::felix::script::{self, ClusterShape};

use crate::common;
use common::driver::{driver_bin, read_frame, spawn_with_felix_fds};

/// A driver process with Felix's side of its pipes.
struct Driver {
    child: Child,
    to_driver: Option<File>,
    frames: mpsc::Receiver<proto::FromDataplane>,
    stderr: mpsc::Receiver<String>,
    log: String,
}

/// Starts the driver with `ToDataplane` on fd 3 and `FromDataplane` on fd 4, as Felix does.
fn spawn_with_fds(args: &[&str], env: &[(&str, &str)]) -> Driver {
    spawn_program(driver_bin(), args, env)
}

fn spawn_program(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Driver {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_remove("CALICO_VPP_LOG_LEVEL")
        .env("CALICO_VPP_DATAPLANE", "none")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (mut child, felix_w, mut from_driver) = spawn_with_felix_fds(cmd);
    let (ftx, frames) = mpsc::channel();
    std::thread::spawn(move || {
        while let Some(msg) = read_frame(&mut from_driver) {
            if ftx.send(msg).is_err() {
                return;
            }
        }
    });
    let (etx, stderr) = mpsc::channel();
    let mut err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0
                || etx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
            {
                return;
            }
        }
    });
    Driver {
        child,
        to_driver: Some(felix_w),
        frames,
        stderr,
        log: String::new(),
    }
}

impl Driver {
    fn send(&mut self, msgs: &[proto::ToDataplane]) {
        let mut bytes = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            let mut m = m.clone();
            m.sequence_number = i as u64;
            bytes.extend_from_slice(&encode_to_dataplane(&m));
        }
        self.send_raw(&bytes);
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.to_driver
            .as_mut()
            .expect("pipe open")
            .write_all(bytes)
            .expect("write to driver");
    }

    fn close(&mut self) {
        self.to_driver = None;
    }

    /// The next frame that matches `pred`, within `timeout`.
    fn wait_frame(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&proto::FromDataplane) -> bool,
    ) -> proto::FromDataplane {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.frames.recv_timeout(left) {
                Ok(m) if pred(&m) => return m,
                Ok(_) => continue,
                Err(e) => panic!(
                    "no matching frame within {timeout:?} ({e}); log:\n{}",
                    self.drain_log()
                ),
            }
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "did not exit within {timeout:?}; log:\n{}",
                    self.drain_log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn drain_log(&mut self) -> &str {
        // Give the stderr reader a moment after an exit.
        let deadline = Instant::now() + Duration::from_millis(500);
        while let Ok(s) = self
            .stderr
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.log.push_str(&s);
        }
        &self.log
    }

    fn sigterm(&self) {
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_heartbeat(m: &proto::FromDataplane) -> bool {
    matches!(m.payload, Some(Out::ProcessStatusUpdate(_)))
}

fn config(pairs: &[(&str, &str)]) -> proto::ToDataplane {
    script::envelope(Payload::ConfigUpdate(proto::ConfigUpdate {
        config: script::labels(pairs),
        ..Default::default()
    }))
}

/// A frame whose bytes are not a protobuf message (field 1 with the unused wire type 7).
fn malformed_frame() -> Vec<u8> {
    let body = [0x0f, 0xff, 0xff, 0xff];
    let mut f = (body.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(&body);
    f
}

/// The realistic session both transports are checked with: heartbeat at start, a full
/// snapshot, InSync, deltas, a malformed frame that must be skipped, then proof that the
/// driver still processes input (a new reporting interval takes effect).
fn realistic_session(d: &mut Driver) {
    let first = d.wait_frame(Duration::from_secs(10), |_| true);
    assert!(
        is_heartbeat(&first),
        "first frame is the heartbeat: {first:?}"
    );
    let Some(Out::ProcessStatusUpdate(p)) = first.payload else {
        unreachable!()
    };
    assert!(p.iso_timestamp.contains('T'), "{}", p.iso_timestamp);
    assert!(p.uptime >= 0.0 && p.uptime < 60.0);

    let shape = ClusterShape::default();
    let mut stream = script::snapshot(&shape);
    stream.push(script::in_sync());
    stream.extend(script::deltas(&shape, 200));
    d.send(&stream);
    d.send_raw(&malformed_frame());
    d.send(&[config(&[
        ("ReportingIntervalSecs", "1"),
        ("LogSeverityScreen", "Info"),
    ])]);
    // Heartbeats now come every second: the driver read past the malformed frame.
    let t0 = Instant::now();
    d.wait_frame(Duration::from_secs(5), is_heartbeat);
    d.wait_frame(Duration::from_secs(5), is_heartbeat);
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn driver_on_fds_runs_a_felix_session_and_exits_0_on_clean_eof() {
    let mut d = spawn_with_fds(&[], &[]);
    realistic_session(&mut d);
    d.close();
    let st = d.wait_exit(Duration::from_secs(5));
    let log = d.drain_log().to_string();
    assert_eq!(st.code(), Some(0), "log:\n{log}");
    assert!(log.contains("Felix snapshot complete"), "{log}");
    assert!(log.contains("undecodable=1"), "{log}");
    assert!(log.contains("unconvertible=0"), "{log}");
}

#[test]
fn oversized_frame_length_is_fatal_and_names_the_limit() {
    let mut d = spawn_with_fds(&[], &[("CALICO_VPP_MAX_FRAME_BYTES", "1048576")]);
    d.wait_frame(Duration::from_secs(10), is_heartbeat);
    d.send_raw(&(2u64 << 20).to_le_bytes());
    let st = d.wait_exit(Duration::from_secs(5));
    let log = d.drain_log().to_string();
    assert_ne!(st.code(), Some(0), "log:\n{log}");
    assert!(log.contains("maximum frame size of 1048576 bytes"), "{log}");
    assert!(log.contains("CALICO_VPP_MAX_FRAME_BYTES"), "{log}");
}

#[test]
fn eof_inside_a_frame_is_fatal() {
    let mut d = spawn_with_fds(&[], &[]);
    d.wait_frame(Duration::from_secs(10), is_heartbeat);
    d.send(&[script::in_sync()]);
    let mut half = (100u64).to_le_bytes().to_vec();
    half.extend_from_slice(&[1, 2, 3]);
    d.send_raw(&half);
    d.close();
    let st = d.wait_exit(Duration::from_secs(5));
    let log = d.drain_log().to_string();
    assert_ne!(st.code(), Some(0), "log:\n{log}");
    assert!(log.contains("stream ended inside a frame"), "{log}");
}

#[test]
fn sigterm_exits_0_within_a_second() {
    let mut d = spawn_with_fds(&[], &[]);
    d.wait_frame(Duration::from_secs(10), is_heartbeat);
    let t0 = Instant::now();
    d.sigterm();
    let st = d.wait_exit(Duration::from_secs(2));
    assert_eq!(st.code(), Some(0));
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
}

// ---------------------------------------------------------------------------------------------
// Socket mode: driver listens, felix-proxy is Felix's driver.

struct SocketDriver {
    child: Child,
    _dir: tempfile::TempDir,
    socket: PathBuf,
    log: mpsc::Receiver<String>,
}

impl SocketDriver {
    fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("felix.sock");
        let mut cmd = Command::new(driver_bin());
        cmd.args(["run", "--felix-socket"])
            .arg(&socket)
            .env_remove("CALICO_VPP_LOG_LEVEL")
            .env("CALICO_VPP_DATAPLANE", "none")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let (tx, log) = mpsc::channel();
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0
                    || tx
                        .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                        .is_err()
                {
                    return;
                }
            }
        });
        SocketDriver {
            child,
            _dir: dir,
            socket,
            log,
        }
    }

    fn proxy(&self) -> Driver {
        spawn_with_fds(
            &["felix-proxy", "--socket", self.socket.to_str().unwrap()],
            &[],
        )
    }

    fn log_until(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut all = String::new();
        while !all.contains(needle) {
            match self
                .log
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(s) => all.push_str(&s),
                Err(_) => panic!("driver never logged {needle:?}; log:\n{all}"),
            }
        }
        all
    }
}

impl Drop for SocketDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn socket_mode_through_felix_proxy_serves_sessions_one_after_another() {
    let mut driver = SocketDriver::start(&[("CALICO_VPP_MAX_FRAME_BYTES", "1048576")]);

    // A whole session through the proxy, installed as Felix would run it: the binary under
    // the name `calico-vpp-felix-proxy`, no arguments, the socket from the environment.
    let link = driver._dir.path().join("calico-vpp-felix-proxy");
    std::os::unix::fs::symlink(driver_bin(), &link).unwrap();
    let mut p = spawn_program(
        &link,
        &[],
        &[("CALICO_VPP_FELIX_SOCKET", driver.socket.to_str().unwrap())],
    );
    realistic_session(&mut p);
    p.close();
    assert_eq!(p.wait_exit(Duration::from_secs(5)).code(), Some(0));
    driver.log_until("Felix closed the connection", Duration::from_secs(5));
    assert!(
        driver.child.try_wait().unwrap().is_none(),
        "driver keeps serving"
    );

    // A second Felix (a restart) gets a fresh session with its own heartbeat.
    let mut p2 = driver.proxy();
    p2.wait_frame(Duration::from_secs(10), is_heartbeat);
    // A third connection replaces the second: the second proxy sees the driver go away.
    let mut p3 = driver.proxy();
    p3.wait_frame(Duration::from_secs(10), is_heartbeat);
    let st = p2.wait_exit(Duration::from_secs(5));
    assert_ne!(st.code(), Some(0));
    driver.log_until("replaces the current one", Duration::from_secs(5));

    // An oversized frame ends that connection with a message naming the limit; the proxy
    // (Felix's driver) exits non-zero, so Felix would restart.
    p3.send_raw(&(2u64 << 20).to_le_bytes());
    let st = p3.wait_exit(Duration::from_secs(5));
    assert_ne!(st.code(), Some(0));
    driver.log_until(
        "maximum frame size of 1048576 bytes",
        Duration::from_secs(5),
    );

    // SIGTERM stops the driver with 0.
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(driver.child.id() as i32, libc::SIGTERM) },
        0
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    let st = loop {
        if let Some(st) = driver.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "driver ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(st.code(), Some(0));
}

#[test]
fn felix_proxy_without_a_driver_gives_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("nobody.sock");
    let mut p = spawn_with_fds(
        &["felix-proxy", "--socket", sock.to_str().unwrap()],
        &[("CALICO_VPP_PROXY_CONNECT_TIMEOUT", "300ms")],
    );
    let st = p.wait_exit(Duration::from_secs(5));
    assert_ne!(st.code(), Some(0));
    assert!(p.drain_log().contains("could not connect to the driver"));
}
