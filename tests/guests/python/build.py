#!/usr/bin/env python3
"""Builds the Python test guest `threshold/app.py` into a Tessera component.

    python3 build.py --wit <wit dir> --out <output .wasm> [--tools <dir>]

1. Finds componentize-py at the pinned version (in the tools dir, importable,
   or on PATH); if absent, installs it with pip into <tools>/componentize-py-<ver>.
2. Builds the component for world `segment` from the app's directory, with
   WASI imports replaced by trapping stubs (`--stub-wasi`): the plugin needs
   none, and the component then imports only tessera:plugin interfaces.
3. Appends the custom section `tessera:wit-version` = "0.1.0", which the host
   reads before it instantiates anything (the Rust SDK embeds the same).
   Steps 1 and 3 are the Python SDK's (`sdk/python/tessera_sdk/build.py`).
4. Writes the result atomically (temp file + rename) to --out.

Only the standard library and the SDK beside it are used. Silent on success.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
# The SDK's build module finds or installs componentize-py and marks the
# contract version; this script only differs in what it builds: one app
# against the raw WIT, without the SDK.
# No bytecode caches written into the SDK's source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "sdk", "python"))
from tessera_sdk.build import (  # noqa: E402
    COMPONENT_HEADER,
    BuildError,
    append_wit_version,
    default_tools_dir,
    find_componentize_py,
    install_componentize_py,
)

WORLD = "segment"
APP_DIR = os.path.join(HERE, "threshold")
APP_MODULE = "app"


def build(wit, out, tools_dir):
    if not os.path.isdir(wit) and not os.path.isfile(wit):
        raise BuildError(f"the WIT path `{wit}` does not exist")
    tool = find_componentize_py(tools_dir) or install_componentize_py(tools_dir)
    command, path_entry = tool

    env = dict(os.environ)
    if path_entry:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [path_entry, env.get("PYTHONPATH")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"

    out = os.path.abspath(out)
    out_dir = os.path.dirname(out)
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tessera-pybuild-", dir=out_dir) as work:
        # Build from a copy of the app, so componentize-py's bytecode caches and
        # concurrent builds never touch the source tree.
        src = os.path.join(work, "src")
        shutil.copytree(APP_DIR, src, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        built = os.path.join(work, "component.wasm")
        result = subprocess.run(
            command + ["-q", "-d", os.path.abspath(wit), "-w", WORLD, "componentize",
                       "--stub-wasi", "-p", src, "-o", built, APP_MODULE],
            cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        )
        if result.returncode != 0:
            sys.stderr.write(result.stdout + result.stderr)
            raise BuildError(f"componentize-py failed for {os.path.join(APP_DIR, APP_MODULE + '.py')} (output above)")

        with open(built, "rb") as f:
            header = f.read(len(COMPONENT_HEADER))
        if header != COMPONENT_HEADER:
            raise BuildError(f"componentize-py did not produce a component binary ({header!r})")
        append_wit_version(built)
        os.chmod(built, 0o644)
        os.replace(built, out)


def main():
    parser = argparse.ArgumentParser(description="Build the Python `threshold` test guest.")
    parser.add_argument("--wit", required=True, help="the WIT directory (e.g. wit/v0.1)")
    parser.add_argument("--out", required=True, help="the component file to write")
    parser.add_argument("--tools", default=None,
                        help=f"where componentize-py is installed if missing (default {default_tools_dir()})")
    args = parser.parse_args()
    try:
        build(args.wit, args.out, os.path.abspath(args.tools or default_tools_dir()))
    except BuildError as e:
        print(f"build.py: {e}.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
