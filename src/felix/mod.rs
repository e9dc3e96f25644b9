//! Felix I/O: framing, transports (fds 3/4, unix socket), protobuf ⇄ model conversion.
//! Nothing here touches VPP; protobuf types never leave this module.

pub mod codec;
pub mod convert;
pub mod outbound;
pub mod proto;
pub mod script;
pub mod status_writer;
pub mod transport;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod upstream_compat_tests;
