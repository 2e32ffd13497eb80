#!/usr/bin/env bash
# Starts (or reuses) the local stand-ins for `make demo` / `make invoke`:
#   moto server  on 127.0.0.1:$MOTO_PORT  (AWS APIs)
#   cargo lambda watch on 127.0.0.1:$WATCH_PORT (the Lambda Invoke API)
# Usage: tools/local-aws.sh start|stop|env
# The emulator is `cargo lambda watch --only-lambda-apis`; the functions are the prebuilt
# target/debug binaries, one process each (four shards, two coordinators) polling its Runtime
# API, with tools/local.env. State (pids, logs per function, the functions' env file) lives in .local/<MOTO_PORT>-<WATCH_PORT>/, so a
# second stack on other ports (MOTO_PORT=5600 WATCH_PORT=9600 make up) is its own: `make down`
# with those ports stops only it. Each service runs in its own process group (setsid), and
# stop kills the group: cargo-lambda's function processes go with it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
MOTO_PORT="${MOTO_PORT:-5599}"
WATCH_PORT="${WATCH_PORT:-9599}"
# The demo's Prometheus (tools/demo-loadtest.sh starts it; the coordinator remote-writes to it).
PROM_PORT="${PROM_PORT:-9490}"
# alert-receivers.py for the alerting demo: one per stack (the default stack: 8491).
ALERT_RECEIVERS_PORT="${ALERT_RECEIVERS_PORT:-$(( WATCH_PORT == 9599 ? 8491 : WATCH_PORT - 1000 ))}"
# Shard processes: a coordinator's shards run side by side (with 1, a 3-shard run queued its
# shards behind each other and sent a third of its requests).
WATCH_CONCURRENCY="${WATCH_CONCURRENCY:-4}"
state="$root/.local/$MOTO_PORT-$WATCH_PORT"
mkdir -p "$state"
export PATH="$root/.venv/bin:$PATH"

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 what=$2 tries=${3:-600}
  for _ in $(seq "$tries"); do
    up "$port" && return 0
    # A process that has exited (a bad env file, a port taken) will not come up: say so now.
    if [[ -f "$state/$what.pid" ]] && ! kill -0 "$(cat "$state/$what.pid")" 2>/dev/null; then
      echo "local-aws: $what exited before listening on port $port:" >&2
      tail -5 "$state/$what.log" >&2
      return 1
    fi
    sleep 0.5
  done
  echo "local-aws: $what did not come up on port $port; see $state/$what.log" >&2
  return 1
}

# tools/local.env is written for the default ports (moto 5599, emulator 9599); every address
# in it that names one of them follows this stack's ports.
write_env() {
  sed -e "s#^AWS_ENDPOINT_URL=.*##" \
      -e "s#127\.0\.0\.1:5599#127.0.0.1:$MOTO_PORT#g" \
      -e "s#127\.0\.0\.1:9599#127.0.0.1:$WATCH_PORT#g" \
      -e "s#127\.0\.0\.1:9490#127.0.0.1:$PROM_PORT#g" \
      -e "s#127\.0\.0\.1:8491#127.0.0.1:$ALERT_RECEIVERS_PORT#g" \
      "$root/tools/local.env" > "$state/function.env"
  echo "AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT" >> "$state/function.env"
}

# Stops the process group a pid file names (the services are started with setsid, so the
# pid is the group's id), then waits for it to go.
stop_group() {
  local f="$state/$1.pid" pid
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$f"
}

case "${1:-start}" in
  start)
    "$root/tools/bootstrap.sh"
    write_env
    if ! up "$MOTO_PORT"; then
      setsid moto_server -H 127.0.0.1 -p "$MOTO_PORT" > "$state/moto.log" 2>&1 < /dev/null &
      echo $! > "$state/moto.pid"
      wait_port "$MOTO_PORT" moto 120
    fi
    # The binaries the emulator serves, built once with the tests' feature set (make test builds
    # the same, so the two share every artefact).
    (cd "$root" && cargo build --quiet --workspace --all-targets)
    if ! up "$WATCH_PORT"; then
      # --only-lambda-apis: the real Invoke and Runtime APIs; the functions are our prebuilt
      # binaries below (cargo-lambda would `cargo run` each, a build with other features).
      # $! here is cargo-lambda itself (no subshell between), so the pid file names it.
      cd "$root"
      setsid cargo lambda watch --only-lambda-apis --ignore-changes \
        -A 127.0.0.1 -P "$WATCH_PORT" > "$state/watch.log" 2>&1 < /dev/null &
      echo $! > "$state/watch.pid"
      wait_port "$WATCH_PORT" watch 600
    fi
    # The function processes are restarted on every start, so they always run the binaries
    # just built; each polls the emulator's Runtime API for its own name.
    stop_group functions
    setsid bash -c '
      root=$1 state=$2 port=$3 shards=$4; shift 4
      set -a; . "$state/function.env"; set +a
      for fn in "$@"; do
        n=1
        case $fn in loadtest-shard) n=$shards ;; loadtest-coordinator) n=2 ;; esac
        for _ in $(seq "$n"); do
          AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt/$fn" AWS_LAMBDA_FUNCTION_NAME="$fn" \
            AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=4096 \
            "$root/target/debug/$fn" >> "$state/$fn.log" 2>&1 < /dev/null &
        done
      done
      wait' _ "$root" "$state" "$WATCH_PORT" "$WATCH_CONCURRENCY" \
      $(cd "$root/functions" && for d in */; do [[ -f "$d/Cargo.toml" ]] && echo "${d%/}"; done) \
      > "$state/functions.log" 2>&1 < /dev/null &
    echo $! > "$state/functions.pid"
    ;;
  stop)
    stop_group alert-receivers
    stop_group prometheus
    stop_group functions
    stop_group watch
    stop_group moto
    ;;
  log)
    # A function's own log (its JSON lines, errors and panics): tools/local-aws.sh log <fn>
    cat "$state/${2:-watch}.log" 2>/dev/null || true
    ;;
  env)
    write_env
    echo "export PATH=$root/.venv/bin:\$PATH"
    echo "export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1"
    echo "export STATE_DIR=$state"
    echo "export MOTO_URL=http://127.0.0.1:$MOTO_PORT WATCH_URL=http://127.0.0.1:$WATCH_PORT PROM_URL=http://127.0.0.1:$PROM_PORT ALERT_RECEIVERS_PORT=$ALERT_RECEIVERS_PORT"
    ;;
  *) echo "usage: $0 start|stop|env|log" >&2; exit 2 ;;
esac
