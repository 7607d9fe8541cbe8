#!/usr/bin/env node
// tessera-build: builds a JavaScript Tessera plugin into a component.
//
//   tessera-build [--kind segment|strategy|connector] [--entry src/plugin.js]
//                 [--out dist/NAME.wasm] [--project DIR]
//
// Defaults come from the project's package.json: `name`, and `tessera.kind`
// and `tessera.entry`. The entry module's default export implements the
// world (see src/index.js). The steps:
//
// 1. Stage the plugin's source directory and this SDK's runtime modules in a
//    temporary directory, with `tessera-sdk` imports rewritten to relative
//    paths (the component's module loader resolves no package names).
// 2. Write the world: the kind's world (segments with their plan export, as
//    the Rust SDK does; strategies with theirs only if they plan, see
//    `worldFor`), plus `state` and `http` only if the
//    plugin's source imports `tessera-sdk/state` or `tessera-sdk/http`: a
//    component imports exactly what it uses, and the operator grants that.
// 3. Run componentize-js with every WASI feature disabled (stdio, random,
//    clocks, http, fetch-event): the component imports only Tessera
//    interfaces.
// 4. Append the `tessera:wit-version` custom section ("0.1.0"), which the
//    host reads before it instantiates anything (the Rust SDK embeds the same).
// 5. Write the component atomically (temp file + rename).
//
// Node >= 20, no dependency but @bytecodealliance/componentize-js, resolved
// from the project (its devDependency).

import { pathToFileURL, fileURLToPath } from 'node:url';
import {
  cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync,
  statSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';

export const WIT_VERSION = '0.1.0';
export const WIT_VERSION_SECTION = 'tessera:wit-version';
export const COMPONENTIZE_JS_VERSION = '0.23.0';
const KINDS = ['segment', 'strategy', 'connector'];
const COMPONENT_HEADER = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]);
// Everything componentize-js would otherwise import from WASI.
const DISABLED_FEATURES = ['stdio', 'random', 'clocks', 'http', 'fetch-event'];

const SDK_DIR = dirname(fileURLToPath(import.meta.url));

export class BuildError extends Error {}

function leb128(n) {
  const out = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n) byte |= 0x80;
    out.push(byte);
  } while (n);
  return Buffer.from(out);
}

/** A custom section: id 0, size, name, payload. */
export function customSection(name, payload) {
  const nameBytes = Buffer.from(name, 'utf8');
  const body = Buffer.concat([leb128(nameBytes.length), nameBytes, Buffer.from(payload)]);
  return Buffer.concat([Buffer.from([0]), leb128(body.length), body]);
}

/**
 * The world a plugin of `kind` is built for, with the optional imports it
 * uses. A strategy that plans (`planned`) is built for
 * `tessera:strategy/planned-strategy`, which exports `campaign-plan`; it
 * also imports `tessera:plan/segment-plan` for its types, and
 * componentize-js imports that interface's `plan` too, which the host links
 * for strategies as a stub that traps if called. A strategy that does not
 * plan stays a plain `tessera:plugin/strategy`: the host then takes its
 * actions and columns from `actions()` and the manifest without a call.
 */
export function worldFor(kind, imports, planned = false) {
  const base = {
    segment: 'include tessera:plan/planned-segment@0.1.0;',
    strategy: planned
      ? 'include tessera:strategy/planned-strategy@0.1.0;'
      : 'include tessera:plugin/strategy@0.1.0;',
    connector: 'include tessera:plugin/connector@0.1.0;',
  }[kind];
  const lines = [`    ${base}`];
  for (const name of imports) lines.push(`    import tessera:plugin/${name}@0.1.0;`);
  return `package tessera:sdk-js;\n\nworld plugin {\n${lines.join('\n')}\n}\n`;
}

function* files(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules' && !entry.name.startsWith('.')) yield* files(path);
    } else if (/\.(m?js)$/.test(entry.name)) {
      yield path;
    }
  }
}

// A method or property named `actionsFor` or `plan` in a strategy's source:
// the strategy (probably) plans. A false alarm costs nothing (a planned
// strategy without them answers with `actions()` and the manifest); a miss
// is caught when componentize-js evaluates the module (`STRATEGY_PLANS`),
// and the build runs again for the planned world.
const PLANS = /\b(?:actionsFor|plan)\s*(?:\(|:|=)/;
const STRATEGY_PLANS = 'tessera-sdk: this strategy plans its actions or columns';

const SPECIFIER = /(\bfrom\s*|\bimport\s*\(?\s*)(['"])([^'"]+)\2/g;

/**
 * Rewrites `tessera-sdk[/sub]` specifiers to relative paths to the staged
 * SDK; refuses other package names, which the component could not load.
 * Returns the optional interfaces the file imports.
 */
function rewriteImports(file, sdkDir, origin) {
  const used = new Set();
  const source = readFileSync(file, 'utf8');
  const rewritten = source.replace(SPECIFIER, (whole, lead, quote, spec) => {
    if (spec.startsWith('.') || spec.startsWith('/')) return whole;
    const wit = /^tessera:plugin\/(state|http)@/.exec(spec);
    if (wit) {
      used.add(wit[1]);
      return whole;
    }
    if (spec.startsWith('tessera:')) return whole;
    const sdk = /^tessera-sdk(?:\/(state|http|schema))?$/.exec(spec);
    if (!sdk) {
      throw new BuildError(
        `${origin}: imports \`${spec}\`; a component can load only its own files and ` +
          'tessera-sdk (bundle other packages into your source first)');
    }
    if (sdk[1] === 'state' || sdk[1] === 'http') used.add(sdk[1]);
    let target = relative(dirname(file), join(sdkDir, `${sdk[1] ?? 'index'}.js`)).split(sep).join('/');
    if (!target.startsWith('.')) target = `./${target}`;
    return `${lead}${quote}${target}${quote}`;
  });
  writeFileSync(file, rewritten);
  return used;
}

function readProject(projectDir) {
  const path = join(projectDir, 'package.json');
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    if (e.code === 'ENOENT') return {};
    throw new BuildError(`cannot read ${path}: ${e.message}`);
  }
}

/** The componentize-js package directory seen from `dir` (as Node resolves packages). */
function findPackage(dir, name) {
  for (let d = resolve(dir); ; d = dirname(d)) {
    const candidate = join(d, 'node_modules', name);
    try {
      if (statSync(join(candidate, 'package.json')).isFile()) return candidate;
    } catch {
      // not here; look in the parent
    }
    if (dirname(d) === d) return undefined;
  }
}

async function loadComponentize(projectDir) {
  const name = '@bytecodealliance/componentize-js';
  const dir = findPackage(projectDir, name) ?? findPackage(SDK_DIR, name);
  if (dir === undefined) {
    throw new BuildError(
      `${name} ${COMPONENTIZE_JS_VERSION} is not installed: run ` +
        '`npm install` (or `npm ci`) in the project first');
  }
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  if (pkg.version !== COMPONENTIZE_JS_VERSION) {
    throw new BuildError(
      `${name} ${pkg.version} is installed in ${dir}; tessera-sdk ${WIT_VERSION} is built and ` +
        `tested with ${COMPONENTIZE_JS_VERSION}: run \`npm ci\``);
  }
  const main = join(dir, pkg.exports?.import ?? pkg.exports?.['.']?.import ?? 'src/componentize.js');
  return (await import(pathToFileURL(main).href)).componentize;
}

/**
 * Builds one plugin. `options`: { project, kind, entry, out }; missing ones
 * come from the project's package.json. Returns { out, bytes, imports, ms }.
 */
export async function build(options = {}) {
  const started = Date.now();
  const projectDir = resolve(options.project ?? '.');
  const pkg = readProject(projectDir);
  const kind = options.kind ?? pkg.tessera?.kind;
  if (!KINDS.includes(kind)) {
    throw new BuildError(
      `the plugin kind is ${kind === undefined ? 'not given' : `\`${kind}\``}: pass --kind ` +
        'segment|strategy|connector or set "tessera": { "kind": … } in package.json');
  }
  const entry = resolve(projectDir, options.entry ?? pkg.tessera?.entry ?? 'src/plugin.js');
  try {
    statSync(entry);
  } catch {
    throw new BuildError(`the entry module ${entry} does not exist`);
  }
  const name = (pkg.name ?? 'plugin').replace(/^@.*\//, '');
  const out = resolve(projectDir, options.out ?? join('dist', `${name}.wasm`));
  const work = mkdtempSync(join(tmpdir(), 'tessera-jsbuild-'));
  try {
    // 1. Stage: the entry's directory as `plugin/`, the SDK as `tessera-sdk/`.
    const srcDir = dirname(entry);
    const stagedSrc = join(work, 'plugin');
    const stagedSdk = join(work, 'tessera-sdk');
    cpSync(srcDir, stagedSrc, {
      recursive: true,
      filter: (p) => !p.split(sep).includes('node_modules'),
    });
    mkdirSync(stagedSdk);
    for (const file of ['index.js', 'state.js', 'http.js', 'schema.js']) {
      cpSync(join(SDK_DIR, 'src', file), join(stagedSdk, file));
    }
    const imports = new Set();
    let planned = false;
    for (const file of files(stagedSrc)) {
      const origin = join(srcDir, relative(stagedSrc, file));
      for (const used of rewriteImports(file, stagedSdk, origin)) imports.add(used);
      if (kind === 'strategy' && PLANS.test(readFileSync(file, 'utf8'))) planned = true;
    }
    if (imports.has('http') && kind !== 'connector') {
      throw new BuildError(`the plugin imports tessera-sdk/http; outbound HTTP is only for connectors`);
    }
    const entryModule = `./plugin/${relative(srcDir, entry).split(sep).join('/')}`;
    const wit = join(work, 'wit');
    mkdirSync(join(wit, 'deps'), { recursive: true });
    for (const [from, to] of [['wit', 'plugin'], ['wit-plan', 'plan'], ['wit-strategy', 'strategy']]) {
      mkdirSync(join(wit, 'deps', to));
      for (const file of readdirSync(join(SDK_DIR, from))) {
        cpSync(join(SDK_DIR, from, file), join(wit, 'deps', to, file));
      }
    }
    const ordered = ['state', 'http'].filter((i) => imports.has(i));
    const componentize = await loadComponentize(projectDir);

    // 2 and 3: the entry module and the world, then componentize; once
    // more for the planned world if a strategy plans where the scan missed it.
    const attempt = async (planned) => {
      const exportsOf = {
        segment: ['describe', 'validate', 'evaluate', 'segmentPlan'],
        strategy: ['describe', 'actions', 'validate', 'decide', 'observe', 'simulate',
          ...(planned ? ['campaignPlan'] : [])],
        connector: ['describe', 'supports', 'validate', 'parse', 'pull', 'deliver'],
      }[kind];
      const options = kind === 'strategy' ? `, { planned: ${planned} }` : '';
      writeFileSync(
        join(work, 'entry.js'),
        `import plugin from ${JSON.stringify(entryModule)};\n` +
          `import { ${kind}Exports } from './tessera-sdk/index.js';\n` +
          `if (plugin === undefined) throw new Error('${entryModule} has no default export');\n` +
          `const world = ${kind}Exports(plugin${options});\n` +
          exportsOf.map((e) => `export const ${e} = world.${e};\n`).join(''));
      writeFileSync(join(wit, 'world.wit'), worldFor(kind, ordered, planned));
      return componentize({
        sourcePath: join(work, 'entry.js'),
        witPath: wit,
        worldName: 'plugin',
        disableFeatures: DISABLED_FEATURES,
      });
    };
    let component;
    try {
      try {
        ({ component } = await attempt(planned));
      } catch (e) {
        if (planned || !String(e.message ?? e).includes(STRATEGY_PLANS)) throw e;
        planned = true;
        ({ component } = await attempt(true));
      }
    } catch (e) {
      throw new BuildError(`componentize-js failed for ${entry}: ${e.message ?? e}`);
    }
    const bytes = Buffer.from(component);
    if (!bytes.subarray(0, 8).equals(COMPONENT_HEADER)) {
      throw new BuildError('componentize-js did not produce a component binary');
    }

    // 4 and 5. The version section, then an atomic write.
    const withVersion = Buffer.concat([bytes, customSection(WIT_VERSION_SECTION, WIT_VERSION)]);
    mkdirSync(dirname(out), { recursive: true });
    const temp = `${out}.${process.pid}.tmp`;
    writeFileSync(temp, withVersion);
    renameSync(temp, out);
    return { out, bytes: withVersion.length, imports: ordered, planned, ms: Date.now() - started };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function parseArgs(argv) {
  const options = {};
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const key = { '--kind': 'kind', '--entry': 'entry', '--out': 'out', '--project': 'project' }[flag];
    if (!key) {
      if (flag === '-q' || flag === '--quiet') {
        options.quiet = true;
        continue;
      }
      throw new BuildError(`unknown argument \`${flag}\` (expected --kind, --entry, --out, --project, --quiet)`);
    }
    if (i + 1 >= argv.length) throw new BuildError(`${flag} needs a value`);
    options[key] = argv[++i];
  }
  return options;
}

if (process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))) {
  try {
    const options = parseArgs(process.argv.slice(2));
    const built = await build(options);
    if (!options.quiet) {
      const imports = built.imports.length ? ` (imports ${built.imports.join(', ')})` : '';
      const planned = built.planned ? ', planned-strategy' : '';
      console.log(`built ${relative(process.cwd(), built.out) || built.out}: ${built.bytes} bytes in ${built.ms} ms${planned}${imports}`);
    }
  } catch (e) {
    console.error(`tessera-build: ${e instanceof BuildError ? e.message : e.stack ?? e}`);
    process.exit(1);
  }
}
