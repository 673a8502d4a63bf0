// `mifo <command>`: each command lives in its own module and is loaded only when asked for.
import { CliError } from './args.ts';

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run(argv: string[]): Promise<void> }> }> = {
  generate: { summary: 'text-to-image with a diffusers model folder', load: () => import('./generate.ts') },
  learn: { summary: 'learn one token per instance mask from one image (MIFO)', load: () => import('./learn.ts') },
  compose: { summary: 'box-controlled composition of learned concepts (MIFO synthesis)', load: () => import('./compose.ts') },
  pack: { summary: 'export, import and inspect concept packs (one .safetensors file)', load: () => import('./pack.ts') },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, { summary }]) => `  ${name.padEnd(10)} ${summary}`);
  return `usage: mifo <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nRun "mifo <command> --help" for a command's options.`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    console.log(usage());
    return name ? 0 : 1;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`mifo: unknown command '${name}'\n\n${usage()}`);
    return 1;
  }
  try {
    await (await command.load()).run(rest);
    return 0;
  } catch (error) {
    if (error instanceof CliError) {
      console.error(`mifo ${name}: ${error.message}`);
      return 2;
    }
    console.error(`mifo ${name}: ${(error as Error).message}`);
    if (process.env.MIFO_DEBUG) console.error(error);
    return 1;
  }
}
