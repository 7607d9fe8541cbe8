#!/bin/sh
# Builds dist/orders-jsonl.wasm and the unsigned bundle.
# Then: tessera plugin test dist/orders-jsonl.wasm --fixtures fixtures.json
set -eu
cd "$(dirname "$0")"
PYTHONPATH="../../../../sdk/python${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON:-python3}" -m tessera_sdk.build \
  --world connector --out dist/orders-jsonl.wasm
"${TESSERA:-tessera}" bundle build dist --manifest bundle.toml --out orders-jsonl.tsb
