#!/bin/sh
# Network benchmarks (root): time to create a network resource, and TCP
# throughput between two nodes' resources over WireGuard (wireguard-go)
# versus the plain farm LAN underneath (iperf3), with their ratio; HTTPS
# requests per second through the gateway versus the backend directly.
set -eu
export PATH="$PATH:/usr/local/go/bin"
cd "$(dirname "$0")/../.."
go test -run '^$' -bench 'BenchmarkCreate' -benchtime=20x ./internal/node/network/
go test -run '^$' -bench 'BenchmarkThroughput' -benchtime=${WG_ROUNDS:-5}x -v ./internal/node/network/
go test -run '^$' -bench 'BenchmarkProxy' -benchtime=1x ./internal/node/network/gateway/
