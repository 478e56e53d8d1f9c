#!/usr/bin/env bash
# The Kafka-compatible test broker for runnel's Kafka tests: tansu 0.6.0
# (a Kafka-compatible broker written in Rust, from crates.io), in memory.
#
#   tools/kafka-test-broker.sh install   install tansu once (cached), print its path
#   tools/kafka-test-broker.sh start     install if needed, start a broker on a free
#                                        loopback port, wait until it accepts
#                                        connections, print KEY=VALUE lines:
#                                          KAFKA_BROKER=127.0.0.1:PORT
#                                          RUNNEL_KAFKA_BROKER=127.0.0.1:PORT
#                                          RUNNEL_TANSU=/path/to/tansu
#                                          RUNNEL_KAFKA_BROKER_PID=PID
#   tools/kafka-test-broker.sh stop PID  stop a broker started by `start`
#
# Typical use (what tools/test.sh and .ci/run do):
#   set -a; eval "$(bash tools/kafka-test-broker.sh start)"; set +a
#   trap 'bash tools/kafka-test-broker.sh stop "$RUNNEL_KAFKA_BROKER_PID"' EXIT
#
# The install (`cargo install tansu --version 0.6.0 --features dynostore --locked`)
# takes about 16 minutes on 2 cores; it goes to $RUNNEL_TOOLS_DIR (default
# $HOME/.cache/runnel/tools), so later runs on the same machine skip it.
# Progress goes to stderr; only the KEY=VALUE lines go to stdout.
# Topics: "$RUNNEL_TANSU" topic create NAME --partitions N --broker tcp://$RUNNEL_KAFKA_BROKER
set -euo pipefail

TANSU_VERSION=0.6.0
ROOT="${RUNNEL_TOOLS_DIR:-$HOME/.cache/runnel/tools}"
TANSU="$ROOT/bin/tansu"

log() { echo "kafka-test-broker: $*" >&2; }

installed() {
    [ -x "$TANSU" ] && [ -f "$ROOT/.crates.toml" ] &&
        grep -q "^\"tansu $TANSU_VERSION " "$ROOT/.crates.toml"
}

install() {
    if installed; then
        return 0
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        log "cargo is needed to install tansu $TANSU_VERSION"
        exit 1
    fi
    # tansu's build needs a C compiler (ring, zstd) and pkg-config/protoc-free
    # crates only; install the C toolchain if the machine lacks it.
    if ! command -v cc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
        log "installing a C toolchain (build-essential)"
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential >&2
    fi
    mkdir -p "$ROOT"
    log "installing tansu $TANSU_VERSION into $ROOT (about 16 minutes on 2 cores, once per machine)"
    local started=$SECONDS
    # A private build directory: the install must not use (or fill) the
    # project's CARGO_TARGET_DIR.
    env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET_DIR \
        cargo install tansu --version "$TANSU_VERSION" --features dynostore --locked \
        --root "$ROOT" >&2
    log "tansu installed in $((SECONDS - started)) s"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
    install
    local attempt port pid logfile
    for attempt in 1 2 3 4 5; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        if port_open "$port"; then
            continue
        fi
        logfile="${TMPDIR:-/tmp}/runnel-tansu-$port.log"
        # setsid: the broker does not get the caller's Ctrl-C or job control.
        setsid "$TANSU" broker \
            --storage-engine=memory://tansu/ \
            --listener-url="tcp://127.0.0.1:$port" \
            --advertised-listener-url="tcp://127.0.0.1:$port" \
            </dev/null >"$logfile" 2>&1 &
        pid=$!
        local waited=0
        while [ "$waited" -lt 300 ]; do
            if ! kill -0 "$pid" 2>/dev/null; then
                break
            fi
            if port_open "$port"; then
                log "tansu $TANSU_VERSION listening on 127.0.0.1:$port (pid $pid, log $logfile)"
                echo "KAFKA_BROKER=127.0.0.1:$port"
                echo "RUNNEL_KAFKA_BROKER=127.0.0.1:$port"
                echo "RUNNEL_TANSU=$TANSU"
                echo "RUNNEL_KAFKA_BROKER_PID=$pid"
                return 0
            fi
            sleep 0.1
            waited=$((waited + 1))
        done
        log "tansu did not come up on port $port (attempt $attempt); its log:"
        tail -20 "$logfile" >&2 || true
        kill "$pid" 2>/dev/null || true
    done
    log "could not start tansu"
    exit 1
}

stop() {
    local pid="${1:-}"
    if [ -z "$pid" ]; then
        log "usage: $0 stop PID"
        exit 2
    fi
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || return 0
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
}

case "${1:-start}" in
install)
    install
    echo "RUNNEL_TANSU=$TANSU"
    ;;
start) start ;;
stop) stop "${2:-}" ;;
*)
    log "usage: $0 install | start | stop PID"
    exit 2
    ;;
esac
