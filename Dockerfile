# One Edgegate image for every process kind: `start` (control plane + edge), `server` (control
# plane) or `edge` (edge only) is its command. The TypeScript sources run directly on Node 24.
#
#   podman build --format docker -t edgegate .          (or docker build -t edgegate .)
#   podman run --rm edgegate --help
#
# BASE_IMAGE is any Debian bookworm. On machines without a registry, build one with
# `debootstrap --variant=minbase bookworm` and `podman import` (npm run image:test does).
ARG BASE_IMAGE=debian:bookworm-slim

# ---- build: npm ci brings Node 24 (the repo pins it as the `node` dev dependency) -------------
FROM ${BASE_IMAGE} AS build
# Debian's Node 18 and npm only run `npm ci`; the image runs on the Node 24 that npm ci installs.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/contract/package.json packages/contract/
COPY packages/edge/package.json packages/edge/
COPY packages/server/package.json packages/server/
COPY packages/cli/package.json packages/cli/
COPY packages/sdk/package.json packages/sdk/
# A build secret `npm_ca` (a PEM bundle) is trusted on top of Debian's CAs, for builds behind a
# TLS-inspecting proxy: `--secret id=npm_ca,src=/etc/ssl/certs/ca-certificates.crt`.
RUN --mount=type=secret,id=npm_ca \
    if [ -s /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi \
 && npm ci --no-audit --no-fund --loglevel=error \
 && install -D -m 0755 "$(readlink -f node_modules/.bin/node)" /opt/node/bin/node \
 && /opt/node/bin/node --version \
 && npm prune --omit=dev --no-audit --no-fund --loglevel=error \
 && rm -rf packages/sdk
COPY packages/contract/src packages/contract/src
COPY packages/edge/src packages/edge/src
COPY packages/server/src packages/server/src
COPY packages/cli/src packages/cli/src
COPY packages/cli/bin packages/cli/bin

# ---- runtime: the base, Node 24, the app and its production dependencies --------------------
FROM ${BASE_IMAGE}
# util-linux's prlimit lets the edge raise its open-file limit (it is in minbase and slim).
RUN groupadd --gid 10001 edgegate \
 && useradd --uid 10001 --gid edgegate --home-dir /var/lib/edgegate --no-create-home \
      --shell /usr/sbin/nologin edgegate \
 && install -d -o edgegate -g edgegate -m 0700 /var/lib/edgegate
COPY --from=build /opt/node/bin/node /usr/local/bin/node
COPY --from=build /app /app
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    EDGE_PG_PORT=6432 \
    DATA_DIR=/var/lib/edgegate
WORKDIR /var/lib/edgegate
USER edgegate
EXPOSE 8080 6432
# /healthz answers on PORT for every command (the edge alone keeps a small status listener).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/packages/cli/bin/edgegate.js"]
CMD ["start"]
