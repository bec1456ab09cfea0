# git-relay in a container: one static binary on distroless "static"
# (CA certificates, /etc/passwd with the non-root user `nonroot`, 65532,
# no shell, no package manager).
#
# The image carries no `git`, and needs none: sources and destinations are
# reached over HTTPS, and local (path or file://) sources, the only ones
# git-relay would run `git upload-pack` for, are read through libgit2 when
# git is absent. Mount a volume for backups or local sources:
#
#   docker run --rm -e GIT_RELAY_SOURCE_TOKEN -e GIT_RELAY_DEST_TOKEN \
#     ghcr.io/git-relay/git-relay mirror https://... https://...
#
# or as a service (docs/serve.md):
#
#   docker run -d -p 8080:8080 -v $PWD/serve.toml:/etc/git-relay/serve.toml:ro \
#     ghcr.io/git-relay/git-relay serve --config /etc/git-relay/serve.toml
#
# Two ways to build it:
#   docker build .                                   compile from this checkout (the default)
#   docker buildx build --build-arg BINARIES=prebuilt --platform linux/amd64,linux/arm64 .
#                                                    use dist/image/<arch>/git-relay, the static
#                                                    musl binaries of `cargo xtask dist`
#                                                    (what .github/workflows/release.yml does)
# BuildKit builds only the stages the chosen one needs.
ARG BINARIES=source

FROM rust:1-alpine AS binary-source
# A C compiler for ring and libgit2; musl makes the binary static.
RUN apk add --no-cache build-base
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin git-relay \
    && install -D -m 755 target/release/git-relay /out/git-relay

FROM scratch AS binary-prebuilt
ARG TARGETARCH
COPY dist/image/${TARGETARCH}/git-relay /out/git-relay

FROM binary-${BINARIES} AS binary

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=binary --chmod=0755 /out/git-relay /usr/local/bin/git-relay
USER nonroot:nonroot
# `git-relay serve` (webhooks, /status, /metrics) listens where its
# configuration says; the documented examples use 8080.
EXPOSE 8080
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/local/bin/git-relay"]
CMD ["--help"]
