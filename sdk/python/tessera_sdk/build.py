"""Builds a Tessera plugin written in Python into a component.

    python3 -m tessera_sdk.build --world segment --out dist/my-rule.wasm
        [--src .] [--app app] [--import state] [--wit DIR] [--wit-plan DIR]
        [--wit-strategy DIR] [--tools DIR]

1. Finds componentize-py at the pinned version (in the tools dir, importable,
   or on PATH); if absent, installs it with pip into <tools>/componentize-py-<ver>.
2. Builds the component for the world (`connector`, `segment`, `strategy`)
   from a copy of the source directory (the app module, `app.py` by default,
   must define `WitWorld`, e.g. `WitWorld = export_segment(Rule)`), with the
   SDK beside it. WASI imports are replaced by trapping stubs (`--stub-wasi`):
   a plugin needs none, and the component then imports only the tessera:plugin
   interfaces its world names, plus those given with `--import` (`state`;
   `http` for connectors), which the bundle must ask for.
   A segment whose source defines `plan`, or a strategy whose source defines
   `plan` or `actions_for` (a `def` in a class), is built for
   `tessera:plan/planned-segment` / `tessera:strategy/planned-strategy`,
   which export the plan interfaces, as the Rust SDK builds every plugin.
   (If the scan misses one, the SDK refuses the plain build and it is built
   again for the planned world.) The component's module is a generated one
   that re-exports `WitWorld` and the SDK's classes for those interfaces.
3. Appends the custom section `tessera:wit-version` with the SDK's contract
   version, which the host reads before it instantiates anything.
4. Writes the result atomically (temp file + rename) to --out.

Standard library only. Prints one line (the component and its size) on success.
"""

import argparse
import ast
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile

from . import WIT_VERSION, WIT_VERSION_SECTION

COMPONENTIZE_PY_VERSION = "0.25.1"
WORLDS = ("connector", "segment", "strategy")
IMPORTS = ("state", "http")
SDK_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_WIT = os.path.join(SDK_DIR, "wit")
DEFAULT_WIT_PLAN = os.path.join(SDK_DIR, "wit-plan")
DEFAULT_WIT_STRATEGY = os.path.join(SDK_DIR, "wit-strategy")
# The methods that make a plugin of a world plan, and the world it is then built for.
PLAN_METHODS = {"segment": ("plan",), "strategy": ("plan", "actions_for")}
PLANNED_WORLDS = {
    "segment": "tessera:plan/planned-segment",
    "strategy": "tessera:strategy/planned-strategy",
}
# What the SDK raises when a plugin that plans is built for a plain world (core.PLANS).
PLANS = "tessera-sdk: this plugin plans"
# The module componentize-py builds: the app's `WitWorld` and the SDK's
# classes of the interfaces the world exports (`SegmentPlan`, `CampaignPlan`).
ENTRY = "_tessera_entry"
ENTRY_SOURCE = (
    "from {app} import WitWorld  # noqa: F401\n"
    "globals().update(getattr(WitWorld, 'tessera_exports', {{}}))\n"
)
COMPONENT_HEADER = b"\x00asm\x0d\x00\x01\x00"  # magic, component-model layer 1
# What is never part of a plugin's source: outputs, caches, hidden directories.
IGNORED = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".*", "dist", "target", "*.wasm", "*.tsb", "*.key", "node_modules"
)

# Runs componentize-py's console entry point with the given interpreter.
RUNNER = (
    "import sys; from componentize_py import script; "
    "sys.argv[0] = 'componentize-py'; sys.exit(script())"
)


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
    """A wasm custom section (id 0): LEB128 size, LEB128 name length, name, payload."""
    name = name.encode("utf-8")
    body = leb128_u32(len(name)) + name + payload
    return b"\x00" + leb128_u32(len(body)) + body


def append_wit_version(path, version=WIT_VERSION):
    """Appends `tessera:wit-version` to a component file (a custom section may
    follow the last section of a component)."""
    with open(path, "rb") as f:
        header = f.read(len(COMPONENT_HEADER))
    if header != COMPONENT_HEADER:
        raise BuildError(f"{path} is not a component binary ({header!r})")
    with open(path, "ab") as f:
        f.write(custom_section(WIT_VERSION_SECTION, version.encode("ascii")))
        f.flush()
        os.fsync(f.fileno())


def installed_version(path_entry):
    """The componentize-py version importable from `path_entry` (None = sys.path)."""
    try:
        if path_entry is None:
            return importlib.metadata.version("componentize-py")
        for dist in importlib.metadata.distributions(name="componentize-py", path=[path_entry]):
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
        f"`python3 -m pip install componentize-py=={COMPONENTIZE_PY_VERSION}` and build again"
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


def plans(src, world):
    """Whether the app's source defines a method that makes it plan: a
    `def` of one of `PLAN_METHODS[world]` in a class, in any module of the
    source directory (the SDK's own excepted)."""
    methods = PLAN_METHODS.get(world, ())
    for directory, dirs, names in os.walk(src):
        dirs[:] = [d for d in dirs if d != "tessera_sdk" and not d.startswith(".")]
        for name in names:
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            try:
                with open(path, "rb") as f:
                    tree = ast.parse(f.read(), path)
            except (OSError, SyntaxError, ValueError):
                continue  # componentize-py reports it
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and any(
                    isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in methods
                    for item in node.body
                ):
                    return True
    return False


def _copy_wit(source, target):
    os.makedirs(target)
    if os.path.isdir(source):
        for name in os.listdir(source):
            if name.endswith(".wit"):
                shutil.copy(os.path.join(source, name), target)
    else:
        shutil.copy(source, target)


def wit_for(work, wit, world, imports, planned=False, wit_plan=DEFAULT_WIT_PLAN,
            wit_strategy=DEFAULT_WIT_STRATEGY):
    """(WIT path, world name) for componentize-py: the plain world, or a
    world of the app's own that includes it (or its planned world) and adds
    the imports."""
    if not imports and not planned:
        return wit, world
    root = os.path.join(work, "wit")
    shutil.rmtree(root, ignore_errors=True)
    _copy_wit(wit, os.path.join(root, "deps", "plugin"))
    if planned:
        for name, source in (("plan", wit_plan), ("strategy", wit_strategy)):
            if not os.path.exists(source):
                raise BuildError(f"the WIT path `{source}` does not exist")
            _copy_wit(source, os.path.join(root, "deps", name))
        base = f"{PLANNED_WORLDS[world]}@{WIT_VERSION}"
    else:
        base = f"tessera:plugin/{world}@{WIT_VERSION}"
    lines = [f"    include {base};"]
    lines += [f"    import tessera:plugin/{name}@{WIT_VERSION};" for name in imports]
    with open(os.path.join(root, "app.wit"), "w") as f:
        f.write("package tessera:app;\n\nworld app {\n" + "\n".join(lines) + "\n}\n")
    return root, "tessera:app/app"


def build(world, out, src=".", app="app", imports=(), wit=DEFAULT_WIT, tools_dir=None, quiet=False,
          wit_plan=DEFAULT_WIT_PLAN, wit_strategy=DEFAULT_WIT_STRATEGY):
    if world not in WORLDS:
        raise BuildError(f"--world `{world}` is not one of {', '.join(WORLDS)}")
    for name in imports:
        if name not in IMPORTS:
            raise BuildError(f"--import `{name}` is not one of {', '.join(IMPORTS)}")
        if name == "http" and world != "connector":
            raise BuildError("--import http is for connectors only")
    src = os.path.abspath(src)
    if not os.path.isfile(os.path.join(src, app.replace(".", os.sep) + ".py")):
        raise BuildError(f"the app module `{app}` is not in {src} (expected {app}.py)")
    if not os.path.exists(wit):
        raise BuildError(f"the WIT path `{wit}` does not exist")
    tools_dir = os.path.abspath(tools_dir or default_tools_dir())
    command, path_entry = find_componentize_py(tools_dir) or install_componentize_py(tools_dir)

    env = dict(os.environ)
    if path_entry:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [path_entry, env.get("PYTHONPATH")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"

    out = os.path.abspath(out)
    out_dir = os.path.dirname(out)
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tessera-pybuild-", dir=out_dir) as work:
        # Build from a copy, so componentize-py's caches and concurrent builds
        # never touch the source tree; the SDK goes beside the app unless the
        # project carries its own copy.
        copy = os.path.join(work, "src")
        shutil.copytree(src, copy, ignore=IGNORED)
        if not os.path.isdir(os.path.join(copy, "tessera_sdk")):
            shutil.copytree(SDK_DIR, os.path.join(copy, "tessera_sdk"), ignore=IGNORED)
        if os.path.exists(os.path.join(copy, ENTRY + ".py")):
            raise BuildError(f"`{ENTRY}.py` is the build's own module name; rename yours")
        with open(os.path.join(copy, ENTRY + ".py"), "w") as f:
            f.write(ENTRY_SOURCE.format(app=app))
        planned = world in PLAN_METHODS and plans(copy, world)
        built = os.path.join(work, "component.wasm")

        def componentize(planned):
            wit_path, world_name = wit_for(
                work, os.path.abspath(wit), world, list(imports), planned,
                os.path.abspath(wit_plan), os.path.abspath(wit_strategy),
            )
            return subprocess.run(
                command + ["-q", "-d", wit_path, "-w", world_name, "componentize", "--stub-wasi",
                           "-p", copy, "-o", built, ENTRY],
                cwd=work, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            )

        result = componentize(planned)
        if result.returncode != 0 and not planned and world in PLAN_METHODS \
                and PLANS in result.stdout + result.stderr:
            planned = True
            result = componentize(planned)
        if result.returncode != 0:
            sys.stderr.write(result.stdout + result.stderr)
            raise BuildError(f"componentize-py failed for {os.path.join(src, app + '.py')} (output above)")
        append_wit_version(built)
        os.chmod(built, 0o644)
        os.replace(built, out)
    if not quiet:
        kind = PLANNED_WORLDS[world].split("/")[1] if planned else world
        print(f"built {out} ({os.path.getsize(out) / (1 << 20):.1f} MiB, {kind}, WIT {WIT_VERSION})")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python3 -m tessera_sdk.build",
        description="Build a Tessera plugin written in Python into a component.",
    )
    parser.add_argument("--world", required=True, choices=WORLDS, help="the world the app implements")
    parser.add_argument("--out", required=True, help="the component file to write")
    parser.add_argument("--src", default=".", help="the app's directory (default: .)")
    parser.add_argument("--app", default="app", help="the module that defines WitWorld (default: app)")
    parser.add_argument("--import", dest="imports", action="append", default=[], choices=IMPORTS,
                        help="an optional capability the plugin uses (repeatable)")
    parser.add_argument("--wit", default=DEFAULT_WIT, help="the WIT directory (default: the SDK's own)")
    parser.add_argument("--wit-plan", default=DEFAULT_WIT_PLAN,
                        help="the tessera:plan WIT directory (default: the SDK's own)")
    parser.add_argument("--wit-strategy", default=DEFAULT_WIT_STRATEGY,
                        help="the tessera:strategy WIT directory (default: the SDK's own)")
    parser.add_argument("--tools", default=None,
                        help=f"where componentize-py is installed if missing (default {default_tools_dir()})")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    args = parser.parse_args(argv)
    try:
        build(args.world, args.out, args.src, args.app, args.imports, args.wit, args.tools, args.quiet,
              args.wit_plan, args.wit_strategy)
    except BuildError as e:
        print(f"tessera_sdk.build: {e}.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
