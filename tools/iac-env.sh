#!/usr/bin/env bash
# Makes sure an IaC tool's Python environment is installed and prints its bin directory.
#   tools/iac-env.sh hcl2      python-hcl2 in the project's .venv (tools/requirements-iac.txt)
#   tools/iac-env.sh checkov   checkov in .local/venv-checkov (tools/requirements-checkov.txt)
# checkov gets its own environment: it pins boto3==1.35.49 (moto and the AWS CLI in .venv need
# newer) and its bc-python-hcl2 installs the same `hcl2` module as python-hcl2.
# Idempotent, safe to run concurrently (flock), re-installs when the requirements change.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
what="${1:?usage: tools/iac-env.sh hcl2|checkov}"
mkdir -p "$root/.local"
case "$what" in
  hcl2)
    "$root/tools/bootstrap.sh" >&2
    venv="$root/.venv"
    req="$root/tools/requirements-iac.txt"
    stamp="$venv/.requirements-iac.sha256"
    lock="$root/.local/bootstrap.lock" # the same lock as bootstrap.sh: one pip at a time in .venv
    ;;
  checkov)
    venv="$root/.local/venv-checkov"
    req="$root/tools/requirements-checkov.txt"
    stamp="$venv/.requirements.sha256"
    lock="$root/.local/venv-checkov.lock"
    ;;
  *) echo "usage: tools/iac-env.sh hcl2|checkov" >&2; exit 2 ;;
esac
exec 9>"$lock"
flock 9
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$venv/bin"
  exit 0
fi
echo "iac-env: installing $(basename "$req") into ${venv#"$root"/}" >&2
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
echo "$want" > "$stamp"
echo "$venv/bin"
