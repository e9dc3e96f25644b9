//! A VPP simulator: VPP's socket API, the objects the driver programs, npol evaluation, faults.
