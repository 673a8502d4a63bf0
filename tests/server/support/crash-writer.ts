// Child process for the crash test: writes artifacts, an atomically replaced file and SQLite rows in a loop and
// prints "committed N" after each round is durable, until it is killed with SIGKILL.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { writeFileAtomic } from '../../../server/storage/atomic.ts';
import { ArtifactStore } from '../../../server/storage/artifacts.ts';
import { openDatabase } from '../../../server/storage/database.ts';
import { ProjectStore } from '../../../server/storage/projects.ts';

const dataDir = process.argv[2]!;
const artifacts = await ArtifactStore.open(dataDir);
const projects = new ProjectStore(openDatabase(join(dataDir, 'mifo.sqlite')));
for (let round = 0; ; round++) {
  const ref = await artifacts.put(Buffer.concat([Buffer.from(`round ${round}\n`), randomBytes(256 * 1024)]));
  await writeFileAtomic(join(dataDir, 'current.json'), JSON.stringify({ round, sha256: ref.sha256, padding: 'x'.repeat(200_000) }));
  projects.create({ name: `round ${round}` });
  process.stdout.write(`committed ${round}\n`);
}
