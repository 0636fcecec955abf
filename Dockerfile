# One small image holding the three controllers and the viz tap server and dashboard: static
# (musl) binaries, no shell, non-root.
#
#   docker build -t oxlink:0.1.0 .     # the chart's controllerImage:controllerImageVersion
#   containers run /oxlink-identity, /oxlink-destination, /oxlink-proxy-injector, /oxlink-tap or /oxlink-web
#   (`cargo xtask e2e --cluster kind` builds oxlink/controller:dev and sets those two values)
FROM rust:1-alpine AS build
RUN apk add --no-cache musl-dev gcc
WORKDIR /src
COPY . .
# On Alpine the host target is x86_64-unknown-linux-musl, which links statically.
RUN cargo build --release --locked \
        -p oxlink-identity -p oxlink-destination -p oxlink-proxy-injector -p oxlink-tap -p oxlink-web \
    && mkdir /out \
    && cp target/release/oxlink-identity target/release/oxlink-destination \
          target/release/oxlink-proxy-injector target/release/oxlink-tap target/release/oxlink-web /out/

FROM scratch
COPY --from=build /out/ /
# The same unprivileged user as distroless "nonroot".
USER 65532:65532
ENTRYPOINT ["/oxlink-identity"]
