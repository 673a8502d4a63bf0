// The loss curve: one JSON record per logged step in <work>/loss.jsonl. A resumed stage first drops its records
// written after its checkpoint, so the file always describes one uninterrupted run.
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { StageName } from './checkpoint.ts';

export interface LossRecord {
  stage: StageName;
  /** optimizer steps completed when the record was written */
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** stage wall time so far, seconds */
  seconds: number;
  /** stage-specific terms (mse, kl, ...) */
  [term: string]: number | string;
}

export class LossLog {
  constructor(readonly path: string) {}

  records(): LossRecord[] {
    if (!existsSync(this.path)) return [];
    return readFileSync(this.path, 'utf8')
      .split('\n')
      .filter((line) => line.trim().length > 0)
      .map((line) => JSON.parse(line) as LossRecord);
  }

  /** Drops the records of `stage` written after its step `step` (all of them for 0). */
  truncateAfter(stage: StageName, step: number): void {
    if (!existsSync(this.path)) return;
    const kept = this.records().filter((r) => r.stage !== stage || r.step <= step);
    writeFileSync(this.path, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
  }

  append(record: LossRecord): void {
    appendFileSync(this.path, `${JSON.stringify(record)}\n`);
  }
}
