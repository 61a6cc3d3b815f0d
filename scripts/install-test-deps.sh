#!/usr/bin/env bash
# Debian packages the test suite drives: kcat (the C Kafka CLI, a real client),
# mount (mount/umount: the disk-full test puts the data directory on a small tmpfs),
# openssl (an independent verifier of SNS message signatures).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/apt-ensure.sh kcat mount openssl
