// The learning presets as the studio presents them. Step counts are trainer/learn/options.ts's (a test keeps them
// equal).
export const LEARN_PRESET_INFO = [
  { id: 'fast', title: 'Fast', steps: [80, 20], text: 'A smoke test of the flow: the same losses on a short schedule, seconds on the sample model, but too short for its tokens to learn the objects (docs/learning.md).' },
  { id: 'paper', title: 'Paper', steps: [800, 400], text: 'The paper’s schedule: 200 reward then 600 penalty steps for the tokens, then a LoRA fine-tune. Minutes on the sample model; the one that learns its objects.' },
  { id: 'reference', title: 'Reference', steps: [600, 400], text: 'The MIFO reference code: full fine-tuning with prior preservation (class images are made once and cached).' },
  { id: 'bas', title: 'Break-a-Scene', steps: [400, 400], text: 'The Break-a-Scene baseline, for comparison with MIFO.' },
] as const;

export type LearnPresetId = (typeof LEARN_PRESET_INFO)[number]['id'];
