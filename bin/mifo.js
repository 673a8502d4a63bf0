#!/usr/bin/env node
// The `mifo` command. The project is TypeScript run through tsx, so no build step stands between a checkout and the CLI.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../trainer/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
