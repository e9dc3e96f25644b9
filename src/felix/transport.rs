//! Byte transports between Felix and the driver: the inherited fds 3/4, a unix socket the
//! driver listens on, and the relay (`felix-proxy`) Felix runs as its driver in socket mode.
//! Transports move bytes only; framing and meaning live elsewhere.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tracing::{info, warn};

pub type BoxRead = Pin<Box<dyn AsyncRead + Send>>;
pub type BoxWrite = Pin<Box<dyn AsyncWrite + Send>>;

/// Felix's fd for `ToDataplane` (driver reads).
pub const FELIX_READ_FD: RawFd = 3;
/// Felix's fd for `FromDataplane` (driver writes).
pub const FELIX_WRITE_FD: RawFd = 4;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(
        "fd {fd} is not open: this mode expects to be started by Felix as its dataplane driver \
         (ToDataplane on fd 3, FromDataplane on fd 4); use `run --felix-socket PATH` otherwise"
    )]
    FdNotOpen { fd: RawFd },
    #[error("fd {fd}: {source}")]
    Fd { fd: RawFd, source: io::Error },
    #[error("Felix socket {path}: {source}")]
    Socket { path: PathBuf, source: io::Error },
    #[error("could not connect to the driver at {path} within {waited:?}: {source}")]
    Connect {
        path: PathBuf,
        waited: Duration,
        source: io::Error,
    },
}

fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor flags; it is harmless on any integer.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

fn fd_kind(fd: &OwnedFd) -> io::Result<libc::mode_t> {
    use std::os::fd::AsRawFd;
    // SAFETY: `st` is a plain C struct that fstat fully initialises on success; the fd is
    // owned and open.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.st_mode & libc::S_IFMT)
}

/// Takes ownership of an inherited fd, checking it is open first.
fn take_fd(fd: RawFd) -> Result<OwnedFd, TransportError> {
    if !fd_is_open(fd) {
        return Err(TransportError::FdNotOpen { fd });
    }
    // SAFETY: the fd is open (checked above), was inherited from our parent for exactly this
    // use, and nothing else in this process owns it: each of fds 3 and 4 is taken once, here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn reader_from(fd: OwnedFd) -> io::Result<BoxRead> {
    Ok(match fd_kind(&fd)? {
        libc::S_IFIFO => Box::pin(tokio::net::unix::pipe::Receiver::from_owned_fd(fd)?),
        libc::S_IFSOCK => {
            let s = std::os::unix::net::UnixStream::from(fd);
            s.set_nonblocking(true)?;
            Box::pin(UnixStream::from_std(s)?)
        }
        // A regular file (a recorded stream, for example): read on tokio's blocking pool.
        _ => Box::pin(tokio::fs::File::from_std(std::fs::File::from(fd))),
    })
}

fn writer_from(fd: OwnedFd) -> io::Result<BoxWrite> {
    Ok(match fd_kind(&fd)? {
        libc::S_IFIFO => Box::pin(tokio::net::unix::pipe::Sender::from_owned_fd(fd)?),
        libc::S_IFSOCK => {
            let s = std::os::unix::net::UnixStream::from(fd);
            s.set_nonblocking(true)?;
            Box::pin(UnixStream::from_std(s)?)
        }
        _ => Box::pin(tokio::fs::File::from_std(std::fs::File::from(fd))),
    })
}

/// Takes ownership of the two fds Felix gives its driver. Call this first thing in `main`,
/// before anything (the async runtime, a log file) can open descriptors: when Felix did not
/// pass them, those would get numbers 3 and 4 and be taken by mistake.
pub fn take_felix_fds() -> Result<(OwnedFd, OwnedFd), TransportError> {
    Ok((take_fd(FELIX_READ_FD)?, take_fd(FELIX_WRITE_FD)?))
}

/// Felix's fds as async streams. Must be called inside a runtime.
pub fn felix_streams(r: OwnedFd, w: OwnedFd) -> Result<(BoxRead, BoxWrite), TransportError> {
    let r = reader_from(r).map_err(|source| TransportError::Fd {
        fd: FELIX_READ_FD,
        source,
    })?;
    let w = writer_from(w).map_err(|source| TransportError::Fd {
        fd: FELIX_WRITE_FD,
        source,
    })?;
    Ok((r, w))
}

/// Listens for Felix (through `felix-proxy`) on a unix socket. A stale socket file left by a
/// previous run is replaced; any other file at that path is an error.
pub fn listen(path: &Path) -> Result<UnixListener, TransportError> {
    let err = |source| TransportError::Socket {
        path: path.to_path_buf(),
        source,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if meta.file_type().is_socket() {
            std::fs::remove_file(path).map_err(err)?;
        } else {
            return Err(err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a socket",
            )));
        }
    }
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
    }
    UnixListener::bind(path).map_err(err)
}

/// How the relay ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ProxyEnd {
    /// Felix closed its side (clean EOF on fd 3): exit 0.
    FelixClosed,
    /// The driver went away while Felix was still connected: exit non-zero so Felix restarts.
    DriverClosed,
}

/// Connects to the driver's socket, retrying until `wait` has passed (the driver may start
/// after Felix).
pub async fn connect(path: &Path, wait: Duration) -> Result<UnixStream, TransportError> {
    let start = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        match UnixStream::connect(path).await {
            Ok(s) => return Ok(s),
            Err(source) if start.elapsed() >= wait => {
                return Err(TransportError::Connect {
                    path: path.to_path_buf(),
                    waited: wait,
                    source,
                })
            }
            Err(e) => {
                warn!(socket = %path.display(), error = %e, "driver not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Relays bytes between Felix's fds and the driver's socket until one side ends.
pub async fn relay(
    mut felix_in: BoxRead,
    mut felix_out: BoxWrite,
    socket: UnixStream,
) -> io::Result<ProxyEnd> {
    let (mut sock_r, mut sock_w) = socket.into_split();
    let to_driver = async {
        tokio::io::copy(&mut felix_in, &mut sock_w).await?;
        sock_w.shutdown().await?;
        Ok::<_, io::Error>(())
    };
    let to_felix = async {
        tokio::io::copy(&mut sock_r, &mut felix_out).await?;
        Ok::<_, io::Error>(())
    };
    tokio::select! {
        r = to_driver => {
            r?;
            info!("Felix closed the stream; proxy exiting");
            Ok(ProxyEnd::FelixClosed)
        }
        r = to_felix => {
            r?;
            Ok(ProxyEnd::DriverClosed)
        }
    }
}
