#!/usr/bin/env bash
# Builds the yggdrasil daemon (cmd/yggdrasil) of the yggdrasil-go version
# go.mod pins, for the tests' public planetary peer, into .cache/bin/yggdrasil
# (idempotent: nothing is done when that binary already reports the version).
#
# `go install .../cmd/yggdrasil@VERSION` cannot work here: the module proxy
# refuses suah.dev/protect, which cmd/yggdrasil uses only for protect.Pledge
# (OpenBSD's pledge(2), a no-op on Linux). So the daemon is built in a
# temporary module that replaces it with scripts/yggdrasil-protect, a
# stand-in whose Pledge is the same no-op; every other module comes from the
# proxy at the versions yggdrasil-go's go.mod names.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH=$PATH:/usr/local/go/bin
GO=${GO:-go}
out=${YGGDRASIL_BIN:-$root/.cache/bin/yggdrasil}
module=github.com/yggdrasil-network/yggdrasil-go
version=$(cd "$root" && $GO list -m -f '{{.Version}}' $module)
if [ -x "$out" ] && "$out" -version 2>/dev/null | grep -qxF "Build version: ${version#v}"; then
	exit 0
fi
echo "building yggdrasil $version"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$root/scripts/yggdrasil-protect" "$tmp/protect"
cd "$tmp"
cat > go.mod <<MOD
module zos.local/yggdrasil-build

go 1.25.0

require $module $version

replace suah.dev/protect => ./protect
MOD
GOFLAGS=-mod=mod $GO get "$module/cmd/yggdrasil@$version" >/dev/null 2>&1 || GOFLAGS=-mod=mod $GO get "$module/cmd/yggdrasil@$version"
mkdir -p "$(dirname "$out")"
CGO_ENABLED=0 GOFLAGS=-mod=mod $GO build -trimpath \
	-ldflags "-s -w -X $module/src/version.buildName=yggdrasil -X $module/src/version.buildVersion=${version#v}" \
	-o "$out.tmp" "$module/cmd/yggdrasil"
mv "$out.tmp" "$out"
"$out" -version
