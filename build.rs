fn main() {
    // Filled in by the Felix protocol work: protox + prost-build over proto/felixbackend.proto.
}
