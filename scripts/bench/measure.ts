// Timing and machine-load helpers for `npm run bench`. The machine has 2 cores shared with other work, so every
// measurement also reports how busy the rest of the machine was while it ran.
import { cpus } from 'node:os';
import { readFileSync } from 'node:fs';

export interface Timing {
  medianMs: number;
  runs: number;
}

/** Median wall time of fn after `warmup` calls: at least minRuns runs and minTimeMs in total, at most maxRuns. */
export function medianMs(fn: () => void, options: { minTimeMs?: number; minRuns?: number; maxRuns?: number; warmup?: number } = {}): Timing {
  const { minTimeMs = 1500, minRuns = 3, maxRuns = 30, warmup = 2 } = options;
  for (let i = 0; i < warmup; i++) fn();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < minRuns || (performance.now() - start < minTimeMs && times.length < maxRuns)) {
    const begin = performance.now();
    fn();
    times.push(performance.now() - begin);
  }
  times.sort((a, b) => a - b);
  const middle = times.length >> 1;
  const medianMs = times.length % 2 ? times[middle]! : (times[middle - 1]! + times[middle]!) / 2;
  return { medianMs, runs: times.length };
}

/** Busy and total CPU time of the whole machine since boot, in clock ticks (/proc/stat). */
function machineTicks(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, total };
}

/**
 * Measures what share of the machine's CPU other processes used while a measurement ran: machine busy time minus
 * this process's own CPU time, over the elapsed time of all cores.
 */
export class BackgroundLoad {
  private readonly machine = machineTicks();
  private readonly own = process.cpuUsage();

  percent(): number {
    const machine = machineTicks();
    const totalTicks = machine.total - this.machine.total;
    if (totalTicks <= 0) return 0;
    const ownUsage = process.cpuUsage(this.own);
    // /proc/stat counts USER_HZ ticks, 100 per second on Linux.
    const ticksPerSecond = 100;
    const ownTicks = ((ownUsage.user + ownUsage.system) / 1e6) * ticksPerSecond;
    return Math.max(0, (100 * (machine.busy - this.machine.busy - ownTicks)) / totalTicks);
  }
}

/** Waits until the machine is below `thresholdPercent` busy over a 2 s window; false if it never was. */
export async function waitForIdle(maxWaitMs: number, thresholdPercent = 10): Promise<boolean> {
  const deadline = Date.now() + maxWaitMs;
  do {
    const before = machineTicks();
    await new Promise((resolveWait) => setTimeout(resolveWait, 2000));
    const after = machineTicks();
    const busy = (100 * (after.busy - before.busy)) / Math.max(1, after.total - before.total);
    if (busy < thresholdPercent) return true;
  } while (Date.now() < deadline);
  return false;
}

export function coreCount(): number {
  return cpus().length;
}
