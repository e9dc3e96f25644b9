//! Compiles `proto/felixbackend.proto` with protox (a pure-Rust protobuf compiler) and
//! prost-build, so building the driver never needs `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/felixbackend.proto";
    println!("cargo:rerun-if-changed={proto}");
    println!("cargo:rerun-if-changed=build.rs");
    let fds = protox::compile([proto], ["proto"])?;
    prost_build::Config::new()
        // Ordered maps: the model keeps labels and config in BTreeMaps, so conversion moves them.
        .btree_map(["."])
        .compile_fds(fds)?;
    Ok(())
}
