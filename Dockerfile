# syntax=docker/dockerfile:1.7
# The one confkube image: node agent, admission webhook, attestation service, enclave tool.
#
#   docker build -t ghcr.io/confkube/confkube:0.1.0 .
#   docker run --rm ghcr.io/confkube/confkube:0.1.0 --help
#
# Build stage: the Rust toolchain the workspace pins (rust-version 1.95), release profile,
# symbols stripped. The runtime stage is distroless "cc" (glibc and libgcc only: no shell, no
# package manager), running as the distroless nonroot user 65532. The binary needs no other
# runtime file: TLS is rustls with the webpki roots compiled in, crypto is aws-lc-rs linked
# statically. Pin both base images by digest in your registry mirror for reproducible builds.

FROM docker.io/library/rust:1.95-slim-bookworm AS build
WORKDIR /src
# cmake/clang are not needed: aws-lc-sys builds with the cc crate and gcc from the base image.
COPY Cargo.toml Cargo.lock rustfmt.toml clippy.toml ./
COPY crates ./crates
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p confkube \
      --config 'profile.release.debug=false' --config 'profile.release.strip=true' \
 && install -D -m 0755 target/release/confkube /out/confkube

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="confkube" \
      org.opencontainers.image.description="Intel SGX enclave nodes for Kubernetes, and proof of what runs in them" \
      org.opencontainers.image.source="https://github.com/confkube/confkube" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/confkube /usr/bin/confkube
USER 65532:65532
ENTRYPOINT ["/usr/bin/confkube"]
CMD ["--help"]
