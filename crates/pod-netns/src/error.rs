//! The one error type of the crate. Its messages end up verbatim in CNI error
//! replies, so each one is a sentence that names the object and says what
//! went wrong, without needing the source code to be understood.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The namespace file is missing, or it is not a network namespace (for
    /// instance a leftover mount point whose namespace is gone).
    #[error(
        "network namespace {} does not exist or is not a network namespace; \
         the pod sandbox may already have been torn down",
        path.display()
    )]
    NoNetns { path: PathBuf },

    /// An interface name we were asked to use already belongs to something
    /// this request did not create; nothing was changed.
    #[error("interface name {name} is already taken: {reason}; nothing was changed")]
    NameTaken { name: String, reason: String },

    /// The interface to configure does not exist in the pod's namespace.
    #[error("interface {ifname} does not exist in network namespace {}", netns.display())]
    NoLink { netns: PathBuf, ifname: String },

    /// An interface name the kernel would refuse.
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },

    /// The kernel refused a netlink request (or its reply was unreadable).
    #[error("could not {op}: {detail}")]
    Netlink { op: &'static str, detail: String },

    /// A system call outside netlink failed (namespace switch, ethtool
    /// ioctl, sysctl write).
    #[error("could not {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl NetnsError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}
