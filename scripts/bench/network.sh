#!/bin/sh
# Network benchmarks (root): time to create a network resource, and TCP
# throughput between two nodes' resources over WireGuard versus the plain
# farm LAN underneath (iperf3), with their ratio: WG_ROUNDS rounds (default
# 5), alternating which goes first, medians and the lowest and highest
# ratio, with the load average (the host has no kernel WireGuard: this is
# wireguard-go, with TUN GSO/GRO and batched UDP GSO/GRO I/O). Then one TCP
# stream over WireGuard vs veth in a tcg guest of the boot image's kernel,
# kernel WireGuard and wireguard-go side by side (WG_GUEST=0 skips it,
# about 100 s). HTTPS requests per second through the gateway versus the
# backend directly.
set -eu
export PATH="$PATH:/usr/local/go/bin"
cd "$(dirname "$0")/../.."
go test -run '^$' -bench 'BenchmarkCreate' -benchtime=20x ./internal/node/network/
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# run CMD...: runs it into $out, prints the lines matching $keep, fails as
# it fails (no pipe: sh has no pipefail).
run() {
	rc=0
	"$@" >"$out" 2>&1 || rc=$?
	grep -E "$keep" "$out" || true
	[ "$rc" = 0 ] || { cat "$out"; exit "$rc"; }
}
keep='load average|round |Benchmark.*-[0-9]|^(ok|FAIL|---)'
run go test -run '^$' -bench 'BenchmarkThroughput' -benchtime="${WG_ROUNDS:-5}"x -v ./internal/node/network/
if [ "${WG_GUEST:-1}" != 0 ]; then
	keep='wireguard: |round |BenchmarkTCP-|^(ok|FAIL|---)'
	export ZOS_WG_GUEST_BENCH=1
	run go test -count=1 -run '^TestGuestKernelWireGuard$' -v ./internal/sys/wg/
fi
go test -run '^$' -bench 'BenchmarkProxy' -benchtime=1x ./internal/node/network/gateway/
