#!/usr/bin/env bash
# What the benchmarks need beyond the project itself: the peer brokers (Debian
# packages) and their Python clients (bench/requirements.txt, into .venv).
# Idempotent. The system services these packages ship are never used:
# bench/peers starts private foreground instances on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/apt-ensure.sh rabbitmq-server nats-server redis-server default-jre-headless

# Google's Pub/Sub emulator, the pubsub step's peer: a Java program from the
# Google Cloud CLI's apt repository (not Debian's). Where no configured apt
# source has it, say so and go on: `python -m bench` then reports the pubsub
# step as skipped with the missing launcher, and the other steps still run.
if ! scripts/apt-ensure.sh google-cloud-cli-pubsub-emulator; then
  echo "warning: google-cloud-cli-pubsub-emulator could not be installed (no apt source has it?);" \
    "the pubsub benchmark step will be skipped" >&2
fi

VENV="${VENV:-.venv}"  # override to use a shared venv
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV"
fi
"$PY" -m pip install --quiet -r bench/requirements.txt
