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
HUB_PORT=${DEMO_HUB_PORT:-8081}
ACCEL=${DEMO_ACCEL:-auto}
BIN=$PWD/bin
GRID=nats://127.0.0.1:$NATS_PORT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { printf '\033[31mdemo failed: %s\033[0m\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (the node makes loop devices and btrfs pools)"
for p in $NATS_PORT $HTTP_PORT $ZDB_PORT $HUB_PORT; do
	if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
		fail "port $p is in use (set DEMO_NATS_PORT, DEMO_HTTP_PORT, DEMO_ZDB_PORT or DEMO_HUB_PORT)"
	fi
done

GRID_PID= NODE_PID= VM_CONTRACT=
cleanup() {
	set +e
	if [ -n "$VM_CONTRACT" ] && [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
		echo "canceling the VM's contract (the node stops the VM and removes its tap and root)"
		WHO=user zosctl deployment cancel "$VM_CONTRACT" --timeout 60s >/dev/null
	fi
	if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
		echo "stopping the node (unmounting pools, detaching disks)"
		kill -TERM "$NODE_PID"; wait "$NODE_PID"
	fi
	if [ -n "$GRID_PID" ] && kill -0 "$GRID_PID" 2>/dev/null; then
		kill -TERM "$GRID_PID"; wait "$GRID_PID"
	fi
	# Whatever a crashed node left behind under the demo directory: VMs
	# and their helpers outlive a node (a restart adopts them).
	for c in /proc/[0-9]*/cmdline; do
		if tr '\0' ' ' 2>/dev/null <"$c" | grep -q " $DEMO/"; then
			p=${c#/proc/}; p=${p%/cmdline}; kill -9 "$p" 2>/dev/null
		fi
	done
	sleep 0.2
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
"$BIN/zgrid" run --data "$DEMO/grid" --port "$NATS_PORT" --http-port "$HTTP_PORT" --hub "$HUB_PORT" >"$DEMO/zgrid.log" 2>&1 &
GRID_PID=$!

zosctl() { ZOSCTL_HOME="$DEMO/$WHO" "$BIN/zosctl" "$@"; }
WHO=farmer
zosctl key new >/dev/null
for i in $(seq 1 100); do zosctl twin create >/dev/null 2>&1 && break; sleep 0.2; done
zosctl twin create >/dev/null || fail "the grid did not come up (see $DEMO/zgrid.log)"
FARM=$(zosctl farm create demo-farm --json | sed -n 's/.*"id": *\([0-9]*\).*/\1/p' | head -1)
[ -n "$FARM" ] || fail "creating the farm"
echo "farm $FARM created"
# The farmer's consent that nodes join the farm (signed by the farm's twin).
FARM_TOKEN=$(zosctl farm token "$FARM" --expires 1h 2>/dev/null)
[ -n "$FARM_TOKEN" ] || fail "making a farm token"

say "starting a hosted node with two loop disks (ssd 10G, hdd 20G, sparse)"
"$BIN/zos" node --data "$DEMO/node" --grid "$GRID" --farm-token "$FARM_TOKEN" --disk ssd:10G --disk hdd:20G \
	--zdb-port "$ZDB_PORT" --uptime-every 30s --vm-kernel "$PWD/.cache/kernel" --vminit "$BIN/vminit" --accel "$ACCEL" \
	--egress-allow loopback \
	>"$DEMO/node.log" 2>&1 &
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

say "a micro-VM: a busybox root filesystem becomes a flist on the grid's hub"
ROOT=$DEMO/rootfs
mkdir -p "$ROOT"/{bin,etc,proc,sys,dev,tmp,root,data}
cp "$(command -v busybox)" "$ROOT/bin/busybox"
for a in sh echo cat ls wc ip awk sleep sync hostname ping uname httpd; do ln -s busybox "$ROOT/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$ROOT/etc/passwd"
cat >"$ROOT/start.sh" <<'SCRIPT'
#!/bin/sh
echo boot >> /data/boots; sync
echo "hello from $(hostname), kernel $(uname -r), boot $(wc -l < /data/boots), address $(ip -4 -o addr show eth0 | awk '{print $4}')"
exec sleep 2147483647
SCRIPT
chmod +x "$ROOT/start.sh"
zosctl flist build "$ROOT" -o "$DEMO/busybox.fl" --store "http://127.0.0.1:$HUB_PORT"
FLIST=$(zosctl flist push "$DEMO/busybox.fl" --hub "http://127.0.0.1:$HUB_PORT" | awk -v h="http://127.0.0.1:$HUB_PORT/" 'index($1, h) == 1 {print $1}')
[ -n "$FLIST" ] || fail "publishing the flist"
echo "flist $FLIST"

say "a private network on the node, then the VM on it (1 vCPU, 256M, a 1G disk at /data)"
zosctl network create --name demonet --nodes "$NODE" --ip-range 10.40.0.0/16
zosctl deploy vm --node "$NODE" --name hello --flist "$FLIST" --network demonet --memory 256M \
	--entrypoint /start.sh --disk 1G:/data | tee "$DEMO/vm.out"
VM_CONTRACT=$(sed -n 's/^contract \([0-9]*\),.*/\1/p' "$DEMO/vm.out")
VM_IP=$(sed -n 's/.*ok, vm at \([0-9.]*\).*/\1/p' "$DEMO/vm.out")
[ -n "$VM_CONTRACT" ] && [ -n "$VM_IP" ] || fail "the VM did not deploy"

say "the entrypoint's output on the VM's console (zosctl logs $VM_CONTRACT hello)"
for i in $(seq 1 120); do
	zosctl logs "$VM_CONTRACT" hello >"$DEMO/vm.console" 2>/dev/null || true
	grep -q "hello from hello" "$DEMO/vm.console" && break
	sleep 1
done
grep "hello from hello" "$DEMO/vm.console" || { tail -30 "$DEMO/vm.console"; fail "the VM's entrypoint did not run"; }

say "a ping from the network resource to the VM at $VM_IP"
NR=$(ip netns list | awk '$1 ~ /^n-/ {print $1; exit}')
[ -n "$NR" ] || fail "no network resource namespace"
ip netns exec "$NR" busybox ping -c 3 -W 2 "$VM_IP" || fail "the VM does not answer ping"

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
