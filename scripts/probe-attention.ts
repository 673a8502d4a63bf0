// Where does a model's cross-attention tie a word to its object? On rendered held-out world scenes of two objects,
// noised to a few timesteps, each shape word's head-averaged attention is split between its own object's mask, the
// other object's mask and the rest, per cross-attention layer: the measurement behind a model's attention_layers.json
// (docs/default-model.md). A layer that grounds words puts clearly more than the mask's area inside it.
//
//   npx tsx scripts/probe-attention.ts --model DIR [--scenes 12] [--timesteps 200,400,600]
import { parseArgs } from 'node:util';
import { isPositiveInteger, parseNumber } from '../trainer/cli/args.ts';
import { defaultModelDir } from '../trainer/cli/default_model.ts';
import { AttentionRecorder } from '../trainer/learn/attention.ts';
import { resizeArea } from '../trainer/learn/masks.ts';
import { StableDiffusionPipeline } from '../trainer/pipelines/stable_diffusion.ts';
import { initRuntime, tf } from '../trainer/runtime/backend.ts';
import { DDPMScheduler } from '../trainer/schedulers/scheduling_ddpm.ts';
import { captionObjectWordPositions } from '../trainer/train/grounding.ts';
import { rgbImagesToTensor } from '../trainer/train/vae_stage.ts';
import { Generator } from '../trainer/util/random.ts';
import { renderScene } from '../trainer/world/render.ts';
import { sampleScene } from '../trainer/world/sampler.ts';
import { captionOf, type Scene } from '../trainer/world/scene.ts';

const { values } = parseArgs({ options: { model: { type: 'string' }, scenes: { type: 'string' }, timesteps: { type: 'string' } } });
const sceneCount = parseNumber(values.scenes, 'scenes', 12, isPositiveInteger);
const timesteps = (values.timesteps ?? '200,400,600').split(',').map((t) => parseNumber(t, 'timesteps', 0, (n) => Number.isInteger(n) && n >= 0 && n < 1000));

await initRuntime();
const pipeline = StableDiffusionPipeline.fromPretrained(values.model ?? defaultModelDir());
const size = pipeline.defaultSize;
const scheduler = new DDPMScheduler(pipeline.schedulerConfig);
const crossLayers = pipeline.unet.attentionLayers.filter((layer) => layer.kind === 'cross');

function twoObjectScenes(): Scene[] {
  const scenes: Scene[] = [];
  for (let seed = 0; scenes.length < sceneCount; seed++) {
    const scene = sampleScene(seed, { split: 'heldout', minObjects: 2, maxObjects: 2 });
    if (scene.objects.every((object) => object.colour !== null)) scenes.push(scene);
  }
  return scenes;
}

/** The caption position of each object's shape word, the last of its words (the k-th of two equal phrases: the k-th). */
function shapeWordPositions(scene: Scene, ids: number[]): number[] {
  return captionObjectWordPositions(pipeline.tokenizer, scene.objects, ids).map((positions, index) => {
    if (!positions) throw new Error(`'${scene.objects[index]!.shape}' is not in the tokenized caption "${captionOf(scene)}"`);
    return positions.at(-1)!;
  });
}

/** Share of `map` (side × side) inside a full-size binary mask, the mask area-resized to the map. */
function shareInside(map: Float32Array, side: number, mask: Uint8Array): number {
  const cells = resizeArea({ width: size, height: size, data: Float32Array.from(mask) }, side, side).data;
  let inside = 0;
  let total = 0;
  map.forEach((value, i) => {
    inside += value * cells[i]!;
    total += value;
  });
  return total > 0 ? inside / total : 0;
}

const sums = new Map<string, { own: number; other: number; area: number; count: number }>();
for (const [index, scene] of twoObjectScenes().entries()) {
  const render = renderScene(scene, size);
  const caption = captionOf(scene);
  const positions = shapeWordPositions(scene, pipeline.tokenize([caption])[0]!);
  const latents = tf.tidy(() => pipeline.vae.scaleLatents(pipeline.vae.encode(rgbImagesToTensor([{ width: size, height: size, data: render.image }])).mean));
  const context = pipeline.encodePrompt([caption]);
  for (const t of timesteps) {
    const noise = tf.tensor(new Generator(1000 * index + t).randn(latents.size), latents.shape);
    const noisy = scheduler.addNoise(latents, noise, [t]) as tf.Tensor4D;
    const recorder = new AttentionRecorder(crossLayers, 0, positions);
    tf.tidy(() => {
      pipeline.unet.forward(noisy, [t], context, { controller: recorder });
    });
    for (const record of recorder.records) {
      const key = `${record.layer.id.split('.attentions')[0]} ${record.height}x${record.width}`;
      const sum = sums.get(key) ?? { own: 0, other: 0, area: 0, count: 0 };
      record.maps.forEach((map, object) => {
        const data = map.dataSync() as Float32Array;
        sum.own += shareInside(data, record.width, render.masks[object]!);
        sum.other += shareInside(data, record.width, render.masks[1 - object]!);
        sum.area += render.masks[object]!.reduce((a, b) => a + b, 0) / (size * size);
        sum.count++;
      });
      sums.set(key, sum);
    }
    recorder.dispose();
    tf.dispose([noise, noisy]);
  }
  tf.dispose([latents, context]);
}
pipeline.dispose();

console.log(`shape words' cross-attention on ${sceneCount} held-out two-object scenes at t = ${timesteps.join(', ')} (mean over words, layers of a block, timesteps):`);
console.log('| block, map | inside own object | inside the other object | own object\'s area |');
console.log('|---|---|---|---|');
const percent = (value: number, count: number) => `${((100 * value) / count).toFixed(1)}%`;
for (const [key, sum] of sums) console.log(`| ${key} | ${percent(sum.own, sum.count)} | ${percent(sum.other, sum.count)} | ${percent(sum.area, sum.count)} |`);
