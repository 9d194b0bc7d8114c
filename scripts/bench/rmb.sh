#!/usr/bin/env bash
# Relay round trip (p50/p99) and messages/s on loopback: an embedded NATS
# server with the twin authenticator, one client twin and one echo server
# twin, every message signed, encrypted, verified and decrypted.
#   RoundTrip:  one call at a time.
#   Throughput: 64 concurrent callers on one connection.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/local/go/bin"
N="${RMB_BENCH_N:-20000}"
exec go test -run '^$' -bench '^BenchmarkRMB' -benchtime "${N}x" -count 1 ./internal/rmb/
