// The pack library (table `packs`): packs exported from projects and packs brought in from elsewhere, each addressed
// by the sha256 of its file, so a listing or a link always names the same bytes. Visibility: private (this studio
// only), unlisted (anyone with the share link) or public (listed when browsing).
import { randomBytes, randomUUID } from 'node:crypto';
import type { Db } from '../storage/database.ts';
import { NotFoundError } from '../storage/projects.ts';

export const PACK_VISIBILITIES = ['private', 'unlisted', 'public'] as const;
export type PackVisibility = (typeof PACK_VISIBILITIES)[number];
export type PackSource = 'exported' | 'imported';

/** What a library entry shows besides its columns: the pack's own metadata and the artifacts of its previews. */
export type PackListing = {
  note: string;
  createdAt: string;
  learnedAt: string;
  baseModel: { id: string; weightsHash: string; hiddenSize: number; baseVocabSize: number };
  resolution: number;
  instances: { token: string; name: string | null; box: [number, number, number, number] | null; thumbnailSha256: string | null }[];
  lora: { rank: number; alpha: number; components: string[]; modules: number } | null;
};

export interface PackEntry {
  id: string;
  sha256: string;
  size: number;
  name: string;
  description: string;
  baseModel: string | null;
  tokens: string[];
  listing: PackListing;
  /** the source photo's thumbnail (PNG artifact) */
  previewSha256: string | null;
  source: PackSource;
  visibility: PackVisibility;
  /** the secret of the share link /packs/<shareToken> (given for unlisted and public packs) */
  shareToken: string;
  projectId: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface NewPackEntry {
  id?: string;
  sha256: string;
  size: number;
  name: string;
  listing: PackListing;
  previewSha256: string | null;
  source: PackSource;
  visibility: PackVisibility;
  shareToken?: string;
  projectId: string | null;
}

export function newShareToken(): string {
  return randomBytes(18).toString('base64url');
}

export class PackLibrary {
  constructor(private readonly db: Db) {}

  add(entry: NewPackEntry): PackEntry {
    const id = entry.id ?? randomUUID();
    const now = Date.now();
    const projectId = entry.projectId && this.db.prepare('SELECT 1 FROM projects WHERE id = ?').get(entry.projectId) ? entry.projectId : null;
    this.db
      .prepare(
        `INSERT INTO packs (id, sha256, size, name, description, base_model, tokens, manifest, preview_sha256, source, visibility, share_token, project_id, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        id,
        entry.sha256,
        entry.size,
        entry.name,
        entry.listing.note,
        entry.listing.baseModel.id,
        JSON.stringify(entry.listing.instances.map((instance) => instance.token)),
        JSON.stringify(entry.listing),
        entry.previewSha256,
        entry.source,
        entry.visibility,
        entry.shareToken ?? newShareToken(),
        projectId,
        now,
        now,
      );
    return this.require(id);
  }

  get(id: string): PackEntry | null {
    const row = this.db.prepare('SELECT * FROM packs WHERE id = ?').get(id) as PackRow | undefined;
    return row ? toEntry(row) : null;
  }

  require(id: string): PackEntry {
    const entry = this.get(id);
    if (!entry) throw new NotFoundError('pack', id);
    return entry;
  }

  /** The entry a share link names; private packs are not reachable by link. */
  byShareToken(shareToken: string): PackEntry {
    const row = this.db.prepare(`SELECT * FROM packs WHERE share_token = ? AND visibility IN ('unlisted', 'public')`).get(shareToken) as PackRow | undefined;
    if (!row) throw new NotFoundError('shared pack', shareToken);
    return toEntry(row);
  }

  /** The oldest entry holding these bytes. */
  bySha256(sha256: string): PackEntry | null {
    const row = this.db.prepare('SELECT * FROM packs WHERE sha256 = ? ORDER BY created_at, id LIMIT 1').get(sha256) as PackRow | undefined;
    return row ? toEntry(row) : null;
  }

  /** Newest first. `public`: what anyone may browse; `library`: every entry of this studio. `before`: the last id seen. */
  list(options: { scope: 'public' | 'library'; limit?: number; before?: string; projectId?: string }): PackEntry[] {
    const limit = Math.min(Math.max(options.limit ?? 50, 1), 200);
    const where: string[] = [];
    const values: unknown[] = [];
    if (options.scope === 'public') where.push(`visibility = 'public'`);
    if (options.projectId) {
      where.push('project_id = ?');
      values.push(options.projectId);
    }
    const cursor = options.before ? (this.db.prepare('SELECT created_at, id FROM packs WHERE id = ?').get(options.before) as { created_at: number; id: string } | undefined) : undefined;
    if (cursor) {
      where.push('(created_at < ? OR (created_at = ? AND id < ?))');
      values.push(cursor.created_at, cursor.created_at, cursor.id);
    }
    const sql = `SELECT * FROM packs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT ?`;
    return (this.db.prepare(sql).all(...values, limit) as PackRow[]).map(toEntry);
  }

  setVisibility(id: string, visibility: PackVisibility): PackEntry {
    const info = this.db.prepare('UPDATE packs SET visibility = ?, updated_at = ? WHERE id = ?').run(visibility, Date.now(), id);
    if (info.changes === 0) throw new NotFoundError('pack', id);
    return this.require(id);
  }

  /** A new share link: the old one stops working. */
  rotateShareToken(id: string): PackEntry {
    const info = this.db.prepare('UPDATE packs SET share_token = ?, updated_at = ? WHERE id = ?').run(newShareToken(), Date.now(), id);
    if (info.changes === 0) throw new NotFoundError('pack', id);
    return this.require(id);
  }

  /** Removes the entry; the file stays in the artifact store (content-addressed, possibly shared). */
  delete(id: string): void {
    const info = this.db.prepare('DELETE FROM packs WHERE id = ?').run(id);
    if (info.changes === 0) throw new NotFoundError('pack', id);
  }
}

interface PackRow {
  id: string;
  sha256: string;
  size: number;
  name: string;
  description: string;
  base_model: string | null;
  tokens: string;
  manifest: string;
  preview_sha256: string | null;
  source: PackSource;
  visibility: PackVisibility;
  share_token: string;
  project_id: string | null;
  created_at: number;
  updated_at: number;
}

function toEntry(row: PackRow): PackEntry {
  return {
    id: row.id,
    sha256: row.sha256,
    size: row.size,
    name: row.name,
    description: row.description,
    baseModel: row.base_model,
    tokens: JSON.parse(row.tokens) as string[],
    listing: JSON.parse(row.manifest) as PackListing,
    previewSha256: row.preview_sha256,
    source: row.source,
    visibility: row.visibility,
    shareToken: row.share_token,
    projectId: row.project_id,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
