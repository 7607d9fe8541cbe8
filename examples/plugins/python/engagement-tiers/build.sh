#!/bin/sh
# Builds dist/engagement-tiers.wasm and the unsigned bundle.
# Then: tessera plugin test dist/engagement-tiers.wasm --fixtures fixtures.json
set -eu
cd "$(dirname "$0")"
PYTHONPATH="../../../../sdk/python${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON:-python3}" -m tessera_sdk.build \
  --world segment --out dist/engagement-tiers.wasm
"${TESSERA:-tessera}" bundle build dist --manifest bundle.toml --out engagement-tiers.tsb
