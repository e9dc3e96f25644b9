# calico-vpp-driver image: the driver, plus the same binary as `calico-vpp-felix-proxy` (the
# relay Felix runs in socket mode). No protoc is needed: the proto is compiled by protox.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin calico-vpp-driver

FROM debian:bookworm-slim
COPY --from=build /src/target/release/calico-vpp-driver /usr/local/bin/calico-vpp-driver
RUN ln -s calico-vpp-driver /usr/local/bin/calico-vpp-felix-proxy
# Socket mode by default in its own container; Felix-side installs use the binaries directly.
ENTRYPOINT ["/usr/local/bin/calico-vpp-driver"]
CMD ["run"]
