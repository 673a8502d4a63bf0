#!/usr/bin/env node
// This registry lacks some per-platform optional packages (e.g. @next/swc-darwin-arm64). `npm install` then
// leaves them out of package-lock.json and `npm ci` refuses the lock as "not in sync". Adding an os/cpu-scoped
// entry for each missing optional dependency makes npm accept the lock and skip them on this platform.
// Run after every `npm install`.
import { readFileSync, writeFileSync } from 'node:fs';

const OSES = ['darwin', 'win32', 'linux', 'android', 'freebsd', 'openbsd', 'netbsd', 'sunos', 'aix', 'wasm32'];
const CPUS = ['arm64', 'x64', 'arm', 'ia32', 'ppc64', 's390x', 'riscv64', 'loong64', 'mips64el', 'wasm32'];
const lockPath = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(lockPath, 'utf8'));

const added = [];
for (const entry of Object.values(lock.packages)) {
  for (const [dep, version] of Object.entries(entry.optionalDependencies ?? {})) {
    if (lock.packages[`node_modules/${dep}`]) continue;
    const parts = dep.split('/').pop().split('-');
    const os = OSES.find((o) => parts.includes(o));
    const cpu = CPUS.find((c) => parts.includes(c));
    if (!os && !cpu) continue;
    lock.packages[`node_modules/${dep}`] = {
      version: version.replace(/^[\^~=]/, ''),
      optional: true,
      ...(os && { os: [os] }),
      ...(cpu && { cpu: [cpu] }),
    };
    added.push(`${dep}@${version}`);
  }
}
writeFileSync(lockPath, JSON.stringify(lock, null, 2) + '\n');
console.log(added.length ? `fix-lockfile: added ${added.length} platform entries` : 'fix-lockfile: lock already complete');
