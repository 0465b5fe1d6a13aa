#!/bin/sh
# CI: proves the committed built-in modules equal a fresh build of their
# sources. Exits 1 and names the module when one differs.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sh build-modules.sh "$tmp"
status=0
for f in "$tmp"/*.wasm; do
	name=$(basename "$f")
	if ! cmp -s "$f" "modules/$name"; then
		echo "wasm/modules/$name is stale: run 'go generate ./wasm' and commit the result" >&2
		status=1
	fi
done
for f in modules/*.wasm; do
	[ -e "$tmp/$(basename "$f")" ] || { echo "$f has no source in wasm/modules/" >&2; status=1; }
done
[ "$status" = 0 ] && echo "built-in modules are up to date"
exit $status
