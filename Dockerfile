# Zegel secure-mail relay: multi-stage image (docs/operations.md).
# Checked statically (test/dockerfile-lint.test.ts); build with
#   docker build -t zegel .

# Each build stage starts from the same Node image with the compilers for the
# native modules (better-sqlite3, argon2, re2) when no prebuilt binary fits.
# (Stages are not chained FROM a shared toolchain stage: dockerfilelint takes a
# stage name for an untagged base image.)

# Production dependencies only, compiled for this platform.
FROM node:20-bookworm-slim AS deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# The TypeScript build and the reader page bundle (needs the dev dependencies).
FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts ./scripts
COPY src ./src
# the browser code (web/) bundles the reader's strings from templates/reader
COPY web ./web
COPY templates ./templates
COPY bin ./bin
RUN npm run build \
 && rm -rf dist/test

# Runtime: Node 20 LTS slim, no compilers, no curl; runs as an unprivileged user.
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    ZEGEL_HEALTH_URL=http://127.0.0.1:9090/healthz
RUN groupadd --system zegel \
 && useradd --system --gid zegel --home-dir /var/lib/zegel --shell /usr/sbin/nologin zegel \
 && mkdir -p /var/lib/zegel /var/lib/zegel-outbox /etc/zegel \
 && chown zegel:zegel /var/lib/zegel /var/lib/zegel-outbox \
 && chmod 0700 /var/lib/zegel /var/lib/zegel-outbox
WORKDIR /app
COPY --from=deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --chown=root:root package.json ./
COPY --chown=root:root bin ./bin
COPY --chown=root:root rules ./rules
COPY --chown=root:root templates ./templates
COPY --chown=root:root config ./config
COPY --chown=root:root deploy/docker/zegel.yaml /etc/zegel/zegel.yaml
USER zegel
# data.dir only; delivery.outboxDir (/var/lib/zegel-outbox) stays outside it,
# so a copy of the volume holds no delivered mail (no link keys)
VOLUME ["/var/lib/zegel"]
# SMTP from the mail server, the recipient reader, the operations listener
EXPOSE 2525 8080 9090
# Node's fetch, as the slim image has no curl. Three misses 30 s apart give a
# starting relay 90 s (--start-period is left out: dockerfilelint misreads it).
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.ZEGEL_HEALTH_URL).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM drains (docker stop); SIGHUP reloads (docker kill -s HUP)
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "bin/zegel", "start", "--config", "/etc/zegel/zegel.yaml"]
