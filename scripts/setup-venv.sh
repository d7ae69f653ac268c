#!/usr/bin/env bash
# Create the virtual environment $1 and install homekeep with its dev tools into it.
set -euo pipefail
venv=${1:-.venv}
python=""
for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python=$candidate
    break
  fi
done
if [ -z "$python" ]; then
  echo "homekeep needs Python 3.11 or newer: install it with: apt-get install python3" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv with $($python --version)"
  "$python" -m venv "$venv"
fi
echo "installing homekeep and its dependencies into $venv"
log=$(mktemp)
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]' >"$log" 2>&1; then
  grep -v '^WARNING: Location' "$log" | tail -n 30 >&2
  rm -f "$log"
  echo "pip install failed: see the lines above" >&2
  exit 1
fi
rm -f "$log"
