// The SQLite metadata database. WAL lets the web server read while worker processes on the same machine write;
// synchronous=FULL makes every committed transaction survive a crash or power loss. SQLite must stay on a local
// disk of one machine: in a multi-machine deployment only the web node opens it (workers talk through Redis).
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { migrations, type Migration } from './migrations.ts';

export type Db = Database.Database;

export function openDatabase(path: string, available: readonly Migration[] = migrations): Db {
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { timeout: 10_000 });
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    migrate(db, available);
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}

export function schemaVersion(db: Db): number {
  const row = db.prepare('SELECT MAX(version) AS version FROM schema_migrations').get() as { version: number | null };
  return row.version ?? 0;
}

/** Applies missing migrations, each in its own IMMEDIATE transaction so concurrent openers apply it once. */
export function migrate(db: Db, available: readonly Migration[]): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at INTEGER NOT NULL
  )`);
  const known = Math.max(0, ...available.map((m) => m.version));
  const current = schemaVersion(db);
  if (current > known) {
    throw new Error(`the database ${db.name} has schema version ${current}, newer than this code knows (${known}); update MIFO Studio`);
  }
  for (const migration of [...available].sort((a, b) => a.version - b.version)) {
    db.transaction(() => {
      const applied = db.prepare('SELECT 1 FROM schema_migrations WHERE version = ?').get(migration.version);
      if (applied) return;
      db.exec(migration.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(migration.version, migration.name, Date.now());
    }).immediate();
  }
}
