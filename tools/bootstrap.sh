#!/usr/bin/env bash
# Installs what the Makefile and the tests need into the project-local virtual environment
# .venv: moto (the local AWS stand-in), the AWS CLI v1 and cargo-lambda (with zig).
# Idempotent and safe to run concurrently (flock); re-installs when requirements change.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
req="$root/tools/requirements.txt"
stamp="$venv/.requirements.sha256"
mkdir -p "$root/.local"
exec 9>"$root/.local/bootstrap.lock"
flock 9
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
echo "bootstrap: installing $(grep -vc '^#' "$req") packages into .venv" >&2
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
