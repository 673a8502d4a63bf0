// How strongly would the token-grounding term pull next to the diffusion loss? On a few training batches drawn as the
// recipe's stage 2 draws them, the gradient norm (text encoder and UNet) of each term alone, at weight 1: the
// measurement behind the recipe's tokenGrounding.weight (docs/default-model.md, "Grounded words").
//
//   npx tsx scripts/probe-grounding.ts --model DIR [--batches 3] [--levels 0,1] [--max-timestep 800]
import { parseArgs } from 'node:util';
import { isNonNegativeInteger, isPositiveInteger, parseNumber } from '../trainer/cli/args.ts';
import { defaultModelDir } from '../trainer/cli/default_model.ts';
import { StableDiffusionPipeline } from '../trainer/pipelines/stable_diffusion.ts';
import { initRuntime, tf } from '../trainer/runtime/backend.ts';
import { diffusionTrainingStage } from '../trainer/train/diffusion_stage.ts';
import { readRecipe } from '../trainer/train/recipe.ts';
import { Generator } from '../trainer/util/random.ts';

const { values } = parseArgs({
  options: { model: { type: 'string' }, batches: { type: 'string' }, levels: { type: 'string' }, 'max-timestep': { type: 'string' } },
});
const batches = parseNumber(values.batches, 'batches', 3, isPositiveInteger);
const levels = (values.levels ?? '0,1').split(',').map((level) => parseNumber(level, 'levels', 0, isNonNegativeInteger));
const maxTimestep = parseNumber(values['max-timestep'], 'max-timestep', 800, isPositiveInteger);

await initRuntime();
const pipeline = StableDiffusionPipeline.fromPretrained(values.model ?? defaultModelDir());
const recipe = readRecipe(new URL('../trainer/train/configs/default.json', import.meta.url).pathname);
const lastEntry = recipe.diffusion.shapeEmphasis.at(-1);
recipe.diffusion.shapeEmphasis = [{ ...lastEntry, fromStep: 0, weights: lastEntry?.weights ?? {}, tokenGrounding: { weight: 1, levels, maxTimestep } }];
const models = { tokenizer: pipeline.tokenizer, textEncoder: pipeline.textEncoder, unet: pipeline.unet, vae: pipeline.vae };
const stage = diffusionTrainingStage(recipe, models, pipeline.modelDir);
const variables = stage.parameters.map((parameter) => parameter.variable);

function gradientNorm(prepared: ReturnType<typeof stage.prepareStep>, term: 'diffusion' | 'grounding'): { value: number; norm: number } {
  const { value, grads } = tf.engine().gradients(
    () => {
      const loss = prepared.lossFn({ start: 0, size: recipe.diffusion.batch }).terms[term];
      if (!loss) throw new Error(`this batch has no ${term} term (every caption dropped or every timestep at ${maxTimestep} or later)`);
      return loss;
    },
    variables,
    undefined,
    true,
  );
  // a parameter the term does not reach (the UNet's output convolution for grounding) has no gradient
  const reached = grads.filter((grad): grad is tf.Tensor => grad != null);
  const norm = Math.sqrt(reached.reduce((sum, grad) => sum + tf.tidy(() => tf.sum(tf.square(grad)).dataSync()[0]!), 0));
  const result = { value: value.dataSync()[0]!, norm };
  tf.dispose([value, ...reached]);
  return result;
}

console.log(`| batch of ${recipe.diffusion.batch} | diffusion loss | its gradient norm | grounding term (levels ${levels.join(', ')}) | its gradient norm |`);
console.log('|---|---|---|---|---|');
for (let batch = 0; batch < batches; batch++) {
  const prepared = stage.prepareStep(new Generator(100 + batch), 0);
  const diffusion = gradientNorm(prepared, 'diffusion');
  const grounding = gradientNorm(prepared, 'grounding');
  prepared.dispose();
  console.log(`| ${batch} | ${diffusion.value.toFixed(4)} | ${diffusion.norm.toFixed(4)} | ${grounding.value.toFixed(4)} | ${grounding.norm.toFixed(4)} |`);
}
stage.ema.dispose();
pipeline.dispose();
