#!/bin/sh
# Builds the built-in provider modules into wasm/modules/<name>.wasm.
# Run through `go generate ./wasm`. The output is byte-for-byte
# reproducible for a given Go toolchain: -trimpath drops paths,
# -buildvcs=false drops VCS stamps, -s -w drop symbols and DWARF, and the
# toolchain is pinned (override with OPENSOUL_WASM_GO).
#
# usage: build-modules.sh [outdir]
set -eu
cd "$(dirname "$0")"
out=${1:-modules}
toolchain=${OPENSOUL_WASM_GO:-go1.26.8}
for dir in modules/*/; do
	name=$(basename "$dir")
	[ "$name" = internal ] && continue
	GOTOOLCHAIN=$toolchain GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 GOFLAGS= \
		go build -buildmode=c-shared -trimpath -buildvcs=false -ldflags='-s -w -buildid=' \
		-o "$out/$name.wasm" "./$dir"
done
