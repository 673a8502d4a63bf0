// A folder's attention_layers.json: the layers learning and box control read where the spec's do not fit the model.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  ATTENTION_LAYERS_FILE,
  attentionLayersJson,
  NO_MODEL_ATTENTION_LAYERS,
  parseAttentionLayers,
  readModelAttentionLayers,
} from '../../../trainer/pipelines/attention_layers_config.ts';

const dir = mkdtempSync(join(tmpdir(), 'mifo-attention-layers-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const FINE_DECODER = { kind: 'cross', places: ['up'], resolution: { strides: [4, 8] } };
const FINEST = { kind: 'cross', places: ['down', 'up'], resolution: { strides: [4] } };

function folder(content?: string): string {
  const modelDir = mkdtempSync(join(dir, 'model-'));
  if (content !== undefined) writeFileSync(join(modelDir, ATTENTION_LAYERS_FILE), content);
  return modelDir;
}

test('a folder without the file names no layers; one with it names what it holds', () => {
  assert.deepEqual(readModelAttentionLayers(folder()), NO_MODEL_ATTENTION_LAYERS);
  const both = { _why: 'measured', learning: { phase1: FINE_DECODER, phase2: FINEST }, synthesis: { lossLayers: [20, 21], mapLayers: [26, 27] } };
  assert.deepEqual(readModelAttentionLayers(folder(JSON.stringify(both))), {
    learning: { phase1: FINE_DECODER, phase2: FINEST },
    synthesis: { lossLayers: [20, 21], mapLayers: [26, 27] },
  });
  assert.deepEqual(readModelAttentionLayers(folder(JSON.stringify({ synthesis: { lossLayers: [3], mapLayers: [3] } }))), {
    learning: null,
    synthesis: { lossLayers: [3], mapLayers: [3] },
  });
  const bounded = { synthesis: { lossLayers: [3], mapLayers: [3], boundedLayers: [0, 1, 3] } };
  assert.deepEqual(readModelAttentionLayers(folder(JSON.stringify(bounded))), { learning: null, ...bounded });
  assert.deepEqual(parseAttentionLayers(attentionLayersJson({ learning: null, ...bounded }), 'x'), { learning: null, ...bounded });
});

test('what is written reads back, and nothing is written when nothing is chosen', () => {
  const layers = { learning: { phase1: FINE_DECODER, phase2: FINEST }, synthesis: null } as Parameters<typeof attentionLayersJson>[0];
  const json = attentionLayersJson(layers);
  assert.deepEqual(json, { learning: { phase1: FINE_DECODER, phase2: FINEST } });
  assert.deepEqual(parseAttentionLayers(json, 'x'), layers);
  assert.equal(attentionLayersJson(NO_MODEL_ATTENTION_LAYERS), null);
});

test('a wrong file is refused with the file and the field', () => {
  const read = (value: unknown) => () => readModelAttentionLayers(folder(JSON.stringify(value)));
  assert.throws(read([1]), /attention_layers.json must be an object/);
  assert.throws(read({ learnings: {} }), /attention_layers.json has an unknown field 'learnings' \(known: learning, synthesis\)/);
  assert.throws(read({ learning: { phase1: FINE_DECODER } }), /learning lacks 'phase2'/);
  assert.throws(read({ learning: { phase1: { ...FINE_DECODER, kind: 'both' }, phase2: FINEST } }), /learning.phase1 kind must be cross or self, got "both"/);
  assert.throws(read({ learning: { phase1: { ...FINE_DECODER, places: ['middle'] }, phase2: FINEST } }), /learning.phase1 places must list some of down, mid, up/);
  assert.throws(read({ learning: { phase1: FINE_DECODER, phase2: { ...FINEST, resolution: { strides: [4], coarsest: 1 } } } }), /learning.phase2 resolution must hold exactly one of coarsest and strides/);
  assert.throws(read({ learning: { phase1: FINE_DECODER, phase2: { ...FINEST, resolution: { strides: [0.5] } } } }), /resolution.strides must list positive integers, got \[0.5\]/);
  assert.throws(read({ synthesis: { lossLayers: [], mapLayers: [1] } }), /synthesis.lossLayers must list attention layer indices ℓ \(integers ≥ 0\), got \[\]/);
  assert.throws(read({ synthesis: { lossLayers: [1], mapLayers: [-1] } }), /synthesis.mapLayers must list/);
  assert.throws(read({ synthesis: { lossLayers: [1], mapLayers: [1], boundedLayers: [] } }), /synthesis.boundedLayers must list/);
  assert.throws(read({ synthesis: { mapLayers: [1], boundedLayers: [1] } }), /synthesis lacks 'lossLayers'/);
  assert.throws(read({ synthesis: { lossLayers: [1], mapLayers: [1], maskLayers: [1] } }), /synthesis has an unknown field 'maskLayers' \(known: lossLayers, mapLayers, boundedLayers\)/);
  assert.throws(() => readModelAttentionLayers(folder('{ "learning": ')), /attention_layers.json is not valid JSON/);
});
