// Box control on the world: held-out scenes of two or three objects are drawn again from their captions, each object
// asked into the box it had in the rendered scene, and the world's evaluator checks every object (right shape and
// colour), the IoU of its box with the requested one, and its leakage (its colour outside its box or on another object).
// Compared: no control, MIFO on the layers chosen by role with every layer bounded (the spec's), and MIFO on the model
// folder's own layers (its attention_layers.json, bounded layers included) when it names them.
//
//   npx tsx scripts/eval-synthesis.ts --model DIR [--scenes 8] [--steps 50] [--out DIR]
//     --control JSON   control overrides for the MIFO variants, e.g. '{"stepSizeStart":4,"stepSizeEnd":1}'
//                      (the names of trainer/synth/options.ts; the layers stay each variant's)
//     --variants LIST  a subset of off,role,model (default: all three; model only where the folder names layers)
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isPositiveInteger, parseChoiceList, parseNumber } from '../trainer/cli/args.ts';
import { defaultModelDir } from '../trainer/cli/default_model.ts';
import { tensorToRgbImages, writePng } from '../trainer/io/image.ts';
import { StableDiffusionPipeline } from '../trainer/pipelines/stable_diffusion.ts';
import { initRuntime, tf } from '../trainer/runtime/backend.ts';
import { compose } from '../trainer/synth/compose.ts';
import { selectLayers } from '../trainer/synth/layers.ts';
import { resolveControl, type ControlOverrides, type PresetName } from '../trainer/synth/options.ts';
import { evaluateScene } from '../trainer/world/evaluator/evaluate.ts';
import { renderScene } from '../trainer/world/render.ts';
import { sampleScene } from '../trainer/world/sampler.ts';
import { captionOf, type Box, type Scene } from '../trainer/world/scene.ts';

const { values } = parseArgs({ options: { model: { type: 'string' }, scenes: { type: 'string' }, steps: { type: 'string' }, out: { type: 'string' }, control: { type: 'string' }, variants: { type: 'string' } } });
const VARIANT_KEYS = ['off', 'role', 'model'] as const;
const chosenVariants = parseChoiceList(values.variants, 'variants', VARIANT_KEYS) ?? VARIANT_KEYS;
const sceneCount = parseNumber(values.scenes, 'scenes', 8, isPositiveInteger);
const steps = parseNumber(values.steps, 'steps', 50, isPositiveInteger);

function parseControl(text: string | undefined): ControlOverrides {
  if (text === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`--control takes a JSON object, got '${text}'`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`--control takes a JSON object, got '${text}'`);
  resolveControl('mifo', [], parsed as ControlOverrides);
  return parsed as ControlOverrides;
}
const controlOverrides = parseControl(values.control);

await initRuntime();
const pipeline = StableDiffusionPipeline.fromPretrained(values.model ?? defaultModelDir());
const size = pipeline.defaultSize;
const byRole = selectLayers(pipeline.unet.attentionLayers);
const orders = (layers: { order: number }[]) => layers.map((layer) => layer.order);

const own = pipeline.attentionLayers.synthesis;
if (chosenVariants.includes('model') && !own && values.variants) throw new Error(`${pipeline.modelDir} names no box-control layers (no synthesis part in its attention_layers.json)`);
interface Variant {
  key: (typeof VARIANT_KEYS)[number];
  label: string;
  preset: PresetName;
  control?: ControlOverrides;
}
const allVariants: Variant[] = [
  { key: 'off', label: 'no control', preset: 'off' },
  // The spec's choice in full: every layer bounded, whatever the folder names.
  { key: 'role', label: 'MIFO, layers by role', preset: 'mifo', control: { ...controlOverrides, lossLayers: orders(byRole.loss), mapLayers: orders(byRole.maps), boundedLayers: orders(pipeline.unet.attentionLayers) } },
];
if (own) allVariants.push({ key: 'model', label: "MIFO, the model's layers", preset: 'mifo', control: { ...controlOverrides, lossLayers: own.lossLayers, mapLayers: own.mapLayers } });
const variants = allVariants.filter((variant) => chosenVariants.includes(variant.key));

function heldOutScenes(): Scene[] {
  const scenes: Scene[] = [];
  for (let seed = 0; scenes.length < sceneCount; seed++) {
    const scene = sampleScene(seed, { split: 'heldout', minObjects: 2, maxObjects: 3 });
    const visible = renderScene(scene, size).boxes.every((box) => box !== null);
    if (visible && scene.objects.every((object) => object.colour !== null)) scenes.push(scene);
  }
  return scenes;
}

const scenes = heldOutScenes();
if (values.out) mkdirSync(values.out, { recursive: true });
console.log(`${sceneCount} held-out scenes of 2-3 objects, each redrawn into its own boxes (DDIM ${steps} steps, seed = scene index${values.control ? `, MIFO control ${values.control}` : ''})`);
console.log('| variant | images with every object right | objects of the right shape and colour | mean IoU (found objects) | mean leakage | s per image |');
console.log('|---|---|---|---|---|---|');
for (const variant of variants) {
  let imagesRight = 0;
  let objects = 0;
  let objectsRight = 0;
  let iouSum = 0;
  let found = 0;
  let leakageSum = 0;
  const started = Date.now();
  for (const [index, scene] of scenes.entries()) {
    const boxes = renderScene(scene, size).boxes as Box[];
    const result = await compose(pipeline, { prompt: captionOf(scene), boxes, seed: index, steps, preset: variant.preset, control: variant.control });
    const image = tensorToRgbImages(result.images)[0]!;
    tf.dispose([result.images, result.latents]);
    if (values.out) await writePng(join(values.out, `${variant.key}-scene${index}.png`), image);
    const judged = evaluateScene(image, scene.objects.map((object, i) => ({ shape: object.shape, colour: object.colour, texture: object.texture, box: boxes[i] })));
    const right = judged.map((object) => object.found && object.shape.correct && object.colour.correct);
    objects += judged.length;
    objectsRight += right.filter(Boolean).length;
    if (right.every(Boolean)) imagesRight++;
    for (const object of judged) {
      if (object.iou !== null) {
        iouSum += object.iou;
        found++;
      }
      leakageSum += object.leakage.score;
    }
  }
  const seconds = (Date.now() - started) / 1000 / scenes.length;
  console.log(`| ${variant.label} | ${imagesRight} of ${scenes.length} | ${objectsRight} of ${objects} | ${(iouSum / Math.max(1, found)).toFixed(3)} (${found}) | ${(leakageSum / objects).toFixed(3)} | ${seconds.toFixed(1)} |`);
}
pipeline.dispose();
