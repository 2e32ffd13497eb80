#!/usr/bin/env bash
# Starts the machine's real services the tests and the demo use, when they are stopped:
# PostgreSQL (127.0.0.1:5432, dr-restore's restored database), Redis (127.0.0.1:6379,
# worker-scaler's RQ queues); and installs Prometheus (remote-write receiver for the load-test
# summary) from Debian's packages when it is missing. Idempotent; safe to run repeatedly.
set -euo pipefail

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 60); do up "$1" && return 0; sleep 0.5; done
  echo "services: $2 did not come up on 127.0.0.1:$1" >&2
  return 1
}

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

if ! up 5432; then
  echo "services: starting PostgreSQL" >&2
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
  wait_port 5432 PostgreSQL
fi

if ! up 6379; then
  echo "services: starting Redis" >&2
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 Redis
fi

need=()
command -v prometheus >/dev/null 2>&1 || [[ -x /usr/bin/prometheus ]] || need+=(prometheus)
if ((${#need[@]})); then
  echo "services: installing ${need[*]} from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  # The package's post-install tries to start a service; there is no init system here and
  # the tests run their own Prometheus, so a refused start is expected and harmless.
  as_root apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
    { as_root apt-get update -q >/dev/null && as_root apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
  # Stop any instance the package started: tests start their own on free ports.
  pkill -x prometheus 2>/dev/null || true
fi
