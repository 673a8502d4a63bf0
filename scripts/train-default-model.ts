// Trains the embedded default model (models/default) from nothing: the VAE, a decoder fine-tune, then the text
// encoder and UNet, on the procedural world, on the CPU engine. Rerunning the same command continues from the last
// checkpoint; Ctrl-C (or SIGTERM) stops after the current step with a checkpoint.
//
//   npx tsx scripts/train-default-model.ts                       the whole recipe (configs/default.json)
//     --recipe FILE      recipe JSON (default trainer/train/configs/default.json)
//     --work DIR         work folder: checkpoints, loss.jsonl, previews (default data/default-model)
//     --out DIR          the finished diffusers folder (default models/default)
//     --max-steps N      stop (with a checkpoint) after N optimizer steps in this run
//     --max-minutes M    stop (with a checkpoint) after M minutes in this run
//     --export DIR       only export the latest stage-2 checkpoint (EMA weights) to DIR, then exit
//     --rewind-to-stable only put stage 2 back to the checkpoint where its learning rate began to decay (the later
//                        one is kept as diffusion/checkpoint-decayed-sN), then exit: raise diffusion.steps in the
//                        recipe and rerun to train longer at the full rate before the decay
//     --continue-from DIR  start a new work folder whose stage 2 goes on from DIR, a model this script exported (its
//                        training.json names the step), then train: for when the run's own work folder is gone
//     --prime-steps N    with --continue-from: batches that estimate the AdamW moments anew (default 100)
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CliError, isPositiveInteger, parseNumber } from '../trainer/cli/args.ts';
import { initRuntime } from '../trainer/runtime/backend.ts';
import { readRecipe } from '../trainer/train/recipe.ts';
import { continueFromExport, exportCheckpoint, rewindToStableCheckpoint, trainDefaultModel } from '../trainer/train/train.ts';

const root = resolve(import.meta.dirname, '..');
const { values } = parseArgs({
  options: {
    recipe: { type: 'string', default: resolve(root, 'trainer/train/configs/default.json') },
    work: { type: 'string', default: resolve(root, 'data/default-model') },
    out: { type: 'string', default: resolve(root, 'models/default') },
    'max-steps': { type: 'string' },
    'max-minutes': { type: 'string' },
    export: { type: 'string' },
    'rewind-to-stable': { type: 'boolean' },
    'continue-from': { type: 'string' },
    'prime-steps': { type: 'string' },
  },
});

const recipe = readRecipe(resolve(values.recipe));
const maxSteps = parseNumber(values['max-steps'], 'max-steps', Infinity, isPositiveInteger);
const maxMinutes = parseNumber(values['max-minutes'], 'max-minutes', Infinity, (m) => m > 0);
const primeSteps = parseNumber(values['prime-steps'], 'prime-steps', 100, isPositiveInteger);
if (values['prime-steps'] !== undefined && !values['continue-from']) throw new CliError('--prime-steps belongs to --continue-from');
const runtime = await initRuntime();
const stamp = () => new Date().toISOString().slice(0, 19).replace('T', ' ');
const say = (message: string) => console.log(`${stamp()} ${message}`);
say(`recipe ${recipe.name} (${resolve(values.recipe)}), engine: ${runtime.description}`);

if (values['rewind-to-stable']) {
  const { from, to, keptAs } = rewindToStableCheckpoint(resolve(values.work));
  say(`stage 2 goes back from step ${from} to step ${to}, where its decay began (step ${from} kept in ${keptAs})`);
} else if (values.export) {
  const step = await exportCheckpoint(recipe, resolve(values.work), resolve(values.export));
  say(`exported the stage-2 checkpoint at step ${step} to ${resolve(values.export)}`);
} else {
  if (values['continue-from']) {
    const step = await continueFromExport(recipe, values['continue-from'], resolve(values.work), { primeSteps, onMessage: say });
    say(`${resolve(values.work)}: stage 2 goes on from ${values['continue-from']} at step ${step}`);
  }
  let stopRequested = false;
  const deadline = Date.now() + maxMinutes * 60_000;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopRequested) process.exit(130);
      stopRequested = true;
      say(`${signal}: stopping after this step with a checkpoint (send it again to quit at once)`);
    });
  }
  const result = await trainDefaultModel(recipe, {
    workDir: resolve(values.work),
    outDir: resolve(values.out),
    maxSteps,
    shouldStop: () => stopRequested || Date.now() > deadline,
    onMessage: say,
    onStep: ({ stage, step, total, loss, lr, seconds }) => {
      const every = recipe[stage as 'vae' | 'decoder' | 'diffusion'].logEvery;
      if (step % every === 0 || step === total) {
        say(`${stage} ${step}/${total} loss ${loss.toFixed(5)} lr ${lr.toExponential(2)} ${(seconds / 60).toFixed(1)} min (${((seconds / step) * 1000).toFixed(0)} ms/step)`);
      }
    },
  });
  say(
    result.completed
      ? `done: ${resolve(values.out)}`
      : `stopped at vae ${result.vaeStep}/${recipe.vae.steps}, decoder ${result.decoderStep}/${recipe.decoder.steps}, diffusion ${result.diffusionStep}/${recipe.diffusion.steps}; rerun to continue`,
  );
}
