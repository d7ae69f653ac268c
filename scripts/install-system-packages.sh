#!/usr/bin/env bash
# Install the Debian packages listed in $1 that are missing. Silent when all are present.
set -euo pipefail
list=${1:?usage: install-system-packages.sh LIST}
mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$list" | grep -v '^$')
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
  echo "homekeep needs these Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
    >/tmp/homekeep-apt.log 2>&1; then
  tail -n 20 /tmp/homekeep-apt.log >&2
  echo "could not install: ${missing[*]}; install them with: apt-get install ${missing[*]}" >&2
  exit 1
fi
