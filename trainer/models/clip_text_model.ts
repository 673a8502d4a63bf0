// transformers' CLIPTextModel (the Stable Diffusion text encoder) with its exact parameter keys: token and
// position embeddings, pre-LayerNorm transformer layers under a causal mask, and a final LayerNorm. All hidden
// states can be returned so SD2-style "penultimate layer" conditioning is available.
import { readComponentConfig, WeightSource } from '../io/diffusers.ts';
import { activation, scaledDotProductAttention } from '../nn/functional.ts';
import { Embedding, LayerNorm, Linear, Module } from '../nn/layers.ts';
import { ParameterStore, WeightLoadError } from '../nn/parameters.ts';
import { tf } from '../runtime/backend.ts';

export interface CLIPTextConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  max_position_embeddings: number;
  hidden_act: string;
  layer_norm_eps: number;
  initializer_factor: number;
  eos_token_id: number;
}

// Checkpoints may carry this buffer; it is always arange(max_position_embeddings), so it is not a parameter here.
const POSITION_IDS_BUFFER = 'text_model.embeddings.position_ids';
// transformers fills masked attention logits with the lowest float32.
const MASKED_LOGIT = -3.4028234663852886e38;
// Before transformers 4.34 text configs carried eos_token_id 2 and pooled at argmax(input_ids), relying on the
// end token having the highest id. SD1 checkpoints still do; they need that rule to reproduce upstream.
const LEGACY_EOS_TOKEN_ID = 2;

function requirePositiveInteger(raw: Record<string, unknown>, name: string): number {
  const value = raw[name];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new Error(`CLIP text config: '${name}' must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

function optionalNumber(raw: Record<string, unknown>, name: string, fallback: number): number {
  const value = raw[name] ?? fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new Error(`CLIP text config: '${name}' must be a number, got ${JSON.stringify(value)}`);
  return value;
}

/** Validates a text_encoder/config.json; structural sizes are required, the rest default as in transformers. */
export function parseCLIPTextConfig(raw: Record<string, unknown>): CLIPTextConfig {
  const config: CLIPTextConfig = {
    vocab_size: requirePositiveInteger(raw, 'vocab_size'),
    hidden_size: requirePositiveInteger(raw, 'hidden_size'),
    intermediate_size: requirePositiveInteger(raw, 'intermediate_size'),
    num_hidden_layers: requirePositiveInteger(raw, 'num_hidden_layers'),
    num_attention_heads: requirePositiveInteger(raw, 'num_attention_heads'),
    max_position_embeddings: requirePositiveInteger(raw, 'max_position_embeddings'),
    hidden_act: typeof raw.hidden_act === 'string' ? raw.hidden_act : 'quick_gelu',
    layer_norm_eps: optionalNumber(raw, 'layer_norm_eps', 1e-5),
    initializer_factor: optionalNumber(raw, 'initializer_factor', 1),
    eos_token_id: optionalNumber(raw, 'eos_token_id', LEGACY_EOS_TOKEN_ID),
  };
  if (config.hidden_size % config.num_attention_heads !== 0) {
    throw new Error(`CLIP text config: hidden_size ${config.hidden_size} is not divisible by num_attention_heads ${config.num_attention_heads}`);
  }
  activation(config.hidden_act);
  return config;
}

class CLIPAttention extends Module {
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly outProj: Linear;
  private readonly headDim: number;

  constructor(store: ParameterStore, prefix: string, private readonly config: CLIPTextConfig) {
    super(store, prefix);
    const hidden = config.hidden_size;
    const factor = config.initializer_factor;
    const inProjInit = { kind: 'normal' as const, std: hidden ** -0.5 * (2 * config.num_hidden_layers) ** -0.5 * factor };
    const zeros = { kind: 'zeros' as const };
    this.qProj = new Linear(store, this.child('q_proj'), hidden, hidden, { init: inProjInit, biasInit: zeros });
    this.kProj = new Linear(store, this.child('k_proj'), hidden, hidden, { init: inProjInit, biasInit: zeros });
    this.vProj = new Linear(store, this.child('v_proj'), hidden, hidden, { init: inProjInit, biasInit: zeros });
    this.outProj = new Linear(store, this.child('out_proj'), hidden, hidden, {
      init: { kind: 'normal', std: hidden ** -0.5 * factor },
      biasInit: zeros,
    });
    this.headDim = hidden / config.num_attention_heads;
  }

  forward(x: tf.Tensor3D, causalMask: tf.Tensor): tf.Tensor3D {
    return tf.tidy(() => {
      const [batch, tokens, hidden] = x.shape;
      const heads = this.config.num_attention_heads;
      const toHeads = (t: tf.Tensor3D) => tf.transpose(tf.reshape(t, [batch, tokens, heads, this.headDim]), [0, 2, 1, 3]) as tf.Tensor4D;
      const { output } = scaledDotProductAttention(toHeads(this.qProj.forward(x)), toHeads(this.kProj.forward(x)), toHeads(this.vProj.forward(x)), {
        scale: this.headDim ** -0.5,
        logitMask: causalMask,
      });
      const merged = tf.reshape(tf.transpose(output, [0, 2, 1, 3]), [batch, tokens, hidden]) as tf.Tensor3D;
      return this.outProj.forward(merged);
    });
  }
}

class CLIPMLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  private readonly act: (x: tf.Tensor) => tf.Tensor;

  constructor(store: ParameterStore, prefix: string, config: CLIPTextConfig) {
    super(store, prefix);
    const hidden = config.hidden_size;
    const factor = config.initializer_factor;
    const zeros = { kind: 'zeros' as const };
    this.fc1 = new Linear(store, this.child('fc1'), hidden, config.intermediate_size, {
      init: { kind: 'normal', std: (2 * hidden) ** -0.5 * factor },
      biasInit: zeros,
    });
    this.fc2 = new Linear(store, this.child('fc2'), config.intermediate_size, hidden, {
      init: { kind: 'normal', std: hidden ** -0.5 * (2 * config.num_hidden_layers) ** -0.5 * factor },
      biasInit: zeros,
    });
    this.act = activation(config.hidden_act);
  }

  forward(x: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => this.fc2.forward(this.act(this.fc1.forward(x)) as tf.Tensor3D));
  }
}

class CLIPEncoderLayer extends Module {
  readonly selfAttn: CLIPAttention;
  readonly layerNorm1: LayerNorm;
  readonly mlp: CLIPMLP;
  readonly layerNorm2: LayerNorm;

  constructor(store: ParameterStore, prefix: string, config: CLIPTextConfig) {
    super(store, prefix);
    this.selfAttn = new CLIPAttention(store, this.child('self_attn'), config);
    this.layerNorm1 = new LayerNorm(store, this.child('layer_norm1'), config.hidden_size, config.layer_norm_eps);
    this.mlp = new CLIPMLP(store, this.child('mlp'), config);
    this.layerNorm2 = new LayerNorm(store, this.child('layer_norm2'), config.hidden_size, config.layer_norm_eps);
  }

  forward(x: tf.Tensor3D, causalMask: tf.Tensor): tf.Tensor3D {
    return tf.tidy(() => {
      const afterAttention = tf.add(x, this.selfAttn.forward(this.layerNorm1.forward(x), causalMask)) as tf.Tensor3D;
      return tf.add(afterAttention, this.mlp.forward(this.layerNorm2.forward(afterAttention))) as tf.Tensor3D;
    });
  }
}

export interface CLIPTextModelInput {
  /** int32 [batch, tokens]; always needed, since the pooled output is read at the end-token position */
  inputIds: tf.Tensor2D | number[][];
  /** [batch, tokens, hidden] token embeddings used instead of looking inputIds up (see embedTokens) */
  inputsEmbeds?: tf.Tensor3D;
  /** also return every hidden state: [0] = embeddings, [i] = after encoder layer i-1 (no final LayerNorm) */
  outputHiddenStates?: boolean;
}

export interface CLIPTextModelOutput {
  /** final LayerNorm of the last layer: SD's encoder_hidden_states [batch, tokens, hidden] */
  lastHiddenState: tf.Tensor3D;
  /** lastHiddenState at the end-token position [batch, hidden] */
  poolerOutput: tf.Tensor2D;
  /** num_hidden_layers + 1 tensors when asked for */
  hiddenStates?: tf.Tensor3D[];
}

/** Replacement rows for some token ids: `rows[i]` is used wherever `tokenIds[i]` appears. */
export interface TokenRowOverrides {
  tokenIds: number[];
  /** [tokenIds.length, hidden] */
  rows: tf.Tensor2D;
}

export class CLIPTextModel {
  readonly tokenEmbedding: Embedding;
  readonly positionEmbedding: Embedding;
  readonly layers: CLIPEncoderLayer[];
  readonly finalLayerNorm: LayerNorm;

  private constructor(
    readonly config: CLIPTextConfig,
    readonly store: ParameterStore,
  ) {
    const embeddingInit = { kind: 'normal' as const, std: 0.02 * config.initializer_factor };
    this.tokenEmbedding = new Embedding(store, 'text_model.embeddings.token_embedding', config.vocab_size, config.hidden_size, embeddingInit);
    this.positionEmbedding = new Embedding(store, 'text_model.embeddings.position_embedding', config.max_position_embeddings, config.hidden_size, embeddingInit);
    this.layers = Array.from({ length: config.num_hidden_layers }, (_, i) => new CLIPEncoderLayer(store, `text_model.encoder.layers.${i}`, config));
    this.finalLayerNorm = new LayerNorm(store, 'text_model.final_layer_norm', config.hidden_size, config.layer_norm_eps);
  }

  /** Declares the parameters of `config`; fill them with `store.initialize(seed)` or `store.load(...)`. */
  static fromConfig(config: CLIPTextConfig | Record<string, unknown>): CLIPTextModel {
    return new CLIPTextModel(parseCLIPTextConfig(config as Record<string, unknown>), new ParameterStore());
  }

  /** Loads a diffusers `text_encoder/` folder (config.json + model.safetensors). */
  static fromPretrained(componentDir: string): CLIPTextModel {
    const model = CLIPTextModel.fromConfig(readComponentConfig(componentDir));
    const source = WeightSource.forComponent(componentDir);
    try {
      const { unexpected } = model.store.load(source);
      const unknown = unexpected.filter((key) => key !== POSITION_IDS_BUFFER);
      if (unknown.length > 0) {
        throw new WeightLoadError(
          `${componentDir}: the weights have ${unknown.length} tensor(s) this CLIPTextModel config does not use (is config.json for these weights?): ${unknown.slice(0, 8).join(', ')}`,
        );
      }
    } catch (error) {
      model.store.dispose();
      throw error;
    } finally {
      source.close();
    }
    return model;
  }

  /** Rows of the token embedding table, including tokens added after loading. */
  get vocabSize(): number {
    return this.store.specs.get(this.tokenEmbedding.weight)!.torchShape[0]!;
  }

  forward(input: CLIPTextModelInput): CLIPTextModelOutput {
    return tf.tidy(() => {
      const inputIds = this.toIdTensor(input.inputIds);
      const [batch, tokens] = inputIds.shape;
      if (tokens > this.config.max_position_embeddings) {
        throw new Error(`CLIPTextModel: ${tokens} tokens exceed max_position_embeddings ${this.config.max_position_embeddings}`);
      }
      const hidden = this.config.hidden_size;
      let tokenEmbeds: tf.Tensor3D;
      if (input.inputsEmbeds) {
        const shape = input.inputsEmbeds.shape;
        if (shape[0] !== batch || shape[1] !== tokens || shape[2] !== hidden) {
          throw new Error(`CLIPTextModel: inputsEmbeds has shape [${shape.join(', ')}], expected [${batch}, ${tokens}, ${hidden}]`);
        }
        tokenEmbeds = input.inputsEmbeds;
      } else {
        tokenEmbeds = this.embedTokens(inputIds);
      }
      const positions = tf.slice(this.store.get(this.positionEmbedding.weight), [0, 0], [tokens, hidden]);
      let hiddenState = tf.add(tokenEmbeds, positions) as tf.Tensor3D;
      const hiddenStates = [hiddenState];
      const causalMask = tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([tokens, tokens]), -1, 0)), MASKED_LOGIT);
      for (const layer of this.layers) {
        hiddenState = layer.forward(hiddenState, causalMask);
        hiddenStates.push(hiddenState);
      }
      const lastHiddenState = this.finalLayerNorm.forward(hiddenState);
      const poolerOutput = this.pool(lastHiddenState, inputIds);
      return input.outputHiddenStates ? { lastHiddenState, poolerOutput, hiddenStates } : { lastHiddenState, poolerOutput };
    });
  }

  /**
   * Token embeddings of `inputIds` [batch, tokens, hidden]. With `overrides`, the given rows replace the table's
   * rows for those token ids through a one-hot product, so a learner differentiates only those few rows rather
   * than the whole [vocab, hidden] table, and writes them back with setTokenEmbeddings.
   */
  embedTokens(inputIds: tf.Tensor2D | number[][], overrides?: TokenRowOverrides): tf.Tensor3D {
    return tf.tidy(() => {
      const ids = this.toIdTensor(inputIds);
      const idValues = ids.dataSync() as Int32Array;
      this.checkTokenIds(idValues);
      const table = this.store.get(this.tokenEmbedding.weight);
      const base = tf.gather(table, ids) as tf.Tensor3D;
      if (!overrides) return base;
      const { tokenIds, rows } = overrides;
      const hidden = this.config.hidden_size;
      if (rows.shape[0] !== tokenIds.length || rows.shape[1] !== hidden) {
        throw new Error(`embedTokens: override rows have shape [${rows.shape.join(', ')}], expected [${tokenIds.length}, ${hidden}]`);
      }
      if (new Set(tokenIds).size !== tokenIds.length) throw new Error('embedTokens: override token ids must be distinct');
      const slotOfToken = new Map(tokenIds.map((id, slot) => [id, slot]));
      const slots = Int32Array.from(idValues, (id) => slotOfToken.get(id) ?? -1);
      const [batch, tokens] = ids.shape;
      // A one-hot row per position (all zero without an override, so it keeps the table's row), built here because
      // tf.oneHot refuses a depth of 1, i.e. a single override token.
      const oneHot = new Float32Array(slots.length * tokenIds.length);
      slots.forEach((slot, position) => {
        if (slot >= 0) oneHot[position * tokenIds.length + slot] = 1;
      });
      const selector = tf.tensor2d(oneHot, [slots.length, tokenIds.length]);
      const replaced = tf.sum(selector, -1, true);
      const fromOverrides = tf.matMul(selector, rows);
      const flatBase = tf.reshape(base, [batch * tokens, hidden]);
      const mixed = tf.add(tf.mul(flatBase, tf.sub(1, replaced)), fromOverrides);
      return tf.reshape(mixed, [batch, tokens, hidden]) as tf.Tensor3D;
    });
  }

  /** Rows of the token embedding table for `tokenIds` [n, hidden]. */
  getTokenEmbeddings(tokenIds: number[]): tf.Tensor2D {
    this.checkTokenIds(tokenIds);
    return tf.tidy(() => tf.gather(this.store.get(this.tokenEmbedding.weight), tf.tensor1d(tokenIds, 'int32')) as tf.Tensor2D);
  }

  /** Overwrites the table rows of `tokenIds` with `rows` [n, hidden]. */
  setTokenEmbeddings(tokenIds: number[], rows: tf.Tensor2D): void {
    this.checkTokenIds(tokenIds);
    if (rows.shape[0] !== tokenIds.length || rows.shape[1] !== this.config.hidden_size) {
      throw new Error(`setTokenEmbeddings: rows have shape [${rows.shape.join(', ')}], expected [${tokenIds.length}, ${this.config.hidden_size}]`);
    }
    const table = this.store.get(this.tokenEmbedding.weight);
    const updated = tf.tensorScatterUpdate(table, tf.tensor2d(tokenIds, [tokenIds.length, 1], 'int32'), rows);
    table.assign(updated);
    updated.dispose();
  }

  /**
   * Makes token ids below `numTokens` valid: grows the table when it is smaller and leaves it as it is otherwise. A
   * model may ship spare rows past its tokenizer's vocabulary (the embedded model keeps some for placeholder tokens).
   */
  ensureTokenRows(numTokens: number): void {
    if (numTokens > this.vocabSize) this.resizeTokenEmbeddings(numTokens);
  }

  /**
   * Grows (or shrinks) the token embedding table to `numTokens` rows, e.g. to tokenizer.length after addTokens.
   * New rows are drawn like transformers initialises embeddings (normal, std 0.02·initializer_factor).
   */
  resizeTokenEmbeddings(numTokens: number, seed = 0): void {
    const added = Math.max(0, numTokens - this.vocabSize);
    const addedRows = added > 0 ? (tf.tidy(() => tf.randomNormal([added * this.config.hidden_size], 0, 0.02 * this.config.initializer_factor, 'float32', seed).dataSync()) as Float32Array) : undefined;
    this.store.resizeRows(this.tokenEmbedding.weight, numTokens, addedRows);
    this.config.vocab_size = numTokens;
  }

  dispose(): void {
    this.store.dispose();
  }

  private pool(lastHiddenState: tf.Tensor3D, inputIds: tf.Tensor2D): tf.Tensor2D {
    const eosPositions =
      this.config.eos_token_id === LEGACY_EOS_TOKEN_ID
        ? tf.argMax(inputIds, -1)
        : tf.argMax(tf.cast(tf.equal(inputIds, this.config.eos_token_id), 'int32'), -1);
    // A one-hot weighted sum rather than a gather: its gradient needs only elementwise kernels.
    const selector = tf.expandDims(tf.oneHot(eosPositions, inputIds.shape[1]), -1);
    return tf.sum(tf.mul(lastHiddenState, tf.cast(selector, 'float32')), 1) as tf.Tensor2D;
  }

  private toIdTensor(inputIds: tf.Tensor2D | number[][]): tf.Tensor2D {
    const ids = inputIds instanceof tf.Tensor ? inputIds : tf.tensor2d(inputIds, undefined, 'int32');
    if (ids.rank !== 2) throw new Error(`CLIPTextModel: inputIds must be [batch, tokens], got rank ${ids.rank}`);
    if (ids.dtype !== 'int32') throw new Error(`CLIPTextModel: inputIds must be int32, got ${ids.dtype}`);
    return ids;
  }

  private checkTokenIds(tokenIds: ArrayLike<number> & Iterable<number>): void {
    const bad = Array.from(tokenIds).find((id) => !Number.isInteger(id) || id < 0 || id >= this.vocabSize);
    if (bad !== undefined) throw new Error(`token id ${bad} is outside the embedding table (${this.vocabSize} rows)`);
  }
}
