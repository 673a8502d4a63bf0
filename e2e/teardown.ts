import { rmSync } from 'node:fs';

export default function teardown(): void {
  const dir = process.env.MIFO_E2E_DATA_DIR;
  if (dir && /mifo-e2e-/.test(dir)) rmSync(dir, { recursive: true, force: true });
}
