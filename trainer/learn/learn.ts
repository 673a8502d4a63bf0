// learn(): the learning stage as a library call for the CLI and the server's jobs. It yields progress events, writes
// resumable checkpoints, stops within one step when its AbortSignal fires (leaving a checkpoint), and ends by
// writing the concept folder.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { tf, initRuntime } from '../runtime/backend.ts';
import { tensorToRgbImages, type RgbImage } from '../io/image.ts';
import { StableDiffusionPipeline } from '../pipelines/stable_diffusion.ts';
import { Generator } from '../util/random.ts';
import { hashModelWeights, modelId, type ConceptManifest } from '../concepts/format.ts';
import { writeConcept } from '../concepts/write.ts';
import type { TensorToWrite } from '../io/safetensors.ts';
import { hasCheckpoint, readCheckpoint, removeCheckpoint, writeCheckpoint, type CheckpointState, type LoadedCheckpoint, type StepRecord } from './checkpoints.ts';
import { loadTrainingImage, loadTrainingMask, type ImageInput } from './data.ts';
import { LearnAbortedError, type AttentionMass, type LearnEvent, type LearnMetrics, type LossTerms, type Phase } from './events.ts';
import { Learner, type PhaseState } from './learner.ts';
import { resolveOptions, type DeepPartial, type LearnOptions, type PresetName } from './options.ts';
import { prepareClassImages } from './prior.ts';
import { instancePrompt } from './sampling.ts';
import { addPlaceholders, knownWord, placeholderTokens } from './tokens.ts';

export interface LearnRequest {
  /** base model: a diffusers folder */
  model: string;
  image: ImageInput;
  /** one mask per instance (soft or binary, any size; channel 0 is used) */
  masks: ImageInput[];
  /** instance names for the manifest */
  names?: (string | null)[];
  /** a word per instance whose first sub-token initialises its placeholder (null: the preset's initialisation) */
  initializerWords?: (string | null)[];
  /** an instance without an initializer word starts from its name when the tokenizer knows the name as one word */
  initializeFromNames?: boolean;
  /** the concept folder to write */
  outDir: string;
  preset?: PresetName;
  options?: DeepPartial<LearnOptions>;
  /** where checkpoints go (default: <outDir>/checkpoints); removed after success unless keepCheckpoints */
  checkpointDir?: string;
  /** continue from the checkpoint in checkpointDir when there is one */
  resume?: boolean;
  keepCheckpoints?: boolean;
  signal?: AbortSignal;
}

export interface LearnResult {
  conceptDir: string;
  manifest: ConceptManifest;
  metrics: LearnMetrics;
}

/** Options that only change what is observed, not what is learned; a resume may change them. */
const OBSERVATION_OPTIONS = ['checkpointEvery', 'attentionMapEvery', 'previewEvery', 'previewSteps', 'previewGuidance', 'metricTimesteps'] as const;

/** Probe noise is seeded apart from the training stream so observing never changes the training. */
const PROBE_SEED_OFFSET = 0x9b0be;

function fingerprint(parts: { weightsHash: string; options: LearnOptions; size: number; initializerWords: (string | null)[]; image: tf.Tensor; masks: Float32Array[] }): string {
  const hash = createHash('sha256');
  const learned = Object.fromEntries(Object.entries(parts.options).filter(([key]) => !(OBSERVATION_OPTIONS as readonly string[]).includes(key)));
  hash.update(JSON.stringify({ weightsHash: parts.weightsHash, options: learned, size: parts.size, initializerWords: parts.initializerWords }));
  hash.update(new Uint8Array((parts.image.dataSync() as Float32Array).buffer));
  for (const mask of parts.masks) hash.update(new Uint8Array(mask.buffer, mask.byteOffset, mask.byteLength));
  return hash.digest('hex');
}

function meanOfLastTenth(records: StepRecord[]): (LossTerms & { loss: number }) | undefined {
  if (records.length === 0) return undefined;
  const tail = records.slice(-Math.max(1, Math.ceil(records.length / 10)));
  const mean = (pick: (r: StepRecord) => number) => tail.reduce((s, r) => s + pick(r), 0) / tail.length;
  return { loss: mean((r) => r.loss), reconstruction: mean((r) => r.reconstruction), prior: mean((r) => r.prior), attention: mean((r) => r.attention) };
}

function imageToRgb(image: tf.Tensor4D): RgbImage {
  return tensorToRgbImages(tf.tidy(() => tf.div(tf.add(image, 1), 2) as tf.Tensor4D))[0]!;
}

function tensorEntry(variable: tf.Tensor): TensorToWrite {
  return { dtype: 'F32', shape: variable.shape, data: Float32Array.from(variable.dataSync() as Float32Array) };
}

/**
 * A run writes its concept into a new or empty folder (its own checkpoint folder aside), so it never overwrites a
 * concept, and it starts over only where no checkpoint would be overwritten.
 */
function checkOutputFolders(outDir: string, checkpointDir: string, resume: boolean): void {
  if (existsSync(outDir)) {
    if (!statSync(outDir).isDirectory()) throw new Error(`${outDir} is a file; the concept needs a new or empty folder`);
    const inside = relative(outDir, checkpointDir);
    const ownCheckpoints = inside !== '' && !inside.startsWith('..') && !inside.includes(sep) ? inside : null;
    const others = readdirSync(outDir).filter((name) => name !== ownCheckpoints);
    if (others.length > 0) {
      throw new Error(`${outDir} already holds ${others.slice(0, 3).join(', ')}${others.length > 3 ? ', …' : ''}; write the concept to a new or empty folder`);
    }
  }
  if (!resume && hasCheckpoint(checkpointDir)) {
    throw new Error(`${checkpointDir} holds a checkpoint of an earlier run: resume it (--resume), or remove it to start over`);
  }
}

/** The learning stage; iterate it for events, its return value is the written concept. */
export async function* learn(request: LearnRequest): AsyncGenerator<LearnEvent, LearnResult> {
  const started = Date.now();
  const preset = request.preset ?? 'paper';
  // checked before a model loads; resolved again below on the model's attention layers when it names its own
  resolveOptions(preset, request.options);
  const count = request.masks.length;
  if (count === 0) throw new Error('learning needs at least one instance mask');
  if (request.names && request.names.length > count) throw new Error(`${request.names.length} names for ${count} masks`);
  if (request.initializerWords && request.initializerWords.length > count) throw new Error(`${request.initializerWords.length} initializer words for ${count} masks`);
  const outDir = resolve(request.outDir);
  const checkpointDir = resolve(request.checkpointDir ?? join(outDir, 'checkpoints'));
  checkOutputFolders(outDir, checkpointDir, request.resume ?? false);
  const runtime = await initRuntime();

  const pipeline = StableDiffusionPipeline.fromPretrained(resolve(request.model));
  const options = resolveOptions(preset, request.options, pipeline.attentionLayers.learning ?? undefined);
  let learner: Learner | null = null;
  let phaseState: PhaseState | null = null;
  let image: tf.Tensor4D | null = null;
  const classImages: tf.Tensor4D[] = [];
  try {
    const initializerWords = Array.from({ length: count }, (_, i) => {
      const name = request.initializeFromNames ? request.names?.[i] : null;
      return request.initializerWords?.[i] ?? (name ? knownWord(pipeline.tokenizer, name) : null);
    });
    const size = options.resolution ?? pipeline.defaultSize;
    const weightsHash = await hashModelWeights(pipeline.modelDir);
    image = await loadTrainingImage(request.image, size);
    const masks = await Promise.all(request.masks.map((m) => loadTrainingMask(m, size)));
    const runFingerprint = fingerprint({ weightsHash, options, size, initializerWords, image, masks: masks.map((m) => m.data) });

    const usesPrior = (options.phase1.enabled && options.phase1.prior) || (options.phase2.enabled && options.phase2.prior);
    if (usesPrior) {
      const classes = prepareClassImages(pipeline, options.prior, size, weightsHash);
      let next = await classes.next();
      while (!next.done) {
        yield { type: 'prepare', task: 'class-images', ...next.value };
        next = await classes.next();
      }
      for (const path of next.value) classImages.push(await loadTrainingImage(path, size));
    }

    const generator = new Generator(options.seed);
    const tokens = placeholderTokens(count);
    const placeholders = addPlaceholders(pipeline.tokenizer, pipeline.textEncoder, tokens, { init: options.tokenInit, initializerWords, generator });
    learner = new Learner({ pipeline, options, image, masks, placeholders, generator, classImages });
    const probeLayers = learner.layersFor(1);
    const probe = () => learner!.probe(probeLayers, options.metricTimesteps, options.seed + PROBE_SEED_OFFSET);

    const checkpoint: LoadedCheckpoint | null = request.resume ? readCheckpoint(checkpointDir) : null;
    let attentionMassBefore: AttentionMass[] = [];
    const losses: CheckpointState['losses'] = { phase1: [], phase2: [] };
    let elapsedBefore = 0;
    if (checkpoint) {
      const { state } = checkpoint;
      if (state.fingerprint !== runFingerprint) {
        checkpoint.tensors.close();
        throw new Error(`the checkpoint in ${checkpointDir} was made from other inputs, model or options; remove it or start without resume`);
      }
      learner.setRows(checkpoint.tensors.readFloat32('rows').data);
      generator.setState(state.generator);
      attentionMassBefore = state.attentionMassBefore;
      losses.phase1 = state.losses.phase1;
      losses.phase2 = state.losses.phase2;
      elapsedBefore = state.elapsedMs;
    }
    const phases = ([1, 2] as const).filter((p) => (p === 1 ? options.phase1 : options.phase2).enabled);
    const phaseSteps: Record<Phase, number> = { 1: options.phase1.enabled ? options.phase1.steps : 0, 2: options.phase2.enabled ? options.phase2.steps : 0 };
    const totalSteps = phaseSteps[1] + phaseSteps[2];
    const resumedFrom = checkpoint ? { phase: checkpoint.state.phase, step: checkpoint.state.step } : null;
    yield { type: 'start', tokens, phaseSteps, totalSteps, resumedFrom, engine: runtime.description };
    if (!checkpoint) {
      const before = probe();
      attentionMassBefore = before.mass;
      yield { type: 'attention', phase: phases[0]!, step: 0, maps: before.maps, mass: before.mass };
    }

    const runStarted = Date.now();
    let stepsThisRun = 0;
    const checkpointNow = (phase: Phase, step: number, state: PhaseState | null): void => {
      const tensors: Record<string, TensorToWrite> = { rows: tensorEntry(learner!.rows) };
      let optimizerSteps = 0;
      const parameters: string[] = [];
      if (state && step > 0) {
        const optimizerState = state.optimizer.getState();
        optimizerSteps = optimizerState.step;
        optimizerState.moments.forEach(({ m, v }, i) => {
          const variable = i === 0 ? learner!.rows : state.parameters[i - 1]!.variable;
          const name = i === 0 ? 'rows' : state.parameters[i - 1]!.name;
          tensors[`adam_m.${name}`] = { dtype: 'F32', shape: variable.shape, data: m };
          tensors[`adam_v.${name}`] = { dtype: 'F32', shape: variable.shape, data: v };
        });
        for (const p of state.parameters) {
          tensors[`param.${p.name}`] = tensorEntry(p.variable);
          parameters.push(p.name);
        }
      }
      writeCheckpoint(
        checkpointDir,
        {
          fingerprint: runFingerprint,
          phase,
          step,
          generator: generator.getState(),
          optimizerSteps,
          parameters,
          attentionMassBefore,
          losses,
          elapsedMs: elapsedBefore + (Date.now() - runStarted),
        },
        tensors,
      );
    };

    for (const phase of phases) {
      if (checkpoint && checkpoint.state.phase > phase) continue;
      const steps = phaseSteps[phase];
      let start = 0;
      phaseState = learner.startPhase(phase);
      if (checkpoint && checkpoint.state.phase === phase && checkpoint.state.step > 0) {
        restorePhase(phaseState, checkpoint);
        start = checkpoint.state.step;
      }
      checkpoint?.tensors.close();
      yield { type: 'phase', phase, steps };
      for (let step = start; step < steps; step++) {
        if (request.signal?.aborted) {
          checkpointNow(phase, step, phaseState);
          yield { type: 'checkpoint', phase, step, dir: checkpointDir };
          throw new LearnAbortedError(checkpointDir, phase, step);
        }
        const outcome = learner.step(phaseState, step, steps);
        losses[`phase${phase}`].push({ loss: outcome.loss, ...outcome.terms });
        stepsThisRun++;
        const done = step + 1;
        const globalStep = (phase === 2 ? phaseSteps[1] : 0) + done;
        const perStep = (Date.now() - runStarted) / stepsThisRun;
        yield {
          type: 'step',
          phase,
          step: done,
          phaseSteps: steps,
          globalStep,
          totalSteps,
          ...outcome,
          elapsedMs: elapsedBefore + (Date.now() - runStarted),
          etaMs: perStep * (totalSteps - globalStep),
        };
        if (options.attentionMapEvery > 0 && done % options.attentionMapEvery === 0 && done < steps) {
          const observed = probe();
          yield { type: 'attention', phase, step: done, maps: observed.maps, mass: observed.mass };
        }
        if (options.previewEvery > 0 && done % options.previewEvery === 0) {
          yield { type: 'preview', phase, step: done, ...(await preview(learner, options)) };
        }
        if (options.checkpointEvery > 0 && done % options.checkpointEvery === 0 && done < steps) {
          checkpointNow(phase, done, phaseState);
          yield { type: 'checkpoint', phase, step: done, dir: checkpointDir };
        }
        await new Promise((resolveTick) => setImmediate(resolveTick));
      }
      learner.endPhase(phaseState);
      if (phase === 1 && phases.includes(2)) {
        checkpointNow(2, 0, null);
        yield { type: 'checkpoint', phase: 2, step: 0, dir: checkpointDir };
      }
      if (phase === 1) phaseState = null;
    }

    const after = probe();
    const lastPhase = phases[phases.length - 1]!;
    yield { type: 'attention', phase: lastPhase, step: phaseSteps[lastPhase], maps: after.maps, mass: after.mass };
    const metrics: LearnMetrics = {
      attentionMass: { before: attentionMassBefore, after: after.mass },
      finalLosses: Object.fromEntries(
        phases.flatMap((p) => {
          const mean = meanOfLastTenth(losses[`phase${p}`]);
          return mean ? [[`phase${p}`, mean]] : [];
        }),
      ),
      durationMs: elapsedBefore + (Date.now() - started),
    };
    learner.syncRowsToTable();
    const phase2Ran = options.phase2.enabled;
    const manifest = await writeConcept(outDir, {
      pipeline,
      baseModel: { id: modelId(pipeline.modelDir), weightsHash, hiddenSize: pipeline.textEncoder.config.hidden_size, baseVocabSize: placeholders.baseVocabSize },
      tokens,
      names: Array.from({ length: count }, (_, i) => request.names?.[i] ?? null),
      initializers: initializerWords,
      rows: learner.rowsData(),
      image: imageToRgb(image),
      masks,
      attentionMaps: after.maps.map((m) => m.map),
      weights: !phase2Ran ? { type: 'none' } : phaseState?.lora ? { type: 'lora', targets: phaseState.lora.targets, rank: phaseState.lora.rank, alpha: phaseState.lora.alpha } : { type: 'full' },
      options,
      metrics,
    });
    if (!request.keepCheckpoints) removeCheckpoint(checkpointDir);
    yield { type: 'done', conceptDir: outDir, metrics };
    return { conceptDir: outDir, manifest, metrics };
  } finally {
    learner?.dispose();
    image?.dispose();
    for (const c of classImages) c.dispose();
    pipeline.dispose();
  }
}

function restorePhase(state: PhaseState, checkpoint: LoadedCheckpoint): void {
  const names = state.parameters.map((p) => p.name);
  const saved = checkpoint.state.parameters;
  if (saved.length !== names.length || saved.some((name, i) => name !== names[i])) {
    throw new Error('the checkpoint holds other trainable parameters than this phase declares; it cannot be resumed');
  }
  const read = (key: string) => checkpoint.tensors.readFloat32(key).data;
  for (const p of state.parameters) tf.tidy(() => p.variable.assign(tf.tensor(read(`param.${p.name}`), p.variable.shape)));
  state.optimizer.setState({
    step: checkpoint.state.optimizerSteps,
    moments: ['rows', ...names].map((name) => ({ m: read(`adam_m.${name}`), v: read(`adam_v.${name}`) })),
  });
}

async function preview(learner: Learner, options: LearnOptions): Promise<{ prompt: string; image: RgbImage }> {
  learner.syncRowsToTable();
  const prompt = instancePrompt(learner.tokens, learner.tokens.map((_, i) => i));
  const result = await learner.pipeline.generate({ prompt, steps: options.previewSteps, guidance: options.previewGuidance, seed: options.seed, height: learner.size, width: learner.size });
  const image = tensorToRgbImages(result.images)[0]!;
  result.images.dispose();
  result.latents.dispose();
  return { prompt, image };
}

/** Runs learn() to the end, handing each event to `onEvent`. */
export async function runLearning(request: LearnRequest, onEvent: (event: LearnEvent) => void = () => {}): Promise<LearnResult> {
  const run = learn(request);
  let next = await run.next();
  while (!next.done) {
    onEvent(next.value);
    next = await run.next();
  }
  return next.value;
}
