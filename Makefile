# Convenience targets; CI runs .ci/run.
.PHONY: all build test ci fmt clippy bench demo image

all: build

build:
	cargo build --release --bin calico-vpp-driver

test:
	cargo test --workspace

ci:
	bash .ci/run

fmt:
	cargo fmt --all

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

bench:
	cargo bench --bench felix_ingest

demo:
	cargo run --release -- demo

image:
	docker build -t calico-vpp-driver:latest .
