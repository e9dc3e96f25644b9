//! Felix I/O: framing, transports (fds 3/4, unix socket), protobuf ⇄ model conversion.
//! Nothing here touches VPP; protobuf types never leave this module.

pub mod convert;
pub mod proto;
pub mod script;
