// LoRA on the attention projections of the UNet (to_q, to_k, to_v, to_out.0) and the text encoder (q/k/v/out_proj),
// stored with diffusers/PEFT names: "unet.<module>.lora_A.weight" [rank, in] and ".lora_B.weight" [out, rank],
// "text_encoder.<module>...". Several adapters on one projection stack by concatenating their ranks, which adds
// their deltas exactly.
import { tf } from '../runtime/backend.ts';
import type { LowRankAdapter, ParameterStore } from '../nn/parameters.ts';
import type { TensorToWrite } from '../io/safetensors.ts';
import type { StableDiffusionPipeline } from '../pipelines/stable_diffusion.ts';
import type { Generator } from '../util/random.ts';

export type LoraComponent = 'unet' | 'text_encoder';

export interface LoraTarget {
  component: LoraComponent;
  /** the Linear's module path, e.g. "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q" */
  prefix: string;
  inFeatures: number;
  outFeatures: number;
}

const UNET_PROJECTIONS = ['to_q', 'to_k', 'to_v', 'to_out.0'];
const TEXT_PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'out_proj'];

function componentStore(pipeline: StableDiffusionPipeline, component: LoraComponent): ParameterStore {
  return component === 'unet' ? pipeline.unet.store : pipeline.textEncoder.store;
}

function target(store: ParameterStore, component: LoraComponent, prefix: string): LoraTarget {
  const spec = store.specs.get(`${prefix}.weight`);
  if (!spec || spec.torchShape.length !== 2) throw new Error(`${component} has no linear layer '${prefix}'`);
  return { component, prefix, outFeatures: spec.torchShape[0]!, inFeatures: spec.torchShape[1]! };
}

/** Every projection the studio's LoRA adapts, in a fixed order. */
export function loraTargets(pipeline: StableDiffusionPipeline): LoraTarget[] {
  const unet = pipeline.unet.attentionLayers.flatMap((layer) => UNET_PROJECTIONS.map((p) => target(pipeline.unet.store, 'unet', `${layer.id}.${p}`)));
  const text = pipeline.textEncoder.layers.flatMap((layer) =>
    TEXT_PROJECTIONS.map((p) => target(pipeline.textEncoder.store, 'text_encoder', `${layer.selfAttn.prefix}.${p}`)),
  );
  return [...unet, ...text];
}

export function peftKeys(t: Pick<LoraTarget, 'component' | 'prefix'>): { down: string; up: string } {
  return { down: `${t.component}.${t.prefix}.lora_A.weight`, up: `${t.component}.${t.prefix}.lora_B.weight` };
}

export interface TrainableLora {
  targets: LoraTarget[];
  rank: number;
  alpha: number;
  /** down and up of every target, in target order */
  variables: tf.Variable[];
}

/**
 * Fresh adapters on every target (PEFT init: lora_A ~ U(±1/√in), lora_B = 0, so training starts from the base
 * model), installed in the pipeline's stores. Projections must not already carry an adapter.
 */
export function attachTrainableLora(pipeline: StableDiffusionPipeline, rank: number, alpha: number, generator: Generator): TrainableLora {
  const targets = loraTargets(pipeline);
  const variables: tf.Variable[] = [];
  for (const t of targets) {
    const store = componentStore(pipeline, t.component);
    if (store.adapters.has(t.prefix)) throw new Error(`${t.component} '${t.prefix}' already has a LoRA adapter; train on the base model`);
    const bound = 1 / Math.sqrt(t.inFeatures);
    const downValues = Float32Array.from({ length: rank * t.inFeatures }, () => (2 * generator.random() - 1) * bound);
    const down = tf.variable(tf.tensor2d(downValues, [rank, t.inFeatures]), false);
    const up = tf.variable(tf.zeros([t.outFeatures, rank]), false);
    store.adapters.set(t.prefix, { down, up, scale: alpha / rank });
    variables.push(down, up);
  }
  return { targets, rank, alpha, variables };
}

/** PEFT-named tensors of the adapters as trained (scale alpha/rank kept separately, as PEFT does). */
export function loraStateDict(pipeline: StableDiffusionPipeline, targets: readonly LoraTarget[]): Record<string, TensorToWrite> {
  const out: Record<string, TensorToWrite> = {};
  for (const t of targets) {
    const adapter = componentStore(pipeline, t.component).adapters.get(t.prefix);
    if (!adapter) throw new Error(`${t.component} '${t.prefix}' has no LoRA adapter`);
    const keys = peftKeys(t);
    out[keys.down] = { dtype: 'F32', shape: adapter.down.shape, data: Float32Array.from(adapter.down.dataSync() as Float32Array) };
    out[keys.up] = { dtype: 'F32', shape: adapter.up.shape, data: Float32Array.from(adapter.up.dataSync() as Float32Array) };
  }
  return out;
}

/**
 * Adds a LoRA state dict (PEFT names) to the pipeline with a strength `scale`·alpha/rank. A projection that already
 * has an adapter gets this one stacked next to it. Keys that name no projection of this model are an error.
 */
export function applyLoraStateDict(
  pipeline: StableDiffusionPipeline,
  tensors: Map<string, { shape: number[]; data: Float32Array }>,
  options: { alpha: number; scale?: number },
): number {
  const pattern = /^(unet|text_encoder)\.(.+)\.lora_A\.weight$/;
  let applied = 0;
  for (const [key, down] of tensors) {
    const match = pattern.exec(key);
    if (!match) {
      if (!/\.lora_B\.weight$/.test(key)) throw new Error(`unexpected tensor '${key}' in a LoRA file (expected PEFT lora_A/lora_B names)`);
      continue;
    }
    const component = match[1] as LoraComponent;
    const prefix = match[2]!;
    const upKey = peftKeys({ component, prefix }).up;
    const up = tensors.get(upKey);
    if (!up) throw new Error(`LoRA file has ${key} but no ${upKey}`);
    const store = componentStore(pipeline, component);
    const t = target(store, component, prefix);
    const rank = down.shape[0]!;
    if (down.shape[1] !== t.inFeatures || up.shape[0] !== t.outFeatures || up.shape[1] !== rank) {
      throw new Error(`LoRA '${prefix}' has shapes [${down.shape}] / [${up.shape}], which do not fit the ${t.outFeatures}x${t.inFeatures} projection`);
    }
    const scale = (options.scale ?? 1) * (options.alpha / rank);
    stackAdapter(store, prefix, {
      down: tf.variable(tf.tensor2d(down.data, [rank, t.inFeatures]), false),
      up: tf.variable(tf.tensor2d(up.data, [t.outFeatures, rank]), false),
      scale,
    });
    applied++;
  }
  return applied;
}

function stackAdapter(store: ParameterStore, prefix: string, adapter: LowRankAdapter): void {
  const existing = store.adapters.get(prefix);
  if (!existing) {
    store.adapters.set(prefix, adapter);
    return;
  }
  const stacked: LowRankAdapter = tf.tidy(() => ({
    down: tf.variable(tf.concat([existing.down, adapter.down], 0), false),
    up: tf.variable(tf.concat([tf.mul(existing.up, existing.scale), tf.mul(adapter.up, adapter.scale)], 1), false),
    scale: 1,
  }));
  for (const v of [existing.down, existing.up, adapter.down, adapter.up]) v.dispose();
  store.adapters.set(prefix, stacked);
}
