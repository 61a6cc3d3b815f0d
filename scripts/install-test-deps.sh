#!/usr/bin/env bash
# Debian packages the test suite drives: kcat (the C Kafka CLI, a real client).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/apt-ensure.sh kcat
