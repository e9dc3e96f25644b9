//! Compiles the protos with protox (a pure-Rust protobuf compiler): `felixbackend.proto`
//! with prost-build, `cnibackend.proto` with tonic's prost generator (the CNI plugin's gRPC
//! service), so building the driver never needs `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let felix = "proto/felixbackend.proto";
    let cni = "proto/cnibackend.proto";
    println!("cargo:rerun-if-changed={felix}");
    println!("cargo:rerun-if-changed={cni}");
    println!("cargo:rerun-if-changed=build.rs");
    let fds = protox::compile([felix], ["proto"])?;
    prost_build::Config::new()
        // Ordered maps: the model keeps labels and config in BTreeMaps, so conversion moves them.
        .btree_map(["."])
        .compile_fds(fds)?;
    let fds = protox::compile([cni], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
