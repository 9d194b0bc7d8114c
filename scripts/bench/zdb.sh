#!/usr/bin/env bash
# Benchmarks of `zos zdb` with redis-benchmark (redis-tools), and the same
# runs against redis-server (if installed) as a reference point on this
# machine: there is no C 0-db here to compare with.
#
#   scripts/bench/zdb.sh            (make bench runs it)
#   N=200000 scripts/bench/zdb.sh   requests per run
#   RUNS=5 scripts/bench/zdb.sh      alternating runs of the side-by-side ratio
#
# Prints ops/s and p99 latency (ms) of SET and GET, 1 KiB values, 50 clients,
# without pipelining (-P 1) and with 16 requests per pipeline (-P 16), first
# with redis-benchmark's single key, then with 1,000,000 random keys (-r).
# Then the figure of the README's table: zos zdb and redis-server side by
# side, -P 1, random keys, RUNS alternating runs: medians, spread, the
# median of the per-run ratios and each server's CPU time per request
# (user+system from /proc: less sensitive to the machine's load than ops/s).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/local/go/bin"
N=${N:-200000}
RUNS=${RUNS:-5}
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

# side_by_side ZDB_PID ZDB_PORT REDIS_PID REDIS_PORT: the ratio, RUNS
# alternating runs of N/2 requests each.
side_by_side() {
	local zpid=$1 zport=$2 rpid=$3 rport=$4 tck out name pid port
	tck=$(getconf CLK_TCK)
	out=$work/side.txt
	: >"$out"
	for i in $(seq 1 "$RUNS"); do
		for srv in "zdb $zpid $zport" "redis $rpid $rport"; do
			read -r name pid port <<<"$srv"
			for t in set get; do
				local c0 c1 rate
				c0=$(awk '{print $14+$15}' "/proc/$pid/stat")
				rate=$(redis-benchmark -p "$port" -t $t -d 1024 -c 50 -n $((N / 2)) -P 1 -r 1000000 --csv 2>/dev/null | awk -F'"' 'NR>1 {print $4}')
				c1=$(awk '{print $14+$15}' "/proc/$pid/stat")
				echo "$i $name $t $rate $(awk -v a="$c0" -v b="$c1" -v n=$((N / 2)) -v t="$tck" 'BEGIN {printf "%.1f", (b-a)*1e6/t/n}') $(cut -d' ' -f1 /proc/loadavg)" >>"$out"
			done
		done
	done
	awk '
	function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
	{ k = $2 " " $3; n[k]++; r[k, n[k]] = $4; c[k, n[k]] = $5; rate[$1, k] = $4; if (!lmin || $6 < lmin) lmin = $6; if ($6 > lmax) lmax = $6 }
	END {
		for (k in n) { delete a; delete b; min = 1e12; max = 0
			for (i = 1; i <= n[k]; i++) { a[i] = r[k, i]; b[i] = c[k, i]; if (r[k, i] < min) min = r[k, i]; if (r[k, i] > max) max = r[k, i] }
			m[k] = med(a, n[k]); cm[k] = med(b, n[k]); lo[k] = min; hi[k] = max }
		for (t = 1; t <= 2; t++) { op = t == 1 ? "set" : "get"; delete q
			for (i = 1; i <= n["zdb " op]; i++) q[i] = rate[i, "zdb " op] / rate[i, "redis " op]
			rs = ""; for (i = 1; i <= n["zdb " op]; i++) rs = rs sprintf(" %.2f", q[i])
			printf "side by side -P 1 -r %-4s zos zdb %8.0f ops/s (%.0f-%.0f) %5.1f us CPU/req | redis-server %8.0f ops/s (%.0f-%.0f) %5.1f us CPU/req | ratio median %.2f, runs%s\n",
				toupper(op), m["zdb " op], lo["zdb " op], hi["zdb " op], cm["zdb " op], m["redis " op], lo["redis " op], hi["redis " op], cm["redis " op], med(q, n["zdb " op]), rs }
		printf "side by side: %d runs each, %d requests per run, 1-minute load average %s-%s on %d cores\n", n["zdb set"], '"$((N / 2))"', lmin, lmax, '"$(nproc)"'
	}' "$out"
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
	port5=19994
	bin/zos zdb --data "$work/zdb5/data" --index "$work/zdb5/index" --listen 127.0.0.1 --port $port5 2>"$work/zdb5.log" &
	pids+=($!)
	wait_ping $port5
	redis-cli -p $port3 FLUSHALL >/dev/null
	side_by_side "${pids[-1]}" $port5 "${pids[-2]}" $port3
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
