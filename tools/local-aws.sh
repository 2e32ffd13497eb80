#!/usr/bin/env bash
# Starts (or reuses) the local stand-ins for `make demo` / `make invoke`:
#   moto server  on 127.0.0.1:$MOTO_PORT  (AWS APIs)
#   cargo lambda watch on 127.0.0.1:$WATCH_PORT (the Lambda Invoke API)
# Usage: tools/local-aws.sh start|stop|env
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
MOTO_PORT="${MOTO_PORT:-5599}"
WATCH_PORT="${WATCH_PORT:-9599}"
state="$root/.local"
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

write_env() {
  sed "s#^AWS_ENDPOINT_URL=.*##" "$root/tools/local.env" > "$state/function.env"
  echo "AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT" >> "$state/function.env"
}

case "${1:-start}" in
  start)
    "$root/tools/bootstrap.sh"
    write_env
    if ! up "$MOTO_PORT"; then
      nohup moto_server -H 127.0.0.1 -p "$MOTO_PORT" > "$state/moto.log" 2>&1 &
      echo $! > "$state/moto.pid"
      wait_port "$MOTO_PORT" moto 120
    fi
    (cd "$root" && cargo build --quiet --bins)
    # A running emulator keeps its function instances: restart it when a binary is newer (it runs
    # with --ignore-changes: a hot reload kills an invocation in flight, e.g. when a file is saved).
    if up "$WATCH_PORT" && [[ -f "$state/watch.pid" ]] \
      && [[ -n "$(find "$root/target/debug" -maxdepth 1 -type f -executable -newer "$state/watch.pid" 2>/dev/null | head -1)" ]]; then
      kill "$(cat "$state/watch.pid")" 2>/dev/null || true
      for _ in $(seq 50); do up "$WATCH_PORT" || break; sleep 0.2; done
    fi
    if ! up "$WATCH_PORT"; then
      (cd "$root" && nohup cargo lambda watch --quiet --ignore-changes -A 127.0.0.1 -P "$WATCH_PORT" \
        --env-file "$state/function.env" > "$state/watch.log" 2>&1 &
        echo $! > "$state/watch.pid")
      wait_port "$WATCH_PORT" watch 600
    fi
    ;;
  stop)
    for p in watch moto; do
      if [[ -f "$state/$p.pid" ]]; then
        kill "$(cat "$state/$p.pid")" 2>/dev/null || true
        rm -f "$state/$p.pid"
      fi
    done
    ;;
  env)
    echo "export PATH=$root/.venv/bin:\$PATH"
    echo "export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1"
    echo "export MOTO_URL=http://127.0.0.1:$MOTO_PORT WATCH_URL=http://127.0.0.1:$WATCH_PORT"
    ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
