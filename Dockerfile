# sbidad in a container (multi-stage, Debian 12 slim, non-root).
#
#   docker build -t sbida .
#   docker run -p 127.0.0.1:8080:8080 -v sbida-data:/var/lib/sbida sbida
#
# Inside the container sbidad listens on 0.0.0.0:8080, serves the models baked in from
# models/*.safetensors with their evaluations models/eval (plus the always-available ETKF/LETKF/PF baselines) and keeps its
# SQLite database on the volume /var/lib/sbida (or, with SBIDA_DB=postgresql://..., shares a
# PostgreSQL database with other replicas: deploy/README.md). Anything beyond loopback should use bearer
# tokens: mount a file with one token per line and set SBIDA_TOKENS_FILE (see
# docker-compose.yml and deploy/README.md). Every flag is also an SBIDA_* variable
# (docs/daemon.md).

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libjansson-dev \
      libopenblas-dev libsqlite3-dev libuv1-dev libmicrohttpd-dev libfftw3-dev libpng-dev libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY core/ core/
COPY server/ server/
COPY schema/ schema/
COPY models/ models/
COPY deploy/install-models.sh deploy/
# Portable x86-64 code (NATIVE=0): the image may run on another CPU than the builder's.
# The models go with their evaluations (models/eval), which GET /v1/estimators shows.
RUN make -j"$(nproc)" build/sbidad build/sbida \
 && deploy/install-models.sh /out/models models

FROM debian:bookworm-slim
# curl only serves the HEALTHCHECK.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libjansson4 libopenblas0-pthread libsqlite3-0 libuv1 \
      libmicrohttpd12 libfftw3-double3 libpng16-16 libpq5 curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 sbida \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/sbida --shell /usr/sbin/nologin sbida \
 && mkdir -p /var/lib/sbida \
 && chown sbida:sbida /var/lib/sbida
COPY --from=build /src/build/sbidad /src/build/sbida /usr/local/bin/
COPY --from=build /out/models/ /opt/sbida/models/
ENV SBIDA_LISTEN=0.0.0.0:8080 \
    SBIDA_MODELS=/opt/sbida/models \
    SBIDA_DB=/var/lib/sbida/sbida.db \
    SBIDA_WORKERS=2 \
    SBIDA_SHUTDOWN_GRACE=10
VOLUME ["/var/lib/sbida"]
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS -o /dev/null http://127.0.0.1:8080/v1/health/live || exit 1
ENTRYPOINT ["/usr/local/bin/sbidad"]
