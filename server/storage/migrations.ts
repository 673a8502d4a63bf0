// Schema migrations, applied in order and recorded in schema_migrations. Never edit a released migration: add one.
// Blobs (photos, masks, concept folders, packs, previews) live in the artifact store; rows hold their sha256.
// Timestamps are milliseconds since the epoch; JSON columns hold TEXT.

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'projects, instances, concepts, generations, packs, jobs, job events',
    sql: `
      CREATE TABLE projects (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        -- the uploaded photo as stored (artifact) and its pixel size
        photo_sha256 TEXT,
        photo_media_type TEXT,
        photo_width INTEGER,
        photo_height INTEGER,
        thumbnail_sha256 TEXT,
        -- the SAM image embedding of the photo, made once by a sam-encode job
        sam_embedding_sha256 TEXT,
        -- base model the project learns on (a model id or folder name)
        base_model TEXT,
        settings TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE INDEX projects_updated ON projects(updated_at DESC);

      -- one object in the photo: its mask and the name that becomes its token
      CREATE TABLE instances (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        position INTEGER NOT NULL,
        mask_sha256 TEXT,
        color TEXT,
        -- the clicks, box or brush strokes that made the mask, so it can be edited again
        prompts TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        UNIQUE (project_id, name)
      );
      CREATE INDEX instances_project ON instances(project_id, position);

      -- a learned token (with its share of the LoRA) produced by a learn job
      CREATE TABLE concepts (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        instance_id TEXT REFERENCES instances(id) ON DELETE SET NULL,
        token TEXT NOT NULL,
        learn_job_id TEXT,
        base_model TEXT,
        preset TEXT,
        -- the concept folder (a tree artifact: learned_embeds, LoRA, manifest, attention maps)
        folder_sha256 TEXT,
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at INTEGER NOT NULL
      );
      CREATE INDEX concepts_project ON concepts(project_id, created_at);

      -- a composed image with every parameter needed to reproduce it
      CREATE TABLE generations (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        compose_job_id TEXT,
        prompt TEXT NOT NULL,
        params TEXT NOT NULL DEFAULT '{}',
        image_sha256 TEXT,
        -- the final subject masks and per-step losses written next to the image
        report_sha256 TEXT,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX generations_project ON generations(project_id, created_at DESC);

      -- the pack library: exported, published and imported packs, addressed by the sha256 of the pack file
      CREATE TABLE packs (
        id TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        base_model TEXT,
        tokens TEXT NOT NULL DEFAULT '[]',
        -- the pack's own metadata (format version, instance names, options, author note) as read from the file
        manifest TEXT NOT NULL DEFAULT '{}',
        preview_sha256 TEXT,
        source TEXT NOT NULL CHECK (source IN ('exported', 'imported')),
        visibility TEXT NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'unlisted', 'public')),
        -- the secret part of an unlisted link
        share_token TEXT UNIQUE,
        project_id TEXT REFERENCES projects(id) ON DELETE SET NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE INDEX packs_visibility ON packs(visibility, created_at DESC);
      CREATE INDEX packs_sha256 ON packs(sha256);

      CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        resource TEXT NOT NULL CHECK (resource IN ('gpu', 'cpu')),
        status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
        project_id TEXT REFERENCES projects(id) ON DELETE SET NULL,
        input TEXT NOT NULL,
        result TEXT,
        error TEXT,
        -- the latest progress event's data, for lists
        progress TEXT,
        priority INTEGER NOT NULL DEFAULT 0,
        -- attempts started (a graceful release does not count)
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL,
        timeout_ms INTEGER NOT NULL,
        -- a retried job waits until then (backoff)
        run_after INTEGER NOT NULL,
        worker_id TEXT,
        lease_token TEXT,
        lease_expires_at INTEGER,
        cancel_requested_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        started_at INTEGER,
        finished_at INTEGER
      );
      CREATE INDEX jobs_claim ON jobs(status, resource, priority DESC, created_at);
      CREATE INDEX jobs_project ON jobs(project_id, created_at DESC);
      CREATE INDEX jobs_created ON jobs(created_at DESC);

      -- append-only; the id is the SSE event id a reconnecting client resumes from
      CREATE TABLE job_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}',
        -- set for events that arrive through the Redis stream, so a redelivered one is stored once
        source_id TEXT UNIQUE
      );
      CREATE INDEX job_events_job ON job_events(job_id, id);
    `,
  },
];
