import { resolve } from 'node:path';
import { groundedTokens, LearnAbortedError, type AttentionMass, type LearnEvent } from '../learn/events.ts';
import { learn } from '../learn/learn.ts';
import { ATTENTION_MODES } from '../learn/losses.ts';
import { combineOverrides, parseOptionAssignment, PRESET_NAMES, resolveOptions, type DeepPartial, type LearnOptions } from '../learn/options.ts';
import { CliError, isNonNegativeInteger, isPositiveInteger, parseChoice, parseOptionalNumber, parseOptions, requireString } from './args.ts';
import { defaultModelDir } from './default_model.ts';
import { ProgressBar } from './progress.ts';

const HELP = `usage: mifo learn --image IMG --mask M0 [--mask M1 ...] --out DIR [options]

Learns one token per instance mask (<asset0>, <asset1>, ...) from one image and writes a concept folder.

  --model DIR          diffusers base model folder (default: the embedded model)
  --image FILE         the photo
  --mask FILE          an instance mask (repeat, one per instance, in token order)
  --name TEXT          an instance name for the manifest (repeat, in mask order)
  --init WORD          initializer word per instance (repeat; "" keeps the preset's initialisation)
  --init-from-names    an instance without --init starts from its --name when the model knows it as one word
  --out DIR            the concept folder to write (new or empty)
  --preset NAME        ${PRESET_NAMES.join(' | ')} (default paper)
  --resume             continue from the checkpoint in the checkpoint folder
  --checkpoint-dir DIR where checkpoints go (default: OUT/checkpoints; its files are removed after success)
  --keep-checkpoints   keep the checkpoint folder after success
  --seed N             seed of the whole run
  --steps1 N           phase-1 steps;  --steps2 N  phase-2 steps
  --no-phase1          skip token learning (DB-m);  --no-phase2  skip fine-tuning (TI-m)
  --phase2-mode MODE   lora | full
  --attention MODE     phase-1 attention control: ${ATTENTION_MODES.join(' | ')}
  --sampling MODE      joint | separate
  --prior              prior preservation in phase 2 (class images generated once and cached)
  --class-prompt TEXT  class prompt for prior preservation
  --set KEY=VALUE      any option, e.g. --set phase1.optimizer.learningRate=1e-3 (repeatable; see docs/learning.md)`;

function formatMass(mass: AttentionMass[]): string {
  return mass.map((m, token) => `${m.token} ${m.perMask.map((v, i) => `${i === token ? 'own' : `mask${i}`} ${(100 * v).toFixed(1)}%`).join(', ')}`).join('; ');
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseOptions(
    argv,
    {
      model: { type: 'string' },
      image: { type: 'string' },
      mask: { type: 'string', multiple: true },
      name: { type: 'string', multiple: true },
      init: { type: 'string', multiple: true },
      'init-from-names': { type: 'boolean' },
      out: { type: 'string' },
      preset: { type: 'string' },
      resume: { type: 'boolean' },
      'checkpoint-dir': { type: 'string' },
      'keep-checkpoints': { type: 'boolean' },
      seed: { type: 'string' },
      steps1: { type: 'string' },
      steps2: { type: 'string' },
      'no-phase1': { type: 'boolean' },
      'no-phase2': { type: 'boolean' },
      'phase2-mode': { type: 'string' },
      attention: { type: 'string' },
      sampling: { type: 'string' },
      prior: { type: 'boolean' },
      'class-prompt': { type: 'string' },
      set: { type: 'string', multiple: true },
    },
    HELP,
  );
  const image = resolve(requireString(values.image, 'image'));
  const masks = (values.mask ?? []).map((m) => resolve(m));
  if (masks.length === 0) throw new CliError('at least one --mask is required');
  const out = resolve(requireString(values.out, 'out'));
  const preset = parseChoice(values.preset, 'preset', PRESET_NAMES) ?? 'paper';
  const attention = parseChoice(values.attention, 'attention', ATTENTION_MODES);

  let options: DeepPartial<LearnOptions> = {
    seed: parseOptionalNumber(values.seed, 'seed', isNonNegativeInteger),
    sampling: parseChoice(values.sampling, 'sampling', ['joint', 'separate']),
    phase1: {
      enabled: values['no-phase1'] ? false : undefined,
      steps: parseOptionalNumber(values.steps1, 'steps1', isPositiveInteger),
      attention: attention ? { mode: attention } : undefined,
    },
    phase2: {
      enabled: values['no-phase2'] ? false : undefined,
      steps: parseOptionalNumber(values.steps2, 'steps2', isPositiveInteger),
      mode: parseChoice(values['phase2-mode'], 'phase2-mode', ['lora', 'full']),
      prior: values.prior ? true : undefined,
    },
    prior: values['class-prompt'] ? { classPrompt: values['class-prompt'] } : undefined,
  };
  for (const assignment of values.set ?? []) {
    try {
      options = combineOverrides(options, parseOptionAssignment(assignment));
    } catch (error) {
      throw new CliError(`--set ${assignment}: ${(error as Error).message}`);
    }
  }

  try {
    resolveOptions(preset, options);
  } catch (error) {
    throw new CliError((error as Error).message);
  }

  const controller = new AbortController();
  const onSignal = () => {
    process.stderr.write('\nstopping after this step (a checkpoint will be written)...\n');
    controller.abort();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let bar: ProgressBar | null = null;
  const report = (event: LearnEvent) => {
    if (event.type === 'prepare') process.stderr.write(`\rgenerating class images ${event.done}/${event.total}`);
    else if (event.type === 'start') {
      bar = new ProgressBar('learn', event.totalSteps);
      const resumed = event.resumedFrom ? ` (resumed at phase ${event.resumedFrom.phase} step ${event.resumedFrom.step})` : '';
      process.stderr.write(`tokens ${event.tokens.join(' ')}; ${event.totalSteps} steps${resumed}; ${event.engine}\n`);
    } else if (event.type === 'step') bar?.update(event.globalStep, `p${event.phase} loss ${event.loss.toFixed(4)}`);
    else if (event.type === 'attention' && event.step === 0) console.log(`attention mass before: ${formatMass(event.mass)}`);
  };
  try {
    const run = learn({
      model: values.model ? resolve(values.model) : defaultModelDir(),
      image,
      masks,
      names: values.name,
      initializerWords: values.init?.map((w) => (w === '' ? null : w)),
      initializeFromNames: values['init-from-names'] ?? false,
      outDir: out,
      preset,
      options,
      checkpointDir: values['checkpoint-dir'] ? resolve(values['checkpoint-dir']) : undefined,
      resume: values.resume ?? false,
      keepCheckpoints: values['keep-checkpoints'] ?? false,
      signal: controller.signal,
    });
    let next = await run.next();
    while (!next.done) {
      report(next.value);
      next = await run.next();
    }
    const { metrics } = next.value;
    console.log(`attention mass after:  ${formatMass(metrics.attentionMass.after)}`);
    const grounded = groundedTokens(metrics.attentionMass.before, metrics.attentionMass.after);
    console.log(`grounded (own share grew, above every other mask's): ${metrics.attentionMass.after.map((m, token) => `${m.token} ${grounded[token] ? 'yes' : 'no'}`).join(', ')}`);
    console.log(`wrote ${out} (${(metrics.durationMs / 1000).toFixed(1)} s)`);
  } catch (error) {
    if (error instanceof LearnAbortedError) throw new CliError(`stopped at phase ${error.phase} step ${error.step}; run again with --resume to continue`);
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
