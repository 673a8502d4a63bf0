// What a library, `mifo pack inspect` and the studio show about a pack (everything but the tensors and images).
import type { Pack, PackBaseModel } from './format.ts';

export interface PackSummary {
  sha256: string;
  size: number;
  name: string;
  note: string;
  createdAt: string;
  learnedAt: string;
  baseModel: PackBaseModel;
  resolution: number;
  instances: { token: string; name: string | null; box: [number, number, number, number] | null }[];
  lora: { rank: number; alpha: number; components: string[]; modules: number } | null;
}

export function summarizePack(pack: Pack): PackSummary {
  const lora = pack.training.lora;
  return {
    sha256: pack.sha256,
    size: pack.size,
    name: pack.header.name,
    note: pack.header.note,
    createdAt: pack.header.createdAt,
    learnedAt: pack.training.learnedAt,
    baseModel: pack.baseModel,
    resolution: pack.source.resolution,
    instances: pack.instances.map(({ token, name, box }) => ({ token, name, box })),
    lora: lora ? { rank: lora.rank, alpha: lora.alpha, components: [...lora.components], modules: pack.lora.size } : null,
  };
}
