// The pack workflow on top of the stores and the job service (the `packs` router is a thin layer over this):
// publish a project's learned concepts (a pack-export job), add an uploaded pack file to the library, and import a
// library pack into a project (a pack-import job, checked against the base model on a worker).
import type { JobRecord } from '../jobs/contract.ts';
import type { ServerServices } from '../services.ts';
import { UploadError } from '../storage/images.ts';
import { ConflictError, NotFoundError } from '../storage/projects.ts';
import { PackLibrary, type PackEntry, type PackVisibility } from './library.ts';
import { packListing, readUploadedPack } from './previews.ts';

const PACK_TOKEN = /^<[a-z0-9][a-z0-9_-]{0,46}>$/;

export function packLibrary(services: ServerServices): PackLibrary {
  return new PackLibrary(services.db);
}

/** `<mug>` for an instance named "Mug" (null when the name has nothing a pack token can hold). */
export function tokenForName(name: string): string | null {
  const stem = name
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[\s.]+/g, '-')
    .replace(/[^a-z0-9_-]/g, '')
    .replace(/^[-_]+|-+$/g, '')
    .slice(0, 47);
  const token = `<${stem}>`;
  return PACK_TOKEN.test(token) ? token : null;
}

export interface PublishRequest {
  projectId: string;
  /** default: the project's name */
  name?: string;
  note?: string;
  visibility: PackVisibility;
  /** which concept folder to pack (also an imported one); default: the project's latest learning run */
  folderSha256?: string;
  /** token names in the pack; default: each instance's current name (<mug>), where it makes a valid, unique token */
  rename?: Record<string, string>;
}

/** Submits the pack-export job for a project's learned concepts; its result enters the library. */
export async function publishProject(services: ServerServices, request: PublishRequest): Promise<JobRecord> {
  const detail = services.projects.detail(request.projectId);
  const learned = detail.concepts.filter((concept) => concept.folderSha256);
  const folder = request.folderSha256 ?? learned.filter((concept) => concept.metadata.source !== 'pack').at(-1)?.folderSha256;
  if (!folder) throw new ConflictError('this project has no concepts learned from its photo yet: learn its instances first (imported packs are published by giving their folderSha256)');
  const concepts = learned.filter((concept) => concept.folderSha256 === folder);
  if (concepts.length === 0) throw new NotFoundError('concept folder of this project', folder);
  const instances = new Map(detail.instances.map((instance) => [instance.id, instance]));
  const rename: Record<string, string> = {};
  const names: Record<string, string> = {};
  const used = new Set<string>();
  for (const concept of concepts) {
    const name = (concept.instanceId ? instances.get(concept.instanceId)?.name : undefined) ?? (typeof concept.metadata.name === 'string' ? concept.metadata.name : null);
    if (name) names[concept.token] = name;
    const token = name ? tokenForName(name) : null;
    if (token && !used.has(token)) rename[concept.token] = token;
    used.add(token ?? concept.token);
  }
  Object.assign(rename, request.rename);
  const input = { folder, name: request.name?.trim() || detail.name, note: request.note ?? '', rename, names, visibility: request.visibility };
  return services.jobs.submit({ type: 'pack-export', projectId: request.projectId, input });
}

/** Adds an uploaded pack file to the library (private), after reading it completely; the same bytes twice give one entry. */
export async function addUploadedPack(services: ServerServices, bytes: Uint8Array, fileName: string): Promise<PackEntry> {
  const pack = readUploadedPack(bytes, fileName);
  const library = packLibrary(services);
  const existing = library.bySha256(pack.sha256);
  if (existing) return existing;
  const stored = await services.artifacts.put(bytes, 'application/octet-stream');
  const { previewSha256, listing } = await packListing(services.artifacts, pack);
  return library.add({ sha256: stored.sha256, size: stored.size, name: pack.header.name, listing, previewSha256, source: 'imported', visibility: 'private', projectId: null });
}

export interface ImportRequest {
  projectId: string;
  /** a library entry, or the secret of a share link */
  packId?: string;
  shareToken?: string;
  /** base model folder as the workers see it; default: the workers' default model */
  model?: string;
  allowOtherBase?: boolean;
}

/**
 * Submits the pack-import job that turns a library pack into concepts of a project. A pack whose base model differs
 * from the one the project's concepts were learned on is refused here already, naming both.
 */
export async function importIntoProject(services: ServerServices, request: ImportRequest): Promise<JobRecord> {
  if ((request.packId === undefined) === (request.shareToken === undefined)) throw new UploadError('give exactly one of packId and shareToken');
  const library = packLibrary(services);
  const entry = request.packId !== undefined ? library.require(request.packId) : library.byShareToken(request.shareToken!);
  if (!services.artifacts.has(entry.sha256)) throw new NotFoundError('pack file', entry.sha256);
  const detail = services.projects.detail(request.projectId);
  const projectModels = [...new Set(detail.concepts.map((concept) => concept.baseModel).filter((model): model is string => model !== null))];
  if (!request.allowOtherBase && entry.baseModel && projectModels.length > 0 && !projectModels.includes(entry.baseModel)) {
    throw new ConflictError(`pack '${entry.name}' was learned on base model '${entry.baseModel}', but this project's concepts are on '${projectModels.join("', '")}': import it into a project on '${entry.baseModel}'`);
  }
  return services.jobs.submit({
    type: 'pack-import',
    projectId: request.projectId,
    input: {
      pack: entry.sha256,
      packId: entry.id,
      ...(request.model ? { model: request.model } : {}),
      takenTokens: detail.concepts.map((concept) => concept.token),
      allowOtherBase: request.allowOtherBase ?? false,
    },
  });
}

/** A file name for downloads: the pack's name in safe characters. */
export function packFileName(entry: Pick<PackEntry, 'name' | 'sha256'>): string {
  const stem = entry.name.normalize('NFKD').replace(/[^A-Za-z0-9._ -]+/g, '').trim().replace(/\s+/g, '-').slice(0, 80);
  return `${stem || `pack-${entry.sha256.slice(0, 12)}`}.safetensors`;
}
