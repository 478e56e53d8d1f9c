#!/usr/bin/env bash
# Runs runnel's whole test suite: unit, integration and crash tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Kafka tests need the test broker: start one (installing tansu the first
# time) unless RUNNEL_KAFKA_BROKER names one already (as .ci/run does).
if [ -z "${RUNNEL_KAFKA_BROKER:-}" ]; then
    broker_env=$(bash tools/kafka-test-broker.sh start)
    set -a
    eval "$broker_env"
    set +a
    trap 'bash tools/kafka-test-broker.sh stop "$RUNNEL_KAFKA_BROKER_PID"' EXIT
fi
cargo test --workspace --locked "$@"
# The wake-up handshake under the model checker (a feature of its own: it
# swaps the waker's atomics for the checker's, so only these tests run with it).
cargo test -p runnel-engine --locked --features loom --lib loom
