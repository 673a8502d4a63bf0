// Undo and redo of mask edits, one history per instance: every click, box, brush stroke and clear can be taken back,
// including the ones that made a painting out of a click-to-segment mask. A state is kept packed to one bit per pixel
// and the histories share a byte budget, so a 12-megapixel photo keeps well over a hundred steps.
import type { MaskBits } from './bits.ts';
import type { SamBox, SamPoint } from './MaskCanvas.tsx';

export type MaskSource = 'sam' | 'brush' | 'import' | 'sample';

export interface MaskState {
  bits: MaskBits;
  points: SamPoint[];
  box: SamBox | null;
  source: MaskSource;
}

interface PackedState {
  width: number;
  height: number;
  packed: Uint8Array;
  points: SamPoint[];
  box: SamBox | null;
  source: MaskSource;
  /** order of recording across every instance, so the budget drops the oldest step first */
  sequence: number;
}

interface Stacks {
  undo: PackedState[];
  redo: PackedState[];
}

export const DEFAULT_HISTORY_BYTES = 192 * 1024 * 1024;

function packBits(bits: MaskBits): Uint8Array {
  const packed = new Uint8Array(Math.ceil(bits.data.length / 8));
  bits.data.forEach((value, i) => {
    if (value) packed[i >> 3]! |= 1 << (i & 7);
  });
  return packed;
}

function unpack(state: PackedState): MaskState {
  const data = new Uint8Array(state.width * state.height);
  for (let i = 0; i < data.length; i++) data[i] = (state.packed[i >> 3]! >> (i & 7)) & 1;
  return { bits: { width: state.width, height: state.height, data }, points: state.points.map((p) => ({ ...p })), box: state.box ? [...state.box] : null, source: state.source };
}

export class MaskHistory {
  private readonly stacks = new Map<string, Stacks>();
  private sequence = 0;
  private bytes = 0;

  constructor(private readonly byteBudget = DEFAULT_HISTORY_BYTES) {}

  /** Keeps `before`, the state an edit of the instance is about to change; a new edit ends what could be redone. */
  record(instanceId: string, before: MaskState): void {
    const stacks = this.stacksOf(instanceId);
    for (const dropped of stacks.redo.splice(0)) this.bytes -= dropped.packed.byteLength;
    stacks.undo.push(this.pack(before));
    this.trim();
  }

  /** The state before the instance's last edit, or null; `current` becomes what redo returns. */
  undo(instanceId: string, current: MaskState): MaskState | null {
    return this.step(instanceId, current, 'undo', 'redo');
  }

  /** The state undo last left, or null; `current` goes back on the undo stack. */
  redo(instanceId: string, current: MaskState): MaskState | null {
    return this.step(instanceId, current, 'redo', 'undo');
  }

  canUndo(instanceId: string): boolean {
    return (this.stacks.get(instanceId)?.undo.length ?? 0) > 0;
  }

  canRedo(instanceId: string): boolean {
    return (this.stacks.get(instanceId)?.redo.length ?? 0) > 0;
  }

  private step(instanceId: string, current: MaskState, from: keyof Stacks, to: keyof Stacks): MaskState | null {
    const stacks = this.stacks.get(instanceId);
    const target = stacks?.[from].pop();
    if (!stacks || !target) return null;
    this.bytes -= target.packed.byteLength;
    stacks[to].push(this.pack(current));
    this.trim();
    return unpack(target);
  }

  private stacksOf(instanceId: string): Stacks {
    let stacks = this.stacks.get(instanceId);
    if (!stacks) this.stacks.set(instanceId, (stacks = { undo: [], redo: [] }));
    return stacks;
  }

  private pack(state: MaskState): PackedState {
    const packed = packBits(state.bits);
    this.bytes += packed.byteLength;
    return { width: state.bits.width, height: state.bits.height, packed, points: state.points.map((p) => ({ ...p })), box: state.box ? [...state.box] : null, source: state.source, sequence: this.sequence++ };
  }

  /** Over budget, the oldest undo step of any instance goes first; the newest step of each stack always stays. */
  private trim(): void {
    while (this.bytes > this.byteBudget) {
      let oldest: PackedState[] | null = null;
      for (const stacks of this.stacks.values()) {
        for (const stack of [stacks.undo, stacks.redo]) {
          if (stack.length > 1 && (!oldest || stack[0]!.sequence < oldest[0]!.sequence)) oldest = stack;
        }
      }
      if (!oldest) return;
      this.bytes -= oldest.shift()!.packed.byteLength;
    }
  }
}
