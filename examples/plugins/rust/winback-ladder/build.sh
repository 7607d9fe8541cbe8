#!/bin/sh
# Builds dist/winback-ladder.wasm and the unsigned bundle winback-ladder.tsb.
# Then: tessera plugin test dist/winback-ladder.wasm --fixtures fixtures.json
#       tessera bundle sign winback-ladder.tsb --key publisher.key
set -eu
cd "$(dirname "$0")"
rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
cargo build --release --target wasm32-wasip2
target="${CARGO_TARGET_DIR:-target}"
mkdir -p dist
cp "$target/wasm32-wasip2/release/winback_ladder.wasm" "dist/winback-ladder.wasm"
"${TESSERA:-tessera}" bundle build dist --manifest bundle.toml --out "winback-ladder.tsb"
