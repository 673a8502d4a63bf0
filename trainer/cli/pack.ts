// `mifo pack export|import|inspect`: concept packs (docs/packs.md).
import { existsSync, readFileSync, statSync, writeFileSync, renameSync } from 'node:fs';
import { basename, dirname, extname, resolve } from 'node:path';
import { readManifest } from '../concepts/format.ts';
import { checkPackForBase, profileBaseModel } from '../packs/base.ts';
import { buildPack, exportDiffusers } from '../packs/export.ts';
import { DEFAULT_MAX_PACK_BYTES, PackError } from '../packs/format.ts';
import { importPack } from '../packs/import.ts';
import { readPack } from '../packs/read.ts';
import { summarizePack, type PackSummary } from '../packs/summary.ts';
import { CliError, parseOptions, requireString } from './args.ts';
import { defaultModelDir } from './default_model.ts';

const HELP = `usage: mifo pack <export | import | inspect> ...

  mifo pack export --concepts DIR --out FILE.safetensors [--name TEXT] [--note TEXT] [--rename OLD=NEW]...
                   [--diffusers DIR]
      Writes a learned concept folder as one pack file, which A1111 and ComfyUI load as a LoRA with bundled
      embeddings. --diffusers DIR also (or instead of --out) writes the diffusers layout: learned_embeds.safetensors,
      embeddings/<token>.safetensors and PEFT pytorch_lora_weights.safetensors.
      --rename '<asset0>=<mug>' gives a token another name in the pack.

  mifo pack import FILE.safetensors [--out DIR] [--model DIR] [--existing DIR]... [--allow-other-base]
      Checks the pack completely (format, metadata, shapes against the base model) and writes it as a concept folder
      for mifo compose --concepts DIR (default DIR: the file name without .safetensors). Tokens used by the
      --existing concept folders are renamed (<asset0> -> <asset0-2>). A pack learned on another base model is
      refused unless --allow-other-base.

  mifo pack inspect FILE.safetensors [--model DIR] [--json]
      Prints what the pack holds; with --model, whether it fits that model.

  --model DIR   diffusers pipeline folder (default: the embedded model)`;

function readPackFile(path: string): Buffer {
  if (!existsSync(path)) throw new CliError(`${path} does not exist`);
  const size = statSync(path).size;
  if (size > DEFAULT_MAX_PACK_BYTES) throw new PackError(`${path} is ${size} bytes; a pack is at most ${DEFAULT_MAX_PACK_BYTES}`);
  return readFileSync(path);
}

function parseRenames(values: string[] | undefined): Record<string, string> {
  const rename: Record<string, string> = {};
  for (const value of values ?? []) {
    const [from, to, ...rest] = value.split('=');
    if (!from || !to || rest.length > 0) throw new CliError(`--rename takes OLD=NEW, e.g. '<asset0>=<mug>', got '${value}'`);
    rename[from] = to;
  }
  return rename;
}

function describe(summary: PackSummary): string {
  const box = (b: number[] | null) => (b ? `[${b.map((v) => v.toFixed(3)).join(', ')}]` : 'no box');
  const lines = [
    `${summary.name}  (${summary.size} bytes, sha256 ${summary.sha256})`,
    ...(summary.note ? [`  note: ${summary.note}`] : []),
    `  base model: ${summary.baseModel.id} (${summary.baseModel.weightsHash}), text width ${summary.baseModel.hiddenSize}`,
    `  learned ${summary.learnedAt} at ${summary.resolution} px; packed ${summary.createdAt}`,
    ...summary.instances.map((i) => `  ${i.token.padEnd(14)} ${(i.name ?? '(unnamed)').padEnd(24)} ${box(i.box)}`),
    summary.lora ? `  LoRA: rank ${summary.lora.rank}, alpha ${summary.lora.alpha}, ${summary.lora.modules} modules (${summary.lora.components.join(', ')})` : '  LoRA: none (embeddings only)',
  ];
  return lines.join('\n');
}

async function runExport(argv: string[]): Promise<void> {
  const { values } = parseOptions(
    argv,
    { concepts: { type: 'string' }, out: { type: 'string' }, name: { type: 'string' }, note: { type: 'string' }, rename: { type: 'string', multiple: true }, diffusers: { type: 'string' } },
    HELP,
  );
  const conceptDir = resolve(requireString(values.concepts, 'concepts'));
  if (!values.out && !values.diffusers) throw new CliError('give --out FILE.safetensors, --diffusers DIR or both');
  const rename = parseRenames(values.rename);
  if (values.out) {
    const out = resolve(values.out);
    if (extname(out) !== '.safetensors') throw new CliError(`--out must name a .safetensors file, got ${out}`);
    if (!existsSync(dirname(out))) throw new CliError(`the folder of --out does not exist: ${dirname(out)}`);
    const { bytes, pack } = await buildPack(conceptDir, { name: values.name, note: values.note, rename });
    const temp = `${out}.tmp-${process.pid}`;
    writeFileSync(temp, bytes);
    renameSync(temp, out);
    console.log(`wrote ${out}\n${describe(summarizePack(pack))}`);
  }
  if (values.diffusers) {
    const outDir = resolve(values.diffusers);
    const { files } = exportDiffusers(conceptDir, outDir, { rename });
    console.log(`wrote the diffusers layout to ${outDir}: ${files.join(', ')}`);
  }
}

async function runImport(argv: string[]): Promise<void> {
  const { values, positionals } = parseOptions(
    argv,
    { out: { type: 'string' }, model: { type: 'string' }, existing: { type: 'string', multiple: true }, 'allow-other-base': { type: 'boolean' } },
    HELP,
  );
  if (positionals.length !== 1) throw new CliError('give exactly one pack file: mifo pack import FILE.safetensors');
  const file = resolve(positionals[0]!);
  const bytes = readPackFile(file);
  const outDir = resolve(values.out ?? basename(file, extname(file)));
  const taken = (values.existing ?? []).flatMap((dir) => readManifest(resolve(dir)).tokens.map((t) => t.token));
  const base = await profileBaseModel(resolve(values.model ?? defaultModelDir()));
  const result = importPack(bytes, { base, outDir, takenTokens: taken, allowOtherBase: values['allow-other-base'], source: file });
  for (const warning of result.warnings) console.warn(`warning: ${warning}`);
  for (const [from, to] of Object.entries(result.renamed)) console.log(`${from} is already taken: imported as ${to}`);
  console.log(`imported '${result.pack.header.name}' into ${outDir}: ${result.tokens.join(' ')}`);
  console.log(`use it: mifo compose --concepts ${outDir} --prompt "a photo of ${result.tokens[0]}" --box 0.1,0.1,0.9,0.9 --out out.png`);
}

async function runInspect(argv: string[]): Promise<void> {
  const { values, positionals } = parseOptions(argv, { model: { type: 'string' }, json: { type: 'boolean' } }, HELP);
  if (positionals.length !== 1) throw new CliError('give exactly one pack file: mifo pack inspect FILE.safetensors');
  const file = resolve(positionals[0]!);
  const pack = readPack(readPackFile(file), { source: file });
  const summary = summarizePack(pack);
  let fits: { model: string; ok: boolean; message: string } | undefined;
  if (values.model) {
    const base = await profileBaseModel(resolve(values.model));
    try {
      const { warnings } = checkPackForBase(pack, base);
      fits = { model: base.id, ok: true, message: warnings.join('; ') || `fits ${base.id}` };
    } catch (error) {
      if (!(error instanceof PackError)) throw error;
      fits = { model: base.id, ok: false, message: error.message };
    }
  }
  if (values.json) {
    console.log(JSON.stringify({ ...summary, ...(fits ? { fits } : {}) }, null, 2));
    return;
  }
  console.log(describe(summary));
  if (fits) console.log(`  ${fits.ok ? 'fits' : 'does not fit'} ${fits.model}: ${fits.message}`);
}

export async function run(argv: string[]): Promise<void> {
  const [action, ...rest] = argv;
  if (action === 'export') return runExport(rest);
  if (action === 'import') return runImport(rest);
  if (action === 'inspect') return runInspect(rest);
  if (action === '--help' || action === '-h') {
    console.log(HELP);
    return;
  }
  throw new CliError(`${action ? `unknown action '${action}'` : 'give an action'}\n\n${HELP}`);
}
