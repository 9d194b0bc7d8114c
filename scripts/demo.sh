#!/usr/bin/env bash
# make demo: an embedded zgrid and one hosted node on loop disks under
# ./demo, a twin that deploys a 0-db namespace and a volume through the grid,
# and proof that they work. With a terminal it keeps running until Ctrl-C;
# without one (scripts, CI) it tears down and exits 0 once everything worked.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

DEMO=${DEMO_DIR:-$PWD/demo}
NATS_PORT=${DEMO_NATS_PORT:-4222}
HTTP_PORT=${DEMO_HTTP_PORT:-8080}
ZDB_PORT=${DEMO_ZDB_PORT:-9900}
BIN=$PWD/bin
GRID=nats://127.0.0.1:$NATS_PORT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { printf '\033[31mdemo failed: %s\033[0m\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (the node makes loop devices and btrfs pools)"
for p in $NATS_PORT $HTTP_PORT $ZDB_PORT; do
	if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
		fail "port $p is in use (set DEMO_NATS_PORT, DEMO_HTTP_PORT or DEMO_ZDB_PORT)"
	fi
done

GRID_PID= NODE_PID=
cleanup() {
	set +e
	if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
		echo "stopping the node (unmounting pools, detaching disks)"
		kill -TERM "$NODE_PID"; wait "$NODE_PID"
	fi
	if [ -n "$GRID_PID" ] && kill -0 "$GRID_PID" 2>/dev/null; then
		kill -TERM "$GRID_PID"; wait "$GRID_PID"
	fi
	# Whatever a crashed node left behind under the demo directory.
	grep -o " $DEMO/[^ ]*" /proc/self/mountinfo 2>/dev/null | sort -r | while read -r m; do umount -l "$m"; done
	for f in /sys/block/loop*/loop/backing_file; do
		[ -e "$f" ] || continue
		case "$(cat "$f")" in "$DEMO"/*) losetup -d "/dev/$(basename "$(dirname "$(dirname "$f")")")" ;; esac
	done
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# A fresh demo each run: the previous one stopped cleanly (see cleanup).
cleanup
rm -rf "$DEMO"
mkdir -p "$DEMO"
export ZOS_GRID=$GRID

say "starting zgrid (embedded NATS with JetStream, registry, relay, explorer)"
"$BIN/zgrid" run --data "$DEMO/grid" --port "$NATS_PORT" --http-port "$HTTP_PORT" >"$DEMO/zgrid.log" 2>&1 &
GRID_PID=$!

zosctl() { ZOSCTL_HOME="$DEMO/$WHO" "$BIN/zosctl" "$@"; }
WHO=farmer
zosctl key new >/dev/null
for i in $(seq 1 100); do zosctl twin create >/dev/null 2>&1 && break; sleep 0.2; done
zosctl twin create >/dev/null || fail "the grid did not come up (see $DEMO/zgrid.log)"
FARM=$(zosctl farm create demo-farm --json | sed -n 's/.*"id": *\([0-9]*\).*/\1/p' | head -1)
[ -n "$FARM" ] || fail "creating the farm"
echo "farm $FARM created"

say "starting a hosted node with two loop disks (ssd 10G, hdd 20G, sparse)"
"$BIN/zos" node --data "$DEMO/node" --grid "$GRID" --farm "$FARM" --disk ssd:10G --disk hdd:20G \
	--zdb-port "$ZDB_PORT" --uptime-every 30s >"$DEMO/node.log" 2>&1 &
NODE_PID=$!
NODE=
for i in $(seq 1 300); do
	NODE=$(sed -n 's/.*node_registered.* node=\([0-9]*\).*/\1/p' "$DEMO/node.log" | tail -1)
	[ -n "$NODE" ] && break
	kill -0 $NODE_PID 2>/dev/null || { cat "$DEMO/node.log"; fail "the node exited"; }
	sleep 0.2
done
[ -n "$NODE" ] || fail "the node did not register (see $DEMO/node.log)"
echo "node $NODE registered in farm $FARM"
zosctl node show "$NODE"

say "a user: key, twin, then a 0-db namespace and a volume, signed and sent through the grid"
WHO=user
zosctl key new >/dev/null
zosctl twin create
zosctl deploy zdb --node "$NODE" --size 1G --password demo-secret --name db | tee "$DEMO/zdb.out"
zosctl deploy volume --node "$NODE" --size 2G --name data
NS=$(sed -n 's/.*namespace \([^ ]*\) at.*/\1/p' "$DEMO/zdb.out")
[ -n "$NS" ] || fail "no namespace in the zdb result"

say "the namespace answers redis-cli"
OUT=$(printf 'SELECT %s demo-secret\nSET greeting "hello from zero-os"\nGET greeting\n' "$NS" | redis-cli -p "$ZDB_PORT")
echo "$OUT"
echo "$OUT" | grep -q "hello from zero-os" || fail "GET did not return what SET stored"

say "the volume in the node's pools (zos.storage.pools) and statistics"
zosctl node pools "$NODE"
zosctl node stats "$NODE"

say "explorer: http://127.0.0.1:$HTTP_PORT/ (the web page; the API under /nodes, /farms, /contracts, /stats)"
for i in $(seq 1 50); do
	STATS=$(curl -fsS "http://127.0.0.1:$HTTP_PORT/stats" || true)
	case "$STATS" in *'"nodes":0'*|'') sleep 0.2 ;; *) break ;; esac
done
echo "$STATS"
case "$STATS" in *'"nodes":1'*) ;; *) fail "the explorer does not show the node" ;; esac

if [ -t 0 ]; then
	say "everything works; the grid and the node keep running. Ctrl-C stops them cleanly."
	wait "$NODE_PID"
else
	say "everything works; tearing down (stdin is not a terminal)"
fi
