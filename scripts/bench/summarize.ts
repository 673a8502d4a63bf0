// Medians over several `npm run bench -- --json` runs, as the markdown table of docs/performance.md:
//
//   for i in 1 2 3; do npm run bench -- --json > bench-$i.jsonl; done
//   node --import tsx scripts/bench/summarize.ts bench-*.jsonl
import { readFileSync } from 'node:fs';

interface Row {
  workload: string;
  batch: number;
  engine: string;
  fwd_ms: number;
  fwdbwd_ms: number;
  background_pct?: number;
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: summarize.ts RUN.jsonl [RUN.jsonl ...]');
  process.exit(1);
}

const rows = files.flatMap((file) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Row),
);

function median(values: number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const groups = new Map<string, Row[]>();
for (const row of rows) {
  const key = `${row.workload}|${row.batch}|${row.engine === 'pytorch' ? 'pytorch' : 'engine'}`;
  groups.set(key, [...(groups.get(key) ?? []), row]);
}

const format = (ms: number) => (Number.isNaN(ms) ? '-' : ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));
const ratio = (ours: number, reference: number) => (Number.isFinite(ours / reference) ? `${(ours / reference).toFixed(2)}x` : '-');

console.log('| workload | batch | fwd ms | fwd+bwd ms | PyTorch fwd ms | PyTorch fwd+bwd ms | fwd ratio | fwd+bwd ratio | runs | max other load |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const [key, engineRows] of groups) {
  const [workload, batch, side] = key.split('|');
  if (side !== 'engine') continue;
  const torchRows = groups.get(`${workload}|${batch}|pytorch`) ?? [];
  const fwd = median(engineRows.map((r) => r.fwd_ms));
  const fwdbwd = median(engineRows.map((r) => r.fwdbwd_ms));
  const torchFwd = median(torchRows.map((r) => r.fwd_ms));
  const torchFwdbwd = median(torchRows.map((r) => r.fwdbwd_ms));
  const load = Math.max(...[...engineRows, ...torchRows].map((r) => r.background_pct ?? 0));
  console.log(
    `| ${workload} | ${batch} | ${format(fwd)} | ${format(fwdbwd)} | ${format(torchFwd)} | ${format(torchFwdbwd)} | ` +
      `${ratio(fwd, torchFwd)} | ${ratio(fwdbwd, torchFwdbwd)} | ${engineRows.length} | ${load.toFixed(0)}% |`,
  );
}
