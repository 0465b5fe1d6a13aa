#!/bin/sh
# Compiles the WAT fixtures to the committed .wasm files (needs wabt's
# wat2wasm; CI uses the committed output). usage: build.sh [outdir]
set -eu
cd "$(dirname "$0")"
out=${1:-.}
mkdir -p "$out/bad"
for f in *.wat bad/*.wat; do
	wat2wasm "$f" -o "$out/${f%.wat}.wasm"
done
