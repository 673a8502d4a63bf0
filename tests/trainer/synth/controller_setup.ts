// One way to build a box controller for a prompt on a pipeline's own layers, for the tests that run it in a UNet.
import type { StableDiffusionPipeline } from '../../../trainer/pipelines/stable_diffusion.ts';
import { BoundedAttentionController, type ControllerSettings } from '../../../trainer/synth/controller.ts';
import { selectLayers } from '../../../trainer/synth/layers.ts';
import { MIFO_CONTROL } from '../../../trainer/synth/options.ts';
import type { Box } from '../../../trainer/synth/regions.ts';
import { analysePrompt, resolveSubjects } from '../../../trainer/synth/tokens.ts';

/** The reference's controller for `prompt` with one box per subject, on the layers chosen by role; `settings` override. */
export function controllerFor(pipe: StableDiffusionPipeline, prompt: string, boxes: readonly Box[], settings: Partial<ControllerSettings> = {}) {
  const analysis = analysePrompt(pipe.tokenizer, prompt);
  const subjects = resolveSubjects(pipe.tokenizer, analysis, boxes.length);
  const { loss, maps } = selectLayers(pipe.unet.attentionLayers);
  const side = pipe.unet.config.sample_size!;
  const controller = new BoundedAttentionController({
    boxes,
    tokens: { subjects: subjects.map((s) => s.positions), filter: analysis.filterIndices, eos: analysis.eosIndex },
    leading: subjects.map((s) => s.leading),
    control: MIFO_CONTROL,
    lossLayers: loss,
    mapLayers: maps,
    mapGrid: [side, side],
    ...settings,
  });
  return { analysis, subjects, side, controller };
}
