#!/usr/bin/env bash
# What the benchmarks need beyond the project itself: the peer brokers (Debian
# packages) and their Python clients (bench/requirements.txt, into .venv).
# Idempotent. The system services these packages ship are never used:
# bench/peers starts private foreground instances on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/apt-ensure.sh rabbitmq-server nats-server redis-server

VENV="${VENV:-.venv}"  # override to use a shared venv
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV"
fi
"$PY" -m pip install --quiet -r bench/requirements.txt
