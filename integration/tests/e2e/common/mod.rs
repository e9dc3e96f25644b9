//! Shared by the end-to-end driver tests: the real binary on fds 3/4 with a scripted Felix
//! ([`driver`]), and a VPP simulator with the checks against the compiler ([`rig`]).
#![allow(dead_code)]

pub mod driver;
pub mod realvpp;
pub mod rig;
