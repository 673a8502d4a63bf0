// The studio's project workflow on top of the stores and the job service: SAM embeddings on demand, projects made
// from the sample photos (public/samples/), the sample project seeded on first start, and the learn and compose
// submissions built from a project's instances and learned concepts.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { JobInputError, type JobRecord } from '../jobs/contract.ts';
import type { ServerServices } from '../services.ts';
import { writeFileAtomicSync } from '../storage/atomic.ts';
import { ConflictError, NotFoundError, type Concept, type Instance, type Project } from '../storage/projects.ts';
import { thumbnailOf } from './photos.ts';

export interface SampleInstance {
  name: string;
  mask: string;
  color: string;
  click: [number, number];
  box: [number, number, number, number];
}

export interface Sample {
  id: string;
  title: string;
  caption: string;
  photo: string;
  width: number;
  height: number;
  instances: SampleInstance[];
}

/** public/samples under the directory the server runs in (next start runs in the repository root). */
export function samplesDir(): string {
  return resolve(/*turbopackIgnore: true*/ process.cwd(), 'public', 'samples');
}

export function readSamples(): Sample[] {
  const path = join(samplesDir(), 'samples.json');
  if (!existsSync(path)) return [];
  return (JSON.parse(readFileSync(path, 'utf8')) as { samples: Sample[] }).samples;
}

/** The project's SAM embedding, or the sam-encode job that is making it (submitted here when none is). */
export async function requestSamEmbedding(services: ServerServices, projectId: string): Promise<{ ready: true; embedding: string } | { ready: false; job: JobRecord }> {
  const project = services.projects.require(projectId);
  if (project.samEmbeddingSha256) return { ready: true, embedding: project.samEmbeddingSha256 };
  if (!project.photo) throw new ConflictError('this project has no photo yet: upload one first');
  const image = project.photo.sha256;
  const active = services.jobs
    .list({ projectId, type: 'sam-encode', statuses: ['queued', 'running'], limit: 20 })
    .find((job) => (job.input as { image?: string }).image === image);
  if (active) return { ready: false, job: active };
  return { ready: false, job: await services.jobs.submit({ type: 'sam-encode', input: { image }, projectId }) };
}

export async function createProjectFromSample(services: ServerServices, sampleId: string, options: { withMasks: boolean; name?: string }): Promise<Project> {
  const sample = readSamples().find((s) => s.id === sampleId);
  if (!sample) throw new NotFoundError('sample', sampleId);
  const dir = samplesDir();
  const photoBytes = readFileSync(join(dir, sample.photo));
  const photo = await services.artifacts.put(photoBytes, 'image/png');
  const masks = options.withMasks ? await Promise.all(sample.instances.map(async (instance) => (await services.artifacts.put(readFileSync(join(dir, instance.mask)), 'image/png')).sha256)) : [];
  const thumbnailSha256 = await thumbnailOf(services, photoBytes);
  const project = services.projects.create({
    name: options.name ?? sample.title,
    photo: { sha256: photo.sha256, mediaType: 'image/png', width: sample.width, height: sample.height },
    settings: { sample: sample.id },
  });
  services.projects.update(project.id, { thumbnailSha256 });
  sample.instances.forEach((instance, i) => {
    if (!options.withMasks) return;
    services.projects.addInstance(project.id, { name: instance.name, maskSha256: masks[i]!, color: instance.color, prompts: { source: 'sample' } });
  });
  await requestSamEmbedding(services, project.id);
  return services.projects.require(project.id);
}

const SEEDING = Symbol.for('mifo.sampleSeeding');

/** On the first start of a data dir, a project from the first sample (masks ready) so the studio is never empty. */
export function ensureSampleProject(services: ServerServices): Promise<void> {
  const holder = globalThis as { [SEEDING]?: Map<string, Promise<void>> };
  const seeding = (holder[SEEDING] ??= new Map());
  const dataDir = services.config.dataDir;
  let pending = seeding.get(dataDir);
  if (!pending) {
    pending = (async () => {
      const marker = join(dataDir, 'sample-project-seeded');
      if (existsSync(marker)) return;
      const [first] = readSamples();
      if (first && services.projects.list({ limit: 1 }).length === 0) await createProjectFromSample(services, first.id, { withMasks: true, name: `Sample: ${first.title}` });
      writeFileAtomicSync(marker, `${new Date().toISOString()}\n`);
    })().catch((error: unknown) => {
      seeding.delete(dataDir);
      throw error;
    });
    seeding.set(dataDir, pending);
  }
  return pending;
}

/** Previews while learning, about five per phase: what the tokens generate so far ("a photo of <asset0> and …"). */
const PREVIEW_EVERY: Record<'paper' | 'reference' | 'fast' | 'bas', number> = { fast: 20, paper: 100, reference: 100, bas: 100 };
const PREVIEW_STEPS = 20;

export function submitLearn(
  services: ServerServices,
  projectId: string,
  preset: 'paper' | 'reference' | 'fast' | 'bas',
  initializeFromNames: boolean,
): Promise<JobRecord> {
  const project = services.projects.require(projectId);
  if (!project.photo) throw new ConflictError('this project has no photo yet: upload one first');
  const instances = services.projects.instances(projectId);
  if (instances.length === 0) throw new ConflictError('add at least one instance with a mask on the Masks step before learning');
  const missing = instances.filter((instance) => !instance.maskSha256);
  if (missing.length) throw new ConflictError(`${missing.map((i) => `'${i.name}'`).join(', ')} ${missing.length === 1 ? 'has' : 'have'} no mask yet: click the object on the Masks step, or delete the instance`);
  if (instances.length > 16) throw new ConflictError(`a photo can teach at most 16 instances; this project has ${instances.length}`);
  const running = services.jobs.list({ projectId, type: 'learn', statuses: ['queued', 'running'], limit: 1 });
  if (running.length) throw new ConflictError('this project is already learning: wait for that run or cancel it');
  return services.jobs.submit({
    type: 'learn',
    projectId,
    input: {
      image: project.photo.sha256,
      masks: instances.map((instance) => instance.maskSha256!),
      names: instances.map((instance) => instance.name),
      instanceIds: instances.map((instance) => instance.id),
      initializeFromNames,
      preset,
      options: { previewEvery: PREVIEW_EVERY[preset], previewSteps: PREVIEW_STEPS },
    },
  });
}

export interface LearnedToken {
  /** how the prompt writes it: <instance name> for learned tokens, the pack's token for imported ones */
  token: string;
  name: string;
  /** the token inside the concept folder (<asset0>, … or an imported pack's token) */
  folderToken: string;
  folder: string;
  instanceId: string | null;
  color: string | null;
  conceptId: string;
  source: 'learned' | 'pack';
  /** the pack an imported token came from */
  pack: string | null;
}

function isImported(concept: Concept): boolean {
  return concept.metadata.source === 'pack';
}

/**
 * The tokens compose can use: those of the project's latest learning run, named after their instances' current
 * names, and every token imported from a pack. Tokens are kept distinct (a clash gets a number).
 */
export function learnedTokens(concepts: Concept[], instances: Instance[]): LearnedToken[] {
  const byId = new Map(instances.map((instance) => [instance.id, instance]));
  const used = new Set<string>();
  const unique = (name: string) => {
    let candidate = name;
    for (let k = 2; used.has(candidate); k++) candidate = `${name}-${k}`;
    used.add(candidate);
    return candidate;
  };
  const latest = concepts.filter((c) => c.folderSha256 && !isImported(c)).at(-1);
  const learned = latest ? concepts.filter((c) => !isImported(c) && c.folderSha256 === latest.folderSha256 && c.learnJobId === latest.learnJobId) : [];
  const tokens: LearnedToken[] = learned.map((concept) => {
    const instance = concept.instanceId ? byId.get(concept.instanceId) : undefined;
    const name = unique(instance?.name ?? (typeof concept.metadata.name === 'string' ? concept.metadata.name : concept.token.replace(/[<>]/g, '')));
    return { token: `<${name}>`, name, folderToken: concept.token, folder: concept.folderSha256!, instanceId: concept.instanceId, color: instance?.color ?? null, conceptId: concept.id, source: 'learned', pack: null };
  });
  for (const concept of concepts.filter((c) => isImported(c) && c.folderSha256)) {
    const name = unique(concept.token.replace(/[<>]/g, ''));
    const pack = (concept.metadata.pack as { name?: unknown } | undefined)?.name;
    tokens.push({ token: `<${name}>`, name, folderToken: concept.token, folder: concept.folderSha256!, instanceId: null, color: null, conceptId: concept.id, source: 'pack', pack: typeof pack === 'string' ? pack : null });
  }
  return tokens;
}

export interface ComposeRequest {
  prompt: string;
  negativePrompt: string;
  boxes: [number, number, number, number][];
  seed: number;
  batch: number;
  steps: number;
  /** absent: the model's */
  guidanceScale?: number;
  guidanceRescale?: number;
  preset: 'mifo' | 'ba' | 'off';
  ablations: string[];
  control: Record<string, unknown>;
  previewEvery: number;
  compareWithoutControl: boolean;
}

/** The prompt's <tokens>, in order. */
export function promptTokens(prompt: string): string[] {
  return [...prompt.matchAll(/<[^<>\s]+>/g)].map((match) => match[0]);
}

export function submitCompose(services: ServerServices, projectId: string, request: ComposeRequest): Promise<JobRecord> {
  const detail = services.projects.detail(projectId);
  const tokens = learnedTokens(detail.concepts, detail.instances);
  const known = new Map(tokens.map((token) => [token.token, token]));
  const used = promptTokens(request.prompt);
  const unknown = used.filter((token) => !known.has(token));
  if (unknown.length) {
    const offer = tokens.length ? `learned tokens: ${tokens.map((t) => t.token).join(', ')}` : 'nothing is learned yet: run the Learn step first';
    throw new JobInputError(`${unknown.join(', ')} ${unknown.length === 1 ? 'is not a learned token' : 'are not learned tokens'} of this project (${offer})`);
  }
  if (used.length > 0 && used.length !== request.boxes.length) {
    throw new JobInputError(`the prompt has ${used.length} learned token${used.length === 1 ? '' : 's'} but there ${request.boxes.length === 1 ? 'is' : 'are'} ${request.boxes.length} box${request.boxes.length === 1 ? '' : 'es'}: one box per token`);
  }
  // Only the folders whose tokens the prompt uses are loaded; each of their tokens gets its name in the studio.
  const needed = new Set(tokens.filter((t) => used.includes(t.token)).map((t) => t.folder));
  const folders = new Map<string, Record<string, string>>();
  for (const token of tokens.filter((t) => needed.has(t.folder))) {
    const rename = folders.get(token.folder) ?? {};
    if (token.folderToken !== token.token) rename[token.folderToken] = token.token;
    folders.set(token.folder, rename);
  }
  return services.jobs.submit({
    type: 'compose',
    projectId,
    input: { ...request, concepts: [...folders].map(([folder, rename]) => ({ folder, rename })) },
  });
}
