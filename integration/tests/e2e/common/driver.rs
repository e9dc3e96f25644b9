//! The real driver binary started as Felix starts it (no arguments, `ToDataplane` on fd 3,
//! `FromDataplane` on fd 4, 8-byte little-endian length framing), with a scripted Felix on
//! the other end that keeps its own copy of the model, so a test can compile the same model
//! in-process and hold the dataplane to it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use calico_model::Model;
use calico_vpp_driver::felix::codec::encode_to_dataplane;
use calico_vpp_driver::felix::convert::convert;
use calico_vpp_driver::felix::proto;
use calico_vpp_driver::felix::proto::from_dataplane::Payload as Out;
use prost::Message;

/// Path of the driver binary, built once per test run (a dependency's binary is not built
/// for another package's tests). `CALICO_VPP_DRIVER_BIN` overrides it.
pub fn driver_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("CALICO_VPP_DRIVER_BIN") {
            return PathBuf::from(p);
        }
        // target/<profile>/deps/<this test> → target/<profile>
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "-q",
            "-p",
            "calico-vpp-driver",
            "--bin",
            "calico-vpp-driver",
        ])
        .env("CARGO_TARGET_DIR", target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().unwrap() == "release" {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building the driver binary failed");
        profile_dir.join("calico-vpp-driver")
    })
}

pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two fds into the array on success; both are then owned here.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just created by pipe2 and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Starts `cmd` as Felix starts its driver: `ToDataplane` on fd 3, `FromDataplane` on fd 4.
/// Returns the child and Felix's ends: the writer to fd 3 and the reader of fd 4.
pub fn spawn_with_felix_fds(mut cmd: Command) -> (Child, File, File) {
    let (driver_r, felix_w) = pipe();
    let (felix_r, driver_w) = pipe();
    let (r, w) = (driver_r.as_raw_fd(), driver_w.as_raw_fd());
    // SAFETY: the closure runs in the forked child before exec and only calls
    // async-signal-safe functions (fcntl, dup2). The fds are first moved above 10 so that
    // placing one on 3 cannot clobber the other; dup2 leaves the copies without CLOEXEC.
    unsafe {
        cmd.pre_exec(move || {
            let hi_r = libc::fcntl(r, libc::F_DUPFD_CLOEXEC, 10);
            let hi_w = libc::fcntl(w, libc::F_DUPFD_CLOEXEC, 10);
            if hi_r < 0 || hi_w < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::dup2(hi_r, 3) < 0 || libc::dup2(hi_w, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn driver");
    drop(driver_r);
    drop(driver_w);
    (child, File::from(felix_w), File::from(felix_r))
}

/// The next `FromDataplane` frame the driver wrote, or `None` at the end of the stream.
pub fn read_frame(from_driver: &mut File) -> Option<proto::FromDataplane> {
    let mut header = [0u8; 8];
    from_driver.read_exact(&mut header).ok()?;
    let mut body = vec![0u8; u64::from_le_bytes(header) as usize];
    from_driver.read_exact(&mut body).ok()?;
    Some(proto::FromDataplane::decode(body.as_slice()).expect("driver frames decode"))
}

/// Status of one workload endpoint as Felix last heard it on fd 4: `Some("up")`, ...;
/// `None` after a `WorkloadEndpointStatusRemove`.
pub type StatusBook = BTreeMap<String, Option<String>>;

/// Reconcile passes the driver logged: (when the line arrived, VPP writes of the pass).
pub type PassLog = Vec<(Instant, u64)>;

/// Workload status frames in arrival order: (workload_id, status or `None` for a remove).
pub type StatusLog = Vec<(String, Option<String>)>;

/// A running driver with Felix's side of its pipes, and Felix's copy of the model.
pub struct Driver {
    child: Child,
    to_driver: Option<File>,
    frames: mpsc::Receiver<proto::FromDataplane>,
    /// Workload endpoint status by `workload_id`, from every status frame seen so far.
    pub status: Arc<Mutex<StatusBook>>,
    /// Every workload status frame in arrival order: (workload_id, status or None).
    pub status_log: Arc<Mutex<StatusLog>>,
    log: Arc<Mutex<String>>,
    /// Every log line with the time it arrived.
    timed: Arc<Mutex<Vec<(Instant, String)>>>,
    /// Every logged reconcile pass that wrote something: when its line arrived, its writes.
    pub passes: Arc<Mutex<PassLog>>,
    seq: u64,
    /// What Felix has told the driver, applied to a model exactly as the driver does.
    pub model: Model,
}

impl Driver {
    /// Starts a driver programming the real VPP `vpp` (its socket, a state directory beside
    /// it), with `extra` settings.
    pub fn on_vpp(vpp: &super::realvpp::VppInstance, extra: &[(&str, &str)]) -> Driver {
        let state = vpp.dir().join("state");
        let sock = vpp.socket();
        let mut env = vec![
            ("CALICO_VPP_DATAPLANE", "vpp"),
            ("CALICO_VPP_API_SOCKET", sock.to_str().unwrap()),
            ("CALICO_VPP_STATE_DIR", state.to_str().unwrap()),
        ];
        env.extend_from_slice(extra);
        Driver::spawn(&env)
    }

    /// VPP writes of every reconcile pass logged so far.
    pub fn writes(&self) -> u64 {
        self.passes.lock().unwrap().iter().map(|(_, w)| w).sum()
    }

    /// Starts the driver with `env` on top of the test's environment (`CALICO_VPP_LOG_LEVEL`
    /// removed, logs go to a buffer).
    pub fn spawn(env: &[(&str, &str)]) -> Driver {
        let mut cmd = Command::new(driver_bin());
        // No admin or CNI socket unless a test asks for one (drivers run side by side).
        cmd.env("CALICO_VPP_ADMIN_SOCKET", "off")
            .env("CALICO_VPP_CNI_SOCKET", "off")
            .env_remove("CALICO_VPP_LOG_LEVEL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        // `CALICO_VPP_TEST_TRANSPORT=shm`: a driver of a real VPP started by the test
        // harness (`realvpp`) talks to it over shared memory instead of the socket: the
        // segment prefix is the name of the socket's directory, the library the install's.
        if std::env::var("CALICO_VPP_TEST_TRANSPORT").as_deref() == Ok("shm") {
            let socket = env.iter().find(|(k, _)| *k == "CALICO_VPP_API_SOCKET");
            let dir = socket.and_then(|(_, s)| Path::new(s).parent());
            let prefix = dir.and_then(|d| d.file_name()).and_then(|n| n.to_str());
            if let (Some(prefix), true) = (prefix, prefix.is_some_and(|p| p.starts_with("realvpp")))
            {
                cmd.env("CALICO_VPP_API_TRANSPORT", "shm")
                    .env("CALICO_VPP_API_PREFIX", prefix);
                if let Some(vpp) = std::env::var_os("CALICO_VPP_TEST_VPP_PREFIX") {
                    cmd.env(
                        "VPP_API_CLIENT_LIB",
                        Path::new(&vpp).join("lib/x86_64-linux-gnu/libvppapiclient.so"),
                    );
                }
            }
        }
        let (mut child, felix_w, mut from_driver) = spawn_with_felix_fds(cmd);

        let status = Arc::new(Mutex::new(StatusBook::new()));
        let status_log = Arc::new(Mutex::new(Vec::new()));
        let (ftx, frames) = mpsc::channel();
        let (book, book_log) = (status.clone(), status_log.clone());
        std::thread::spawn(move || loop {
            let Some(msg) = read_frame(&mut from_driver) else {
                return;
            };
            let entry = match &msg.payload {
                Some(Out::WorkloadEndpointStatusUpdate(u)) => Some((
                    u.id.as_ref()
                        .map(|i| i.workload_id.clone())
                        .unwrap_or_default(),
                    Some(
                        u.status
                            .as_ref()
                            .map(|s| s.status.clone())
                            .unwrap_or_default(),
                    ),
                )),
                Some(Out::WorkloadEndpointStatusRemove(r)) => Some((
                    r.id.as_ref()
                        .map(|i| i.workload_id.clone())
                        .unwrap_or_default(),
                    None,
                )),
                _ => None,
            };
            if let Some((id, st)) = entry {
                book.lock().unwrap().insert(id.clone(), st.clone());
                book_log.lock().unwrap().push((id, st));
            }
            if ftx.send(msg).is_err() {
                // Nobody reads frames any more; keep recording status.
            }
        });
        let log = Arc::new(Mutex::new(String::new()));
        let passes = Arc::new(Mutex::new(Vec::new()));
        let err = BufReader::new(child.stderr.take().unwrap());
        let timed = Arc::new(Mutex::new(Vec::new()));
        let (sink, pass_sink, timed_sink) = (log.clone(), passes.clone(), timed.clone());
        std::thread::spawn(move || {
            for line in err.split(b'\n') {
                let Ok(line) = line else { return };
                let line = String::from_utf8_lossy(&line);
                if line.contains("reconcile pass") {
                    let writes = line
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("writes="))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    pass_sink.lock().unwrap().push((Instant::now(), writes));
                }
                timed_sink
                    .lock()
                    .unwrap()
                    .push((Instant::now(), line.to_string()));
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Driver {
            child,
            to_driver: Some(felix_w),
            frames,
            status,
            status_log,
            log,
            timed,
            passes,
            seq: 0,
            model: Model::default(),
        }
    }

    /// Sends `msgs` as Felix would (sequence numbers continue across calls) and applies them
    /// to Felix's copy of the model.
    pub fn send(&mut self, msgs: &[proto::ToDataplane]) {
        let mut bytes = Vec::new();
        for m in msgs {
            let mut m = m.clone();
            m.sequence_number = self.seq;
            self.seq += 1;
            bytes.extend_from_slice(&encode_to_dataplane(&m));
            if let Ok(update) = convert(m) {
                self.model.apply(update);
            }
        }
        self.send_raw(&bytes);
    }

    /// Writes bytes to fd 3 as they are (the model is not touched).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.to_driver
            .as_mut()
            .expect("pipe open")
            .write_all(bytes)
            .expect("write to driver");
    }

    /// Closes fd 3 (Felix going away).
    pub fn close(&mut self) {
        self.to_driver = None;
    }

    /// The next frame that matches `pred`, within `timeout`.
    pub fn wait_frame(
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
                    self.log()
                ),
            }
        }
    }

    /// Waits until the status Felix holds for `workload_id` is `want` (`None`: removed).
    pub fn wait_status(&self, workload_id: &str, want: Option<&str>, timeout: Duration) {
        let ok = wait_until(timeout, || {
            let book = self.status.lock().unwrap();
            match (book.get(workload_id), want) {
                (Some(Some(s)), Some(w)) => s == w,
                (Some(None), None) => true,
                _ => false,
            }
        });
        assert!(
            ok,
            "status of {workload_id} never became {want:?} (now {:?}); log:\n{}",
            self.status.lock().unwrap().get(workload_id),
            self.log()
        );
    }

    /// Every log line so far with the time it arrived.
    pub fn timed_log(&self) -> Vec<(Instant, String)> {
        self.timed.lock().unwrap().clone()
    }

    /// The driver's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("did not exit within {timeout:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, as Felix sends on a restart, and waits for the exit.
    pub fn stop(mut self) -> ExitStatus {
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0);
        self.wait_exit(Duration::from_secs(5))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes; says which.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A frame whose bytes are not a protobuf message (field 1 with the unused wire type 7).
pub fn malformed_frame() -> Vec<u8> {
    let body = [0x0f, 0xff, 0xff, 0xff];
    let mut f = (body.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(&body);
    f
}
