#!/usr/bin/env bash
# apt-ensure.sh PACKAGE...: install the Debian packages that are missing, and
# only those. Needs root or sudo. Service start-ups are blocked during the
# install (a policy-rc.d, only if the machine has none): the project starts
# its own private instances where it needs any.
set -euo pipefail
missing=()
for p in "$@"; do
  # "install ok installed" only: a removed package whose config files remain
  # still makes `dpkg -s` succeed.
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
policy=/usr/sbin/policy-rc.d
added_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  added_policy=1
fi
trap '[ -n "$added_policy" ] && $SUDO rm -f "$policy"' EXIT
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
