# calico-vpp-driver images, built from the repository root (no .dockerignore: only what the
# build needs is copied). No protoc is needed: the proto is compiled by protox.
#
#   docker build --target driver    -t calico-vpp-driver:latest .
#   docker build --target installer -t calico-vpp-driver-installer:latest .
#
# driver     The driver in its own container next to VPP (socket mode, `run`), as in
#            calico-config/calico-vpp-driver-socket.yaml. Runs as root: VPP's API socket is
#            root:vpp 0770, the state directory is a root-owned hostPath, and the driver opens
#            sockets in the host's /var/run/calico; there is no other user to drop to.
# installer  An init container of calico-node: copies the binary (and the
#            calico-vpp-felix-proxy symlink) into the directory given as its argument, an
#            emptyDir that calico-node mounts at /opt/calico-vpp/bin, where Felix runs its
#            driver. Runs as an unprivileged user (an emptyDir is world-writable).
#
# The binary dispatches on argv[0]: run as `calico-vpp-felix-proxy` it is the Felix-side relay
# (src/main.rs, PROXY_ARGV0). It links against glibc >= 2.34 (built on Debian 12); the
# calico-node image that runs it in fd mode must provide that too.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto/ proto/
COPY src/ src/
COPY benches/ benches/
COPY crates/ crates/
COPY vpp-bindings/ vpp-bindings/
COPY integration/ integration/
RUN cargo build --release --locked -p calico-vpp-driver --bin calico-vpp-driver \
 && mkdir -p /out/bin \
 && cp target/release/calico-vpp-driver /out/bin/calico-vpp-driver \
 && ln -s calico-vpp-driver /out/bin/calico-vpp-felix-proxy \
 && /out/bin/calico-vpp-driver --version

# The installer: debian-slim for `sh` and `cp` (distroless has neither).
FROM debian:bookworm-slim AS installer
COPY --from=build /out/bin/ /usr/local/bin/
COPY calico-config/install-driver.sh /usr/local/bin/install-calico-vpp-driver
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/install-calico-vpp-driver"]
CMD ["/opt/calico-vpp/bin"]

# The driver (the default target): glibc and libgcc only, no shell.
FROM gcr.io/distroless/cc-debian12 AS driver
COPY --from=build /out/bin/ /usr/local/bin/
USER 0:0
ENTRYPOINT ["/usr/local/bin/calico-vpp-driver"]
CMD ["run"]
