#!/usr/bin/env bash
# Headless Chromium for runnel's browser test of the live view (`runnel run
# --ui`): the Debian package, installed when missing.
#
#   tools/chromium.sh     install the packages chromium and chromium-driver if
#                         /usr/bin/chromium is missing (as root), then print
#                         one KEY=VALUE line:
#                           RUNNEL_CHROMIUM=/usr/bin/chromium
#
# Typical use (what tools/test.sh does):
#   set -a; eval "$(bash tools/chromium.sh)"; set +a
#
# Progress goes to stderr; only the KEY=VALUE line goes to stdout.
set -euo pipefail
log() { echo "chromium: $*" >&2; }
bin=/usr/bin/chromium
if [ ! -x "$bin" ]; then
    if [ "$(id -u)" != 0 ]; then
        log "Chromium is not installed; install the Debian packages chromium and chromium-driver (as root)"
        exit 1
    fi
    log "installing the Debian packages chromium and chromium-driver"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver fonts-dejavu-core >&2
fi
log "$("$bin" --version 2>/dev/null || echo "$bin")"
echo "RUNNEL_CHROMIUM=$bin"
