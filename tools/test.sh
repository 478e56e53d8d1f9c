#!/usr/bin/env bash
# Runs runnel's whole test suite: unit, integration and crash tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
