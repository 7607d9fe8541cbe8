#!/bin/sh
# Builds dist/pos-receipts.wasm and the unsigned bundle pos-receipts.tsb.
# Then: tessera plugin test dist/pos-receipts.wasm --fixtures fixtures.json
#       tessera bundle sign pos-receipts.tsb --key publisher.key
set -eu
cd "$(dirname "$0")"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --release --target wasm32-wasip2
target="${CARGO_TARGET_DIR:-target}"
mkdir -p dist
cp "$target/wasm32-wasip2/release/pos_receipts.wasm" "dist/pos-receipts.wasm"
"${TESSERA:-tessera}" bundle build dist --manifest bundle.toml --out "pos-receipts.tsb"
