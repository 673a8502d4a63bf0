// Projects (one photo each), their instances (mask + token name), and the read side of what jobs produce for them
// (concepts, generations). Blobs are artifact sha256s.
import { randomUUID } from 'node:crypto';
import type { Db } from './database.ts';

export interface Project {
  id: string;
  name: string;
  photo: { sha256: string; mediaType: string; width: number | null; height: number | null } | null;
  thumbnailSha256: string | null;
  samEmbeddingSha256: string | null;
  baseModel: string | null;
  settings: Record<string, unknown>;
  createdAt: number;
  updatedAt: number;
}

export interface Instance {
  id: string;
  projectId: string;
  name: string;
  position: number;
  maskSha256: string | null;
  color: string | null;
  prompts: Record<string, unknown>;
  createdAt: number;
  updatedAt: number;
}

export interface Concept {
  id: string;
  projectId: string;
  instanceId: string | null;
  token: string;
  learnJobId: string | null;
  baseModel: string | null;
  preset: string | null;
  folderSha256: string | null;
  metadata: Record<string, unknown>;
  createdAt: number;
}

export interface Generation {
  id: string;
  projectId: string;
  composeJobId: string | null;
  prompt: string;
  params: Record<string, unknown>;
  imageSha256: string | null;
  reportSha256: string | null;
  createdAt: number;
}

export interface ProjectDetail extends Project {
  instances: Instance[];
  concepts: Concept[];
  generations: Generation[];
}

export class NotFoundError extends Error {
  constructor(what: string, id: string) {
    super(`${what} ${id} does not exist`);
    this.name = 'NotFoundError';
  }
}

export class ConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConflictError';
  }
}

export interface NewProject {
  name: string;
  photo?: { sha256: string; mediaType: string; width: number | null; height: number | null };
  baseModel?: string | null;
  settings?: Record<string, unknown>;
}

export interface ProjectChanges {
  name?: string;
  photo?: NewProject['photo'];
  thumbnailSha256?: string | null;
  samEmbeddingSha256?: string | null;
  baseModel?: string | null;
  settings?: Record<string, unknown>;
}

export interface InstanceChanges {
  name?: string;
  maskSha256?: string | null;
  color?: string | null;
  prompts?: Record<string, unknown>;
}

export class ProjectStore {
  constructor(private readonly db: Db) {}

  create(project: NewProject): Project {
    const id = randomUUID();
    const now = Date.now();
    this.db
      .prepare(
        `INSERT INTO projects (id, name, photo_sha256, photo_media_type, photo_width, photo_height, base_model, settings, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(id, project.name, project.photo?.sha256 ?? null, project.photo?.mediaType ?? null, project.photo?.width ?? null, project.photo?.height ?? null, project.baseModel ?? null, JSON.stringify(project.settings ?? {}), now, now);
    return this.require(id);
  }

  get(id: string): Project | null {
    const row = this.db.prepare('SELECT * FROM projects WHERE id = ?').get(id) as ProjectRow | undefined;
    return row ? toProject(row) : null;
  }

  require(id: string): Project {
    const project = this.get(id);
    if (!project) throw new NotFoundError('project', id);
    return project;
  }

  detail(id: string): ProjectDetail {
    return {
      ...this.require(id),
      instances: this.instances(id),
      concepts: (this.db.prepare('SELECT * FROM concepts WHERE project_id = ? ORDER BY created_at').all(id) as ConceptRow[]).map(toConcept),
      generations: (this.db.prepare('SELECT * FROM generations WHERE project_id = ? ORDER BY created_at DESC').all(id) as GenerationRow[]).map(toGeneration),
    };
  }

  /** Newest first; `before` is the id of the last project of the previous page. */
  list(options: { limit?: number; before?: string } = {}): Project[] {
    const limit = Math.min(Math.max(options.limit ?? 50, 1), 500);
    const cursor = options.before ? (this.db.prepare('SELECT updated_at, id FROM projects WHERE id = ?').get(options.before) as { updated_at: number; id: string } | undefined) : undefined;
    const rows = cursor
      ? (this.db
          .prepare('SELECT * FROM projects WHERE updated_at < ? OR (updated_at = ? AND id < ?) ORDER BY updated_at DESC, id DESC LIMIT ?')
          .all(cursor.updated_at, cursor.updated_at, cursor.id, limit) as ProjectRow[])
      : (this.db.prepare('SELECT * FROM projects ORDER BY updated_at DESC, id DESC LIMIT ?').all(limit) as ProjectRow[]);
    return rows.map(toProject);
  }

  update(id: string, changes: ProjectChanges): Project {
    const assignments: string[] = [];
    const values: unknown[] = [];
    const set = (column: string, value: unknown) => {
      assignments.push(`${column} = ?`);
      values.push(value);
    };
    if (changes.name !== undefined) set('name', changes.name);
    if (changes.photo !== undefined) {
      set('photo_sha256', changes.photo?.sha256 ?? null);
      set('photo_media_type', changes.photo?.mediaType ?? null);
      set('photo_width', changes.photo?.width ?? null);
      set('photo_height', changes.photo?.height ?? null);
      // The embedding and thumbnail belong to the old photo.
      if (changes.samEmbeddingSha256 === undefined) set('sam_embedding_sha256', null);
      if (changes.thumbnailSha256 === undefined) set('thumbnail_sha256', null);
    }
    if (changes.thumbnailSha256 !== undefined) set('thumbnail_sha256', changes.thumbnailSha256);
    if (changes.samEmbeddingSha256 !== undefined) set('sam_embedding_sha256', changes.samEmbeddingSha256);
    if (changes.baseModel !== undefined) set('base_model', changes.baseModel);
    if (changes.settings !== undefined) set('settings', JSON.stringify(changes.settings));
    set('updated_at', Date.now());
    const info = this.db.prepare(`UPDATE projects SET ${assignments.join(', ')} WHERE id = ?`).run(...values, id);
    if (info.changes === 0) throw new NotFoundError('project', id);
    return this.require(id);
  }

  /** Deletes the project with its instances, concepts and generations (artifacts stay: others may share them). */
  delete(id: string): void {
    const info = this.db.prepare('DELETE FROM projects WHERE id = ?').run(id);
    if (info.changes === 0) throw new NotFoundError('project', id);
  }

  instances(projectId: string): Instance[] {
    return (this.db.prepare('SELECT * FROM instances WHERE project_id = ? ORDER BY position, created_at').all(projectId) as InstanceRow[]).map(toInstance);
  }

  addInstance(projectId: string, instance: { name: string; maskSha256?: string | null; color?: string | null; prompts?: Record<string, unknown> }): Instance {
    return this.db.transaction(() => {
      this.require(projectId);
      this.assertNameFree(projectId, instance.name);
      const id = randomUUID();
      const now = Date.now();
      const { next } = this.db.prepare('SELECT COALESCE(MAX(position) + 1, 0) AS next FROM instances WHERE project_id = ?').get(projectId) as { next: number };
      this.db
        .prepare(`INSERT INTO instances (id, project_id, name, position, mask_sha256, color, prompts, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
        .run(id, projectId, instance.name, next, instance.maskSha256 ?? null, instance.color ?? null, JSON.stringify(instance.prompts ?? {}), now, now);
      this.touch(projectId, now);
      return this.requireInstance(id);
    }).immediate();
  }

  updateInstance(id: string, changes: InstanceChanges): Instance {
    return this.db.transaction(() => {
      const current = this.requireInstance(id);
      if (changes.name !== undefined && changes.name !== current.name) this.assertNameFree(current.projectId, changes.name);
      const now = Date.now();
      this.db
        .prepare('UPDATE instances SET name = ?, mask_sha256 = ?, color = ?, prompts = ?, updated_at = ? WHERE id = ?')
        .run(
          changes.name ?? current.name,
          changes.maskSha256 !== undefined ? changes.maskSha256 : current.maskSha256,
          changes.color !== undefined ? changes.color : current.color,
          JSON.stringify(changes.prompts ?? current.prompts),
          now,
          id,
        );
      this.touch(current.projectId, now);
      return this.requireInstance(id);
    }).immediate();
  }

  deleteInstance(id: string): void {
    const instance = this.requireInstance(id);
    this.db.prepare('DELETE FROM instances WHERE id = ?').run(id);
    this.touch(instance.projectId, Date.now());
  }

  /** Sets the order of a project's instances; ids must list each of them exactly once. */
  reorderInstances(projectId: string, ids: string[]): Instance[] {
    return this.db.transaction(() => {
      const current = this.instances(projectId).map((instance) => instance.id);
      if (ids.length !== current.length || new Set(ids).size !== ids.length || ids.some((id) => !current.includes(id))) {
        throw new ConflictError(`the new order must list each of the project's ${current.length} instances exactly once`);
      }
      const update = this.db.prepare('UPDATE instances SET position = ? WHERE id = ?');
      ids.forEach((id, position) => update.run(position, id));
      this.touch(projectId, Date.now());
      return this.instances(projectId);
    }).immediate();
  }

  /** A learned token; instanceId is kept only when that instance still belongs to the project. */
  addConcept(concept: Omit<Concept, 'id' | 'createdAt'>): Concept {
    const id = randomUUID();
    const now = Date.now();
    const instanceId = concept.instanceId && this.db.prepare('SELECT 1 FROM instances WHERE id = ? AND project_id = ?').get(concept.instanceId, concept.projectId) ? concept.instanceId : null;
    this.db
      .prepare(
        `INSERT INTO concepts (id, project_id, instance_id, token, learn_job_id, base_model, preset, folder_sha256, metadata, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(id, concept.projectId, instanceId, concept.token, concept.learnJobId, concept.baseModel, concept.preset, concept.folderSha256, JSON.stringify(concept.metadata), now);
    this.touch(concept.projectId, now);
    return toConcept(this.db.prepare('SELECT * FROM concepts WHERE id = ?').get(id) as ConceptRow);
  }

  /** A composed image with the parameters that reproduce it (written by compose jobs). */
  addGeneration(generation: Omit<Generation, 'id' | 'createdAt'>): Generation {
    const id = randomUUID();
    const now = Date.now();
    this.db
      .prepare('INSERT INTO generations (id, project_id, compose_job_id, prompt, params, image_sha256, report_sha256, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(id, generation.projectId, generation.composeJobId, generation.prompt, JSON.stringify(generation.params), generation.imageSha256, generation.reportSha256, now);
    this.touch(generation.projectId, now);
    return toGeneration(this.db.prepare('SELECT * FROM generations WHERE id = ?').get(id) as GenerationRow);
  }

  requireInstance(id: string): Instance {
    const row = this.db.prepare('SELECT * FROM instances WHERE id = ?').get(id) as InstanceRow | undefined;
    if (!row) throw new NotFoundError('instance', id);
    return toInstance(row);
  }

  private assertNameFree(projectId: string, name: string): void {
    if (this.db.prepare('SELECT 1 FROM instances WHERE project_id = ? AND name = ?').get(projectId, name)) {
      throw new ConflictError(`this project already has an instance named '${name}'`);
    }
  }

  private touch(projectId: string, now: number): void {
    this.db.prepare('UPDATE projects SET updated_at = ? WHERE id = ?').run(now, projectId);
  }
}

interface ProjectRow {
  id: string;
  name: string;
  photo_sha256: string | null;
  photo_media_type: string | null;
  photo_width: number | null;
  photo_height: number | null;
  thumbnail_sha256: string | null;
  sam_embedding_sha256: string | null;
  base_model: string | null;
  settings: string;
  created_at: number;
  updated_at: number;
}

interface InstanceRow {
  id: string;
  project_id: string;
  name: string;
  position: number;
  mask_sha256: string | null;
  color: string | null;
  prompts: string;
  created_at: number;
  updated_at: number;
}

interface ConceptRow {
  id: string;
  project_id: string;
  instance_id: string | null;
  token: string;
  learn_job_id: string | null;
  base_model: string | null;
  preset: string | null;
  folder_sha256: string | null;
  metadata: string;
  created_at: number;
}

interface GenerationRow {
  id: string;
  project_id: string;
  compose_job_id: string | null;
  prompt: string;
  params: string;
  image_sha256: string | null;
  report_sha256: string | null;
  created_at: number;
}

function toProject(row: ProjectRow): Project {
  return {
    id: row.id,
    name: row.name,
    photo: row.photo_sha256 ? { sha256: row.photo_sha256, mediaType: row.photo_media_type ?? 'application/octet-stream', width: row.photo_width, height: row.photo_height } : null,
    thumbnailSha256: row.thumbnail_sha256,
    samEmbeddingSha256: row.sam_embedding_sha256,
    baseModel: row.base_model,
    settings: JSON.parse(row.settings) as Record<string, unknown>,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function toInstance(row: InstanceRow): Instance {
  return {
    id: row.id,
    projectId: row.project_id,
    name: row.name,
    position: row.position,
    maskSha256: row.mask_sha256,
    color: row.color,
    prompts: JSON.parse(row.prompts) as Record<string, unknown>,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function toConcept(row: ConceptRow): Concept {
  return {
    id: row.id,
    projectId: row.project_id,
    instanceId: row.instance_id,
    token: row.token,
    learnJobId: row.learn_job_id,
    baseModel: row.base_model,
    preset: row.preset,
    folderSha256: row.folder_sha256,
    metadata: JSON.parse(row.metadata) as Record<string, unknown>,
    createdAt: row.created_at,
  };
}

function toGeneration(row: GenerationRow): Generation {
  return {
    id: row.id,
    projectId: row.project_id,
    composeJobId: row.compose_job_id,
    prompt: row.prompt,
    params: JSON.parse(row.params) as Record<string, unknown>,
    imageSha256: row.image_sha256,
    reportSha256: row.report_sha256,
    createdAt: row.created_at,
  };
}
