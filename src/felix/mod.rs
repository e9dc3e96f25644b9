//! Felix I/O: framing, transports (fds 3/4, unix socket), protobuf ⇄ model conversion.
