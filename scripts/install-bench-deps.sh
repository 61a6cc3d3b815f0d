#!/usr/bin/env bash
# What the benchmarks need beyond the project itself: the peer brokers (Debian
# packages) and their Python clients (bench/requirements.txt, into .venv).
# Idempotent: apt-get runs only for packages that are missing. Needs root or
# sudo for apt-get. The system services these packages ship are never used:
# bench/peers starts private foreground instances on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(rabbitmq-server nats-server redis-server)
missing=()
for p in "${packages[@]}"; do
  # "install ok installed" only: a removed package whose config files remain
  # still makes `dpkg -s` succeed.
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  # Keep the packages' init scripts from starting system-wide services during
  # the install (a machine without systemd would otherwise run them): a
  # policy-rc.d that denies service starts, only if the machine has none.
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
fi

VENV="${VENV:-.venv}"  # override to use a shared venv
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV"
fi
"$PY" -m pip install --quiet -r bench/requirements.txt
