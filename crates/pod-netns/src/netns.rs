//! Opening a pod's network namespace and running code inside it. Code runs
//! on a dedicated short-lived thread that joins the namespace and then exits,
//! so the caller's thread (often a tokio blocking-pool thread that will be
//! reused) never changes namespace.

use std::{
    fs::File,
    io,
    os::fd::{AsRawFd, RawFd},
    path::{Path, PathBuf},
    thread,
};

use crate::NetnsError;

/// An open handle on a network namespace. Holding the file keeps the
/// namespace alive while we work in it, even if the pod is torn down.
pub(crate) struct Netns {
    file: File,
    path: PathBuf,
}

impl Netns {
    /// Opens `path` and checks that it really is a network namespace: a
    /// bind mount whose namespace is gone leaves an ordinary empty file.
    pub(crate) fn open(path: &Path) -> Result<Self, NetnsError> {
        let no_netns = || NetnsError::NoNetns {
            path: path.to_path_buf(),
        };
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                return Err(no_netns())
            }
            Err(e) => {
                return Err(NetnsError::io(
                    format!("open network namespace {}", path.display()),
                    e,
                ))
            }
        };
        let fd = file.as_raw_fd();
        // SAFETY: `statfs` is plain old data, for which all-zero is valid.
        let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is open for the whole call and `stat` is a valid,
        // writable `statfs` that the kernel fills.
        if unsafe { libc::fstatfs(fd, &mut stat) } != 0 {
            return Err(NetnsError::io(
                format!("inspect network namespace {}", path.display()),
                io::Error::last_os_error(),
            ));
        }
        if stat.f_type != libc::NSFS_MAGIC {
            return Err(no_netns());
        }
        // SAFETY: NS_GET_NSTYPE takes no argument and only reads `fd`.
        let ns_type = unsafe { libc::ioctl(fd, libc::NS_GET_NSTYPE) };
        if ns_type != libc::CLONE_NEWNET {
            return Err(no_netns());
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Runs `f` on a fresh thread that has joined this namespace. The thread
    /// ends with `f`, taking its namespace membership with it. A panic in
    /// `f` is carried over to the caller.
    pub(crate) fn run<T, F>(&self, f: F) -> Result<T, NetnsError>
    where
        T: Send,
        F: FnOnce() -> Result<T, NetnsError> + Send,
    {
        let fd = self.fd();
        let path = &self.path;
        thread::scope(|scope| {
            let worker = thread::Builder::new()
                .name("pod-netns".to_string())
                .spawn_scoped(scope, move || {
                    // SAFETY: `fd` stays open for the thread's lifetime (the
                    // scope borrows `self`), and setns only affects this
                    // thread, which ends right after `f`.
                    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                        return Err(NetnsError::io(
                            format!("enter network namespace {}", path.display()),
                            io::Error::last_os_error(),
                        ));
                    }
                    f()
                })
                .map_err(|e| NetnsError::io("start a thread to enter the pod's namespace", e))?;
            worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}
