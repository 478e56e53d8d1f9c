#!/usr/bin/env bash
# Polls the live view's JSON API and /metrics once a second (what a page
# and a scraper do: five requests a second) until killed.
addr=$1
while true; do
    curl -s -m 2 -o /dev/null "http://$addr/api/queries"
    curl -s -m 2 -o /dev/null "http://$addr/api/queries/bench/progress"
    curl -s -m 2 -o /dev/null "http://$addr/api/queries/bench/latency"
    curl -s -m 2 -o /dev/null "http://$addr/api/queries/bench/latency/seconds"
    curl -s -m 2 -o /dev/null "http://$addr/metrics"
    sleep 1
done
