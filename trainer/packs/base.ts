// What a pack is checked against before it is imported: the base model's identity (id and weights hash), its
// text-encoder width and the projections a LoRA may adapt, all read from the model folder's config and safetensors
// headers (no weights are loaded, no tensor engine is needed).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { requireComponent, WeightSource } from '../io/diffusers.ts';
import { readJson, readPipelineIndex } from '../io/model_index.ts';
import { hashModelWeights, modelId } from '../concepts/format.ts';
import { kohyaModuleName, PackBaseModelError, PackError, TOKEN_PATTERN, type LoraComponent, type Pack } from './format.ts';

export interface LoraTargetModule {
  component: LoraComponent;
  /** the diffusers module path, e.g. down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q */
  prefix: string;
  inFeatures: number;
  outFeatures: number;
}

export interface BaseModelProfile {
  dir: string;
  id: string;
  weightsHash: string;
  hiddenSize: number;
  /** kohya module name -> the projection it adapts; the projections the studio's LoRA trains (trainer/concepts/lora.ts) */
  modules: Map<string, LoraTargetModule>;
  /** entries of the tokenizer's vocabulary that look like pack tokens: an imported token must not be one of them */
  vocabularyTokens: Set<string>;
}

const TOKEN_TABLE = 'text_model.embeddings.token_embedding.weight';
/** The attention projections of trainer/concepts/lora.ts loraTargets(): UNet to_q/k/v/out.0, CLIP q/k/v/out_proj. */
const TARGETS: Record<LoraComponent, RegExp> = {
  unet: /^(.+\.attn[12]\.(?:to_q|to_k|to_v|to_out\.0))\.weight$/,
  text_encoder: /^(text_model\.encoder\.layers\.\d+\.self_attn\.(?:q_proj|k_proj|v_proj|out_proj))\.weight$/,
};

function componentModules(componentDir: string, component: LoraComponent, into: Map<string, LoraTargetModule>): number[] | null {
  const weights = WeightSource.forComponent(componentDir);
  try {
    let table: number[] | null = null;
    for (const key of weights.keys()) {
      if (key === TOKEN_TABLE) table = weights.shape(key);
      const match = TARGETS[component].exec(key);
      if (!match) continue;
      const shape = weights.shape(key);
      if (shape.length !== 2) continue;
      const prefix = match[1]!;
      const name = kohyaModuleName(component, prefix);
      if (into.has(name)) throw new PackError(`${componentDir}: two modules map to the kohya name ${name}`);
      into.set(name, { component, prefix, outFeatures: shape[0]!, inFeatures: shape[1]! });
    }
    return table;
  } finally {
    weights.close();
  }
}

/** Vocabulary entries (vocab.json, added_tokens.json) shaped like pack tokens, which the tokenizer would refuse to add. */
function vocabularyTokens(modelDir: string): Set<string> {
  const tokens = new Set<string>();
  for (const file of ['vocab.json', 'added_tokens.json']) {
    const path = join(modelDir, 'tokenizer', file);
    if (!existsSync(path)) continue;
    for (const token of Object.keys(readJson<Record<string, number>>(path))) if (TOKEN_PATTERN.test(token)) tokens.add(token);
  }
  return tokens;
}

/** Reads the profile of a diffusers model folder (hashing its weights takes a few seconds on a full-size model). */
export async function profileBaseModel(modelDir: string): Promise<BaseModelProfile> {
  const index = readPipelineIndex(modelDir);
  const modules = new Map<string, LoraTargetModule>();
  componentModules(requireComponent(modelDir, index, 'unet', ['UNet2DConditionModel']), 'unet', modules);
  const textEncoderDir = requireComponent(modelDir, index, 'text_encoder', ['CLIPTextModel']);
  const table = componentModules(textEncoderDir, 'text_encoder', modules);
  if (!table || table.length !== 2) throw new PackError(`${textEncoderDir}: no ${TOKEN_TABLE} in the weights`);
  return { dir: modelDir, id: modelId(modelDir), weightsHash: await hashModelWeights(modelDir), hiddenSize: table[1]!, modules, vocabularyTokens: vocabularyTokens(modelDir) };
}

export interface BaseModelCheck {
  /** kohya module name -> the projection of this model it adapts */
  modules: Map<string, LoraTargetModule>;
  /** e.g. that the weights differ from those the pack was learned on */
  warnings: string[];
}

export interface BaseModelCheckOptions {
  /** import onto a model other than the pack's (only shapes are checked then) */
  allowOtherBase?: boolean;
}

/** sha256:0123456789ab… */
function shortHash(weightsHash: string): string {
  return `${weightsHash.slice(0, 'sha256:'.length + 12)}…`;
}

function describeModel(id: string, weightsHash: string): string {
  return `'${id}' (${shortHash(weightsHash)})`;
}

/**
 * Checks that `pack` fits `base`: the same model (by weights hash, or by id with a warning), the embedding width,
 * and every LoRA module a projection of this model with the right in/out features.
 */
export function checkPackForBase(pack: Pack, base: BaseModelProfile, options: BaseModelCheckOptions = {}): BaseModelCheck {
  const warnings: string[] = [];
  const packModel = describeModel(pack.baseModel.id, pack.baseModel.weightsHash);
  const thisModel = describeModel(base.id, base.weightsHash);
  if (pack.baseModel.weightsHash !== base.weightsHash) {
    if (pack.baseModel.id === base.id) {
      warnings.push(`the pack was learned on ${packModel}; this copy of '${base.id}' has other weights (${shortHash(base.weightsHash)}), e.g. another precision or a fine-tune`);
    } else if (options.allowOtherBase) {
      warnings.push(`the pack was learned on ${packModel}, not on this model ${thisModel}; imported anyway as asked`);
    } else {
      throw new PackBaseModelError(
        `pack '${pack.header.name}' was learned on base model ${packModel}, but this model is ${thisModel}: its tokens and LoRA only mean something on its own base model. ` +
          `Import it into a project on '${pack.baseModel.id}' (or allow another base model to try anyway).`,
      );
    }
  }
  if (pack.baseModel.hiddenSize !== base.hiddenSize) {
    throw new PackBaseModelError(`pack '${pack.header.name}' has ${pack.baseModel.hiddenSize}-wide embeddings (base ${packModel}); the text encoder of ${thisModel} is ${base.hiddenSize} wide`);
  }
  const modules = new Map<string, LoraTargetModule>();
  for (const module of pack.lora.values()) {
    const target = base.modules.get(module.name);
    if (!target) throw new PackBaseModelError(`LoRA module ${module.name} is not an attention projection of ${thisModel}`);
    const [, inFeatures] = module.down.shape;
    const [outFeatures] = module.up.shape;
    if (inFeatures !== target.inFeatures || outFeatures !== target.outFeatures) {
      throw new PackBaseModelError(`LoRA module ${module.name} maps ${inFeatures} -> ${outFeatures} features, but ${target.prefix} of ${thisModel} maps ${target.inFeatures} -> ${target.outFeatures}`);
    }
    modules.set(module.name, target);
  }
  return { modules, warnings };
}
