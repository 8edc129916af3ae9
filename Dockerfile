# syntax=docker/dockerfile:1
# The pv binaries (pv-ingest, pv-dispatcher, email-worker, sms-worker, push-worker, pvctl) built with
# Debian bookworm's own -dev packages (the library versions the project is written against: see
# docs/architecture.md), then copied into a slim bookworm image with only the runtime libraries.
#
#   docker build -t pv:latest .          (compose.yaml does this with `docker compose build`)
#
# Not built here: no Docker engine runs on the development machines (docs/operations.md).

FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      librdkafka-dev libhiredis-dev rapidjson-dev libfmt-dev libcpp-httplib-dev libyaml-cpp-dev \
      libcurl4-openssl-dev libssl-dev libkainjow-mustache-dev libhowardhinnant-date-dev tzdata \
      zlib1g-dev libboost1.81-dev libjemalloc-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Only the service binaries are built: PV_BUILD_TESTS=OFF needs no GoogleTest (Boost: ingest's front,
# header-only). The context has no .git, so the commit that pv_build_info and --version report comes
# from the build argument (docker build --build-arg PV_GIT_COMMIT=$(git rev-parse --short=12 HEAD) .),
# else "unknown".
ARG PV_GIT_COMMIT=unknown
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPV_BUILD_TESTS=OFF \
      -DPV_GIT_COMMIT="${PV_GIT_COMMIT}" \
 && cmake --build /build -j"$(nproc)" \
      --target pv-ingest pv-dispatcher email-worker sms-worker push-worker pvctl \
 && mkdir -p /out \
 && cp /build/ingest/pv-ingest /build/dispatcher/pv-dispatcher /build/workers/email-worker \
       /build/workers/sms-worker /build/workers/push-worker /build/tools/pvctl/pvctl /out/ \
 && strip --strip-debug /out/*

FROM debian:bookworm-slim AS runtime
# The shared libraries the binaries link (ldd; libjemalloc2: the services' allocator), tzdata for
# send windows in users' time zones, CA certificates for the providers' HTTPS APIs, curl for the
# container health checks.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      librdkafka1 libhiredis0.14 libfmt9 libcpp-httplib0.11 libyaml-cpp0.7 libcurl4 libssl3 \
      libdate-tz3 libjemalloc2 tzdata ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/pv --create-home --shell /usr/sbin/nologin pv \
 && mkdir -p /var/lib/pv/keys /var/lib/pv/outbox /etc/pv \
 && chown -R pv:pv /var/lib/pv
COPY --from=build /out/ /usr/local/bin/
COPY catalog/demo /etc/pv/catalog
COPY deploy/config/pv.yaml /etc/pv/pv.yaml
ENV PV_CONFIG=/etc/pv/pv.yaml
USER pv
WORKDIR /var/lib/pv
# Named volumes mounted here start with the pv user's ownership (keys file, outbox).
VOLUME ["/var/lib/pv/keys", "/var/lib/pv/outbox"]
EXPOSE 8080 9110 9091 9111 9112 9113
CMD ["pvctl", "--help"]
