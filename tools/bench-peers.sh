#!/usr/bin/env bash
# The peers `make bench` measures the suite against (docs/benchmarks.md): wrk and nginx from the
# distribution, oha built from crates.io into /work/.cache/oha (or $OHA_ROOT), DuckDB through
# tools/requirements-bench.txt (installed by the Makefile). Idempotent; a peer that cannot be
# installed is reported and its column skipped by the bench, never faked.
set -uo pipefail
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
if ((${#missing[@]})); then
  sudo_=""; [[ $(id -u) -ne 0 ]] && sudo_="sudo"
  $sudo_ apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
    || { $sudo_ apt-get update -q >/dev/null 2>&1 && $sudo_ apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; } \
    || echo "bench-peers: could not install ${missing[*]}; those columns are skipped" >&2
  # nginx's package starts a system service on port 80; the bench runs its own.
  command -v systemctl >/dev/null && $sudo_ systemctl disable --now nginx >/dev/null 2>&1 || true
fi
root="${OHA_ROOT:-/work/.cache/oha}"
if ! command -v oha >/dev/null && [[ ! -x "$root/bin/oha" ]]; then
  echo "bench-peers: building oha into $root (a few minutes, once)" >&2
  cargo install oha --locked --quiet --root "$root" \
    || echo "bench-peers: could not build oha; its column is skipped" >&2
fi
exit 0
