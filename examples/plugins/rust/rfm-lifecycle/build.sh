#!/bin/sh
# Builds dist/rfm-lifecycle.wasm and the unsigned bundle rfm-lifecycle.tsb.
# Then: tessera plugin test dist/rfm-lifecycle.wasm --fixtures fixtures.json
#       tessera bundle sign rfm-lifecycle.tsb --key publisher.key
set -eu
cd "$(dirname "$0")"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --release --target wasm32-wasip2
target="${CARGO_TARGET_DIR:-target}"
mkdir -p dist
cp "$target/wasm32-wasip2/release/rfm_lifecycle.wasm" "dist/rfm-lifecycle.wasm"
"${TESSERA:-tessera}" bundle build dist --manifest bundle.toml --out "rfm-lifecycle.tsb"
