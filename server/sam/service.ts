// The web server's side of click-to-segment: one decoder session per process and the embeddings of the photos being
// segmented right now, read from the artifact store on their first click.
import type { ArtifactStore } from '../storage/artifacts.ts';
import { parseEmbedding, SamDecoder, type SamEmbedding, type SamMask, type SamPrompt } from './model.ts';

/** Each embedding is 4 MB; a handful covers everyone segmenting at once. */
const CACHED_EMBEDDINGS = 6;

export class SamService {
  private decoder: Promise<SamDecoder> | null = null;
  private readonly embeddings = new Map<string, Promise<SamEmbedding>>();

  constructor(private readonly artifacts: ArtifactStore) {}

  private loadDecoder(): Promise<SamDecoder> {
    this.decoder ??= SamDecoder.load().catch((error: unknown) => {
      this.decoder = null;
      throw error;
    });
    return this.decoder;
  }

  private embedding(sha256: string): Promise<SamEmbedding> {
    let entry = this.embeddings.get(sha256);
    if (entry) {
      // most recently used goes last
      this.embeddings.delete(sha256);
    } else {
      entry = this.artifacts.read(sha256).then((bytes) => parseEmbedding(bytes));
      entry.catch(() => this.embeddings.delete(sha256));
    }
    this.embeddings.set(sha256, entry);
    while (this.embeddings.size > CACHED_EMBEDDINGS) this.embeddings.delete(this.embeddings.keys().next().value!);
    return entry;
  }

  async segment(embeddingSha256: string, prompt: SamPrompt): Promise<SamMask> {
    const [decoder, embedding] = await Promise.all([this.loadDecoder(), this.embedding(embeddingSha256)]);
    return decoder.decode(embedding, prompt);
  }
}

const SINGLETON = Symbol.for('mifo.samServices');

/** One service per artifact store (one per process in the studio), kept across module reloads of `next dev`. */
export function getSamService(artifacts: ArtifactStore): SamService {
  const holder = globalThis as { [SINGLETON]?: WeakMap<ArtifactStore, SamService> };
  const services = (holder[SINGLETON] ??= new WeakMap());
  let service = services.get(artifacts);
  if (!service) {
    service = new SamService(artifacts);
    services.set(artifacts, service);
  }
  return service;
}
