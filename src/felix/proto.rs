//! Rust types generated from `proto/felixbackend.proto` (package `felix`) by `build.rs`.
//! Only `src/felix/` may use them; everything past `convert` sees model types.

#![allow(clippy::all, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/felix.rs"));
