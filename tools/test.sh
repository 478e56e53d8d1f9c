#!/usr/bin/env bash
# Runs runnel's whole test suite: unit, integration and crash tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# What this script started, and so stops on exit.
started_broker=""
started_postgres=""
cleanup() {
    if [ -n "$started_postgres" ]; then
        bash tools/postgres-test-server.sh stop "$started_postgres"
    fi
    if [ -n "$started_broker" ]; then
        bash tools/kafka-test-broker.sh stop "$started_broker"
    fi
}
trap cleanup EXIT
# The Kafka tests need the test broker: start one (installing tansu the first
# time) unless RUNNEL_KAFKA_BROKER names one already (as .ci/run does).
if [ -z "${RUNNEL_KAFKA_BROKER:-}" ]; then
    broker_env=$(bash tools/kafka-test-broker.sh start)
    set -a
    eval "$broker_env"
    set +a
    started_broker=$RUNNEL_KAFKA_BROKER_PID
fi
# The PostgreSQL tests need a server: start a throwaway one (installing the
# Debian package the first time) unless RUNNEL_POSTGRES names one already.
if [ -z "${RUNNEL_POSTGRES:-}" ]; then
    postgres_env=$(bash tools/postgres-test-server.sh start)
    set -a
    eval "$postgres_env"
    set +a
    started_postgres=$RUNNEL_POSTGRES_DIR
fi
# The live view's browser test needs headless Chromium: install the Debian
# package the first time unless RUNNEL_CHROMIUM names one already.
if [ -z "${RUNNEL_CHROMIUM:-}" ]; then
    chromium_env=$(bash tools/chromium.sh)
    set -a
    eval "$chromium_env"
    set +a
fi
cargo test --workspace --locked "$@"
# The wake-up handshake under the model checker (a feature of its own: it
# swaps the waker's atomics for the checker's, so only these tests run with it).
cargo test -p runnel-engine --locked --features loom --lib loom
