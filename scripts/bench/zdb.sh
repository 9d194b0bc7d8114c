#!/usr/bin/env bash
# Benchmarks of `zos zdb` with redis-benchmark (redis-tools), and the same
# runs against redis-server (if installed) as a reference point on this
# machine: there is no C 0-db here to compare with.
#
#   scripts/bench/zdb.sh            (make bench runs it)
#   N=200000 scripts/bench/zdb.sh   requests per run
#
# Prints ops/s and p99 latency (ms) of SET and GET, 1 KiB values, 50 clients,
# without pipelining (-P 1) and with 16 requests per pipeline (-P 16), first
# with redis-benchmark's single key, then with 1,000,000 random keys (-r).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/local/go/bin"
N=${N:-200000}
command -v redis-benchmark >/dev/null || { echo "redis-benchmark missing (apt-get install redis-tools)"; exit 1; }
mkdir -p bin
CGO_ENABLED=0 go build -o bin/zos ./cmd/zos

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

wait_ping() {
	for _ in $(seq 1 100); do
		redis-cli -p "$1" PING >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "server on port $1 did not start"; return 1
}

# gen_keys: SET commands of 1,000,000 distinct 16-byte keys, 32-byte values.
gen_keys() {
	awk 'BEGIN { v = "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv"; for (i = 0; i < 1000000; i++) printf "*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$32\r\n%s\r\n", i, v }'
}

# run NAME PORT: the four redis-benchmark runs, one line each.
run() {
	local name=$1 port=$2
	for r in "" "-r 1000000"; do
		for p in 1 16; do
			# shellcheck disable=SC2086
			redis-benchmark -p "$port" -t set,get -d 1024 -c 50 -n "$N" -P "$p" $r --csv 2>/dev/null |
				awk -F'"' -v name="$name" -v p="$p" -v r="${r:-single-key}" \
					'$2=="SET"||$2=="GET" {printf "%-28s %-10s -P %-3s %-4s %12.0f ops/s  p99 %7.3f ms\n", name, r, p, $2, $4, $14}'
		done
	done
}

port=19990
bin/zos zdb --data "$work/zdb/data" --index "$work/zdb/index" --listen 127.0.0.1 --port $port 2>"$work/zdb.log" &
pids+=($!)
wait_ping $port
run "zos zdb (sync interval)" $port

port2=19991
bin/zos zdb --data "$work/zdb2/data" --index "$work/zdb2/index" --listen 127.0.0.1 --port $port2 --sync always 2>"$work/zdb2.log" &
pids+=($!)
wait_ping $port2
N=$((N / 4)) run "zos zdb (sync always)" $port2

if command -v redis-server >/dev/null; then
	port3=19992
	redis-server --port $port3 --save '' --appendonly yes --appendfsync everysec --dir "$work" >/dev/null 2>&1 &
	pids+=($!)
	wait_ping $port3
	run "redis-server (aof everysec)" $port3
	redis-cli -p $port3 FLUSHALL >/dev/null
	gen_keys | redis-cli -p $port3 --pipe >/dev/null
	pid3=${pids[-1]}
	echo "redis-server: $(redis-cli -p $port3 DBSIZE) keys, RSS $(awk '/VmRSS/ {print $2}' "/proc/$pid3/status") KiB, used_memory $(redis-cli -p $port3 INFO memory | awk -F: '/^used_memory:/ {printf "%d", $2/1000000}') bytes/key"
else
	echo "redis-server not installed: no reference run"
fi

# Memory and start-up with 1,000,000 keys (16-byte keys, 32-byte values,
# loaded with redis-cli --pipe into a fresh server): resident size of the
# server, and time until it answers PING after a restart.
port4=19993
bin/zos zdb --data "$work/zdb4/data" --index "$work/zdb4/index" --listen 127.0.0.1 --port $port4 2>"$work/zdb4.log" &
pids+=($!)
wait_ping $port4
gen_keys | redis-cli -p $port4 --pipe >/dev/null
keys=$(redis-cli -p $port4 DBSIZE)
pid4=${pids[-1]}
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid4/status")
echo "zos zdb: $keys keys, RSS ${rss} KiB = $(( rss * 1024 / keys )) bytes/key of process memory (Go heap and runtime included)"
kill "$pid4"; wait "$pid4" 2>/dev/null || true
start=$(date +%s.%N)
bin/zos zdb --data "$work/zdb4/data" --index "$work/zdb4/index" --listen 127.0.0.1 --port $port4 2>"$work/zdb4.log" &
pids+=($!)
wait_ping $port4
end=$(date +%s.%N)
echo "zos zdb: restart with $(redis-cli -p $port4 DBSIZE) keys answered PING after $(echo "$end - $start" | bc) s ($(grep -o 'msg=store_opened.*' "$work/zdb4.log"))"
