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
4. Writes the result atomically (temp file + rename) to --out.

Only the standard library is used. Silent on success.
"""

import argparse
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile

COMPONENTIZE_PY_VERSION = "0.25.1"
WORLD = "segment"
APP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "threshold")
APP_MODULE = "app"
WIT_VERSION_SECTION = "tessera:wit-version"
WIT_VERSION = b"0.1.0"
COMPONENT_HEADER = b"\x00asm\x0d\x00\x01\x00"  # magic, component-model layer 1

# Runs componentize-py's console entry point with the given interpreter.
RUNNER = "import sys; from componentize_py import script; sys.argv[0] = 'componentize-py'; sys.exit(script())"


class BuildError(Exception):
    pass


def default_tools_dir():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "tessera", "python-tools")


def leb128_u32(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def custom_section(name, payload):
    name = name.encode("utf-8")
    body = leb128_u32(len(name)) + name + payload
    return b"\x00" + leb128_u32(len(body)) + body


def installed_version(path_entry):
    """The componentize-py version importable from `path_entry` (None = sys.path)."""
    try:
        if path_entry is None:
            return importlib.metadata.version("componentize-py")
        dists = importlib.metadata.distributions(name="componentize-py", path=[path_entry])
        for dist in dists:
            return dist.version
    except importlib.metadata.PackageNotFoundError:
        pass
    return None


def find_componentize_py(tools_dir):
    """A (command prefix, extra PYTHONPATH entry) that runs the pinned componentize-py, or None."""
    pinned = os.path.join(tools_dir, f"componentize-py-{COMPONENTIZE_PY_VERSION}")
    if os.path.isdir(pinned) and installed_version(pinned) == COMPONENTIZE_PY_VERSION:
        return [sys.executable, "-c", RUNNER], pinned
    if installed_version(None) == COMPONENTIZE_PY_VERSION:
        return [sys.executable, "-c", RUNNER], None
    exe = shutil.which("componentize-py")
    if exe:
        try:
            out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out.split()[-1:] == [COMPONENTIZE_PY_VERSION]:
            return [exe], None
    return None


def install_componentize_py(tools_dir):
    """Installs the pinned version into <tools>/componentize-py-<ver>, atomically."""
    pinned = os.path.join(tools_dir, f"componentize-py-{COMPONENTIZE_PY_VERSION}")
    hint = (
        f"componentize-py {COMPONENTIZE_PY_VERSION} is missing and could not be installed: run "
        f"`python3 -m pip install --target {pinned} componentize-py=={COMPONENTIZE_PY_VERSION}` "
        f"(or `pip install componentize-py=={COMPONENTIZE_PY_VERSION}`) and build again"
    )
    try:
        os.makedirs(tools_dir, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".componentize-py-", dir=tools_dir)
    except OSError:
        raise BuildError(hint)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--no-warn-script-location", "--no-deps", "--target", staging,
             f"componentize-py=={COMPONENTIZE_PY_VERSION}"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True,
        )
        if result.returncode != 0 or installed_version(staging) != COMPONENTIZE_PY_VERSION:
            raise BuildError(hint)
        os.chmod(staging, 0o755)
        try:
            os.rename(staging, pinned)
        except OSError:
            # Another build installed it meanwhile; use theirs if it is whole.
            if installed_version(pinned) != COMPONENTIZE_PY_VERSION:
                raise BuildError(hint)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [sys.executable, "-c", RUNNER], pinned


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
        # A custom section may follow the last section of a component.
        with open(built, "ab") as f:
            f.write(custom_section(WIT_VERSION_SECTION, WIT_VERSION))
            f.flush()
            os.fsync(f.fileno())
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
