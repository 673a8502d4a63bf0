#!/usr/bin/env node
// Builds the native kernels (native/ -> native/build/Release/mifo_native.node) with node-gyp against Debian's OpenBLAS
// (apt-get install -y libopenblas-dev). This is the package's install script, so it never fails an install: when the
// compiler, OpenBLAS or node-gyp is missing it says so and exits 0, and the runtime then trains on plain wasm.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const nativeDir = join(root, 'native');
const addonPath = join(nativeDir, 'build', 'Release', 'mifo_native.node');

function giveUp(problem, fix) {
  console.warn(`[mifo] native kernels not built: ${problem}.${fix ? ` ${fix}` : ''}`);
  console.warn('[mifo] everything still works on the plain tfjs wasm backend, only much slower for training.');
  process.exit(0);
}

function succeeds(command, args) {
  const result = spawnSync(command, args, { stdio: 'ignore' });
  return result.status === 0;
}

if (!succeeds('c++', ['--version']) || !succeeds('make', ['--version'])) {
  giveUp('no C++ compiler or make', 'Install them with: apt-get install -y g++ make');
}
if (!succeeds('pkg-config', ['--exists', 'openblas'])) {
  giveUp('OpenBLAS development files not found (pkg-config openblas)', 'Install them with: apt-get install -y libopenblas-dev pkg-config');
}

const nodeGyp = [
  process.env.npm_config_node_gyp,
  join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].find((candidate) => candidate && existsSync(candidate));
if (!nodeGyp) giveUp('node-gyp not found (it ships with npm)');

// node-gyp downloads Node's headers unless pointed at local ones; the system Node prefix has them.
const nodePrefix = dirname(dirname(process.execPath));
const nodeDir =
  process.env.npm_config_nodedir ?? (existsSync(join(nodePrefix, 'include', 'node', 'node_api.h')) ? nodePrefix : undefined);
if (!nodeDir) giveUp(`Node headers not found under ${nodePrefix}/include/node`, 'Set npm_config_nodedir to a Node install prefix.');

const started = Date.now();
const build = spawnSync(process.execPath, [nodeGyp, 'rebuild', `--nodedir=${nodeDir}`], { cwd: nativeDir, encoding: 'utf8' });
if (build.status !== 0) {
  const output = `${build.stdout ?? ''}${build.stderr ?? ''}`.trim().split('\n').slice(-25).join('\n');
  console.warn(output);
  giveUp('node-gyp failed (output above)');
}

// A build can succeed and still not load (e.g. libopenblas.so.0 missing at run time).
const load = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(addonPath)}).info()`], { encoding: 'utf8' });
if (load.status !== 0) giveUp(`the built addon does not load: ${load.stderr.trim().split('\n')[0]}`);

console.log(`[mifo] native kernels built in ${((Date.now() - started) / 1000).toFixed(1)} s: ${relative(root, addonPath)}`);
