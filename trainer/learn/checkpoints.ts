// Resumable checkpoints: checkpoint.json (step, phase, RNG state, bookkeeping) naming one safetensors file with the
// placeholder rows, the trainable parameters and the optimizer moments. The JSON is replaced atomically after its
// tensors are on disk, so a crash mid-write leaves the previous checkpoint intact.
import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readJson } from '../io/model_index.ts';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../io/safetensors.ts';
import type { GeneratorState } from '../util/random.ts';
import type { AttentionMass, LossTerms, Phase } from './events.ts';

export const CHECKPOINT_VERSION = 1;
const STATE_FILE = 'checkpoint.json';

export interface StepRecord extends LossTerms {
  loss: number;
}

export interface CheckpointState {
  version: number;
  /** hash of the inputs, model and options that change the result; resuming with others is refused */
  fingerprint: string;
  phase: Phase;
  /** steps completed in `phase` */
  step: number;
  generator: GeneratorState;
  optimizerSteps: number;
  /** names of the phase's trainable parameters, in optimizer order */
  parameters: string[];
  attentionMassBefore: AttentionMass[];
  losses: Record<`phase${Phase}`, StepRecord[]>;
  elapsedMs: number;
  tensors: string;
}

const TENSOR_FILE = /^state-p\d+-s\d+\.safetensors$/;

export function hasCheckpoint(dir: string): boolean {
  return existsSync(join(dir, STATE_FILE));
}

export function writeCheckpoint(dir: string, state: Omit<CheckpointState, 'version' | 'tensors'>, tensors: Record<string, TensorToWrite>): void {
  mkdirSync(dir, { recursive: true });
  const tensorFile = `state-p${state.phase}-s${state.step}.safetensors`;
  writeSafetensors(join(dir, tensorFile), tensors);
  const full: CheckpointState = { version: CHECKPOINT_VERSION, ...state, tensors: tensorFile };
  const temp = join(dir, `${STATE_FILE}.tmp-${process.pid}`);
  writeFileSync(temp, JSON.stringify(full));
  renameSync(temp, join(dir, STATE_FILE));
  for (const name of readdirSync(dir)) {
    if (name !== tensorFile && TENSOR_FILE.test(name)) unlinkSync(join(dir, name));
  }
}

export interface LoadedCheckpoint {
  state: CheckpointState;
  tensors: SafetensorsFile;
}

/** The checkpoint in `dir`, or null when there is none. */
export function readCheckpoint(dir: string): LoadedCheckpoint | null {
  const statePath = join(dir, STATE_FILE);
  if (!existsSync(statePath)) return null;
  const state = readJson<CheckpointState>(statePath);
  if (state.version !== CHECKPOINT_VERSION) throw new Error(`${statePath}: checkpoint version ${state.version} is not supported (expected ${CHECKPOINT_VERSION})`);
  const tensorPath = join(dir, state.tensors);
  if (!existsSync(tensorPath)) throw new Error(`${statePath} names ${state.tensors}, which is missing`);
  return { state, tensors: SafetensorsFile.open(tensorPath) };
}

/** Deletes the checkpoint's own files, and the folder only when nothing else is left in it (it may be the user's). */
export function removeCheckpoint(dir: string): void {
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)) {
    if (name === STATE_FILE || name.startsWith(`${STATE_FILE}.tmp-`) || TENSOR_FILE.test(name)) unlinkSync(join(dir, name));
  }
  if (readdirSync(dir).length === 0) rmdirSync(dir);
}
