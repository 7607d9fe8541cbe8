#!/bin/sh
# Builds dist/propensity-offers.wasm (with plugin state) and the unsigned bundle.
# Then: tessera plugin test dist/propensity-offers.wasm --fixtures fixtures.json
set -eu
cd "$(dirname "$0")"
PYTHONPATH="../../../../sdk/python${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON:-python3}" -m tessera_sdk.build \
  --world strategy --import state --out dist/propensity-offers.wasm
"${TESSERA:-tessera}" bundle build dist --manifest bundle.toml --out propensity-offers.tsb
