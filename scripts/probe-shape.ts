// How a world model draws one shape, and whether it tells the shape's word from another's (the checks behind the
// recipe's shapeEmphasis, docs/default-model.md):
//
//   npx tsx scripts/probe-shape.ts --model DIR --shape hexagon [--colour red] [--images 16]
//       text-to-image of "a photo of a <colour> <shape> on a plain background", seeds 0..images-1, with the model's
//       sampling defaults; each image judged by the world's evaluator: which shape it reads
//   npx tsx scripts/probe-shape.ts --model DIR --shape hexagon --versus circle [--scenes 16]
//       on rendered held-out one-object scenes of the shape, the diffusion loss with the true caption, with the
//       other shape's word in its place, and with the empty caption, at timesteps 50 to 900 (same noise for all three)
import { parseArgs } from 'node:util';
import { isPositiveInteger, parseChoice, parseNumber } from '../trainer/cli/args.ts';
import { defaultModelDir } from '../trainer/cli/default_model.ts';
import { tensorToRgbImages } from '../trainer/io/image.ts';
import { StableDiffusionPipeline } from '../trainer/pipelines/stable_diffusion.ts';
import { initRuntime, tf } from '../trainer/runtime/backend.ts';
import { DDPMScheduler } from '../trainer/schedulers/scheduling_ddpm.ts';
import { rgbImagesToTensor } from '../trainer/train/vae_stage.ts';
import { Generator } from '../trainer/util/random.ts';
import { COLOUR_NAMES, SHAPE_NAMES } from '../trainer/world/definitions.ts';
import { judgeScene } from '../trainer/world/evaluator/evaluate.ts';
import { renderScene } from '../trainer/world/render.ts';
import { sampleScene } from '../trainer/world/sampler.ts';
import { captionOf, type Scene } from '../trainer/world/scene.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    shape: { type: 'string' },
    colour: { type: 'string' },
    images: { type: 'string' },
    versus: { type: 'string' },
    scenes: { type: 'string' },
  },
});
const shape = parseChoice(values.shape, 'shape', SHAPE_NAMES);
if (!shape) throw new Error(`--shape is required: one of ${SHAPE_NAMES.join(', ')}`);
const versus = parseChoice(values.versus, 'versus', SHAPE_NAMES);
const modelDir = values.model ?? defaultModelDir();

await initRuntime();
const pipeline = StableDiffusionPipeline.fromPretrained(modelDir);

async function drawAndJudge(): Promise<void> {
  const colour = parseChoice(values.colour, 'colour', COLOUR_NAMES) ?? 'red';
  const count = parseNumber(values.images, 'images', 16, isPositiveInteger);
  const prompt = `a photo of a ${colour} ${shape} on a plain background`;
  const readAs: Record<string, number> = {};
  for (let seed = 0; seed < count; seed++) {
    const result = await pipeline.generate({ prompt, seed });
    const image = tensorToRgbImages(result.images)[0]!;
    tf.dispose([result.images, result.latents]);
    const [judged] = judgeScene(image, [{ shape: shape!, colour, texture: 'plain', box: null }]).objects;
    const label = judged!.found ? String(judged!.shape.label) : 'not found';
    readAs[label] = (readAs[label] ?? 0) + 1;
  }
  console.log(`"${prompt}", ${count} seeds: read as ${Object.entries(readAs).sort((a, b) => b[1] - a[1]).map(([label, n]) => `${label} ${n}`).join(', ')}`);
}

function oneObjectScenes(count: number): Scene[] {
  const scenes: Scene[] = [];
  for (let seed = 0; scenes.length < count; seed++) {
    const scene = sampleScene(seed, { split: 'heldout', minObjects: 1, maxObjects: 1 });
    if (scene.objects[0]!.shape === shape) scenes.push(scene);
  }
  return scenes;
}

function compareCaptions(other: string): void {
  const count = parseNumber(values.scenes, 'scenes', 16, isPositiveInteger);
  const scenes = oneObjectScenes(count);
  const size = pipeline.defaultSize;
  const renders = scenes.map((scene) => ({ width: size, height: size, data: renderScene(scene, size, { masks: false }).image }));
  const latents = tf.tidy(() => pipeline.vae.scaleLatents(pipeline.vae.encode(rgbImagesToTensor(renders)).mean));
  const captions = scenes.map((scene) => captionOf(scene));
  const contexts = {
    true: pipeline.encodePrompt(captions),
    [other]: pipeline.encodePrompt(captions.map((caption) => caption.replace(new RegExp(`\\b${shape}\\b`), other))),
    empty: pipeline.encodePrompt(captions.map(() => '')),
  };
  const scheduler = new DDPMScheduler(pipeline.schedulerConfig);
  const generator = new Generator(0);
  console.log(`diffusion loss on ${count} rendered held-out ${shape} scenes, by caption (${Object.keys(contexts).join(' / ')}):`);
  for (const t of [50, 150, 300, 450, 600, 750, 900]) {
    const timesteps = Array<number>(count).fill(t);
    const noise = tf.tensor(generator.randn(latents.size), latents.shape);
    const noisy = scheduler.addNoise(latents, noise, timesteps) as tf.Tensor4D;
    const target = scheduler.predictionType === 'v_prediction' ? scheduler.getVelocity(latents, noise, timesteps) : scheduler.predictionType === 'epsilon' ? noise : latents;
    const losses = Object.values(contexts).map((context) =>
      tf.tidy(() => tf.mean(tf.square(tf.sub(pipeline.unet.forward(noisy, timesteps, context), target))).dataSync()[0]!),
    );
    tf.dispose([noise, noisy, target]);
    console.log(`  t=${String(t).padStart(3)}: ${losses.map((loss) => loss.toFixed(4)).join(' / ')}  (${other} ${(100 * (losses[1]! / losses[0]! - 1)).toFixed(1)}% above true)`);
  }
  tf.dispose([latents, ...Object.values(contexts)]);
}

if (versus) compareCaptions(versus);
else await drawAndJudge();
pipeline.dispose();
