# The `tessera` image: one binary for every service (`tessera serve <name>`) and the embedded
# system (`tessera up`). Built in a full Rust image, run from a distroless one: glibc and
# nothing else (no shell, no package manager), as user 65532, about 30 MB.
#
#   docker build -t tessera:dev --build-arg TESSERA_GIT_COMMIT=$(git rev-parse --short HEAD) .
#   docker compose -f deploy/compose.yaml up
#
# .git is not in the build context (.dockerignore), so `--version` names the commit passed in.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
ARG TESSERA_GIT_COMMIT=unknown
ENV TESSERA_GIT_COMMIT=${TESSERA_GIT_COMMIT}
# The caches keep the registry and the compiled dependencies between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p tessera \
    && cp target/release/tessera /usr/local/bin/tessera
# Folders the runtime image cannot create itself (it has no shell): the embedded data folder
# and the attachments folder of the compose file, owned by the user the image runs as.
RUN mkdir -p /out/data /out/attachments && chown -R 65532:65532 /out

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/tessera /usr/local/bin/tessera
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build --chown=65532:65532 /out/attachments /attachments
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tessera"]
# Without arguments: the embedded system on every interface, its data in the /data volume.
CMD ["up", "--listen", "0.0.0.0:8080", "--data", "/data"]
