// The whole studio flow in a browser, with the fastest preset: the project list, a refused upload and the crop,
// a sample photo segmented with two SAM clicks, learning, a composition with two boxes (and without box control),
// a pack exported, downloaded, and imported into another project, where it composes again. Every step leaves a
// screenshot in test-results/e2e-screenshots/.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test, type Page, type TestInfo } from '@playwright/test';
import sharp from 'sharp';

interface SampleManifest {
  samples: { id: string; title: string; width: number; height: number; photo: string; instances: { name: string; click: [number, number] }[] }[];
}

const root = join(import.meta.dirname, '..');
const samples = (JSON.parse(readFileSync(join(root, 'public', 'samples', 'samples.json'), 'utf8')) as SampleManifest).samples;
const shotsDir = join(root, 'test-results', 'e2e-screenshots');
mkdirSync(shotsDir, { recursive: true });
let shotCount = 0;

async function shot(page: Page, testInfo: TestInfo, name: string): Promise<void> {
  // From the top, so the sticky header sits where it belongs in the full-page picture.
  await page.evaluate(() => window.scrollTo(0, 0));
  const path = join(shotsDir, `${String(++shotCount).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path, fullPage: true });
  await testInfo.attach(name, { path, contentType: 'image/png' });
}

/** Clicks a point given in photo pixels on the mask canvas. */
async function clickPhoto(page: Page, point: [number, number], size: { width: number; height: number }): Promise<void> {
  const canvas = page.getByTestId('mask-canvas');
  const box = (await canvas.boundingBox())!;
  await page.mouse.click(box.x + (point[0] / size.width) * box.width, box.y + (point[1] / size.height) * box.height);
}

test('open a sample, segment two objects, learn, compose with two boxes, export and re-import a pack', async ({ page }, testInfo) => {
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));

  // The project list: the sample project seeded on first start, and the samples.
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Projects' })).toBeVisible();
  await expect(page.getByTestId('project-card').filter({ hasText: 'Sample:' })).toBeVisible();
  await expect(page.getByTestId('model-badge')).toContainText('px');
  await shot(page, testInfo, 'projects');

  // Upload: a file that is not a photo is refused with what to do; a photo shows the square crop.
  await page.getByRole('button', { name: 'New project from a photo' }).click();
  await page.getByTestId('photo-input').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not a photo') });
  await expect(page.getByRole('dialog').getByRole('alert')).toContainText('choose a JPEG, PNG or WebP photo');
  // A landscape photo stored on its side (EXIF orientation 6): the browser shows it upright, as the crop does.
  const landscape = await sharp(join(root, 'public', 'samples', 'three-on-snow.png')).extend({ left: 160, right: 160, background: '#dfe6f0' }).png().toBuffer();
  const sideways = await sharp(landscape).rotate(-90).jpeg().withMetadata({ orientation: 6 }).toBuffer();
  await page.getByTestId('photo-input').setInputFiles({ name: 'snow-landscape.jpg', mimeType: 'image/jpeg', buffer: sideways });
  await expect(page.getByTestId('crop-box')).toBeVisible();
  await expect(page.getByText('832×512 px photo')).toBeVisible();
  await expect(page.getByText('What the model sees')).toBeVisible();
  await page.getByTestId('crop-box').focus();
  await page.keyboard.press('-');
  await page.keyboard.press('ArrowLeft');
  await shot(page, testInfo, 'upload-crop');
  await page.getByRole('button', { name: 'Close' }).click();

  // A sample without masks: mark its two objects with one SAM click each, and name them.
  const sample = samples.find((s) => s.id === 'two-toys')!;
  await page.getByTestId(`sample-${sample.id}`).getByRole('button', { name: 'Mark objects myself' }).click();
  await expect(page).toHaveURL(/\/masks$/);
  await expect(page.getByTestId('sam-ready')).toBeVisible({ timeout: 60_000 });
  const rows = page.getByTestId('instance-row');
  for (const [i, instance] of sample.instances.entries()) {
    if (i > 0) await page.getByRole('button', { name: '+ New instance' }).click();
    await clickPhoto(page, instance.click, sample);
    await expect(rows).toHaveCount(i + 1);
    await expect(rows.nth(i)).toContainText('click-to-segment mask', { timeout: 30_000 });
    const name = rows.nth(i).getByTestId('instance-name');
    await name.fill(instance.name);
    await name.press('Enter');
    await expect(rows.nth(i)).toContainText(`token <${instance.name}>`);
  }
  await expect(page.getByText('All changes saved')).toBeVisible();
  await shot(page, testInfo, 'masks');

  // Learn with the fast preset and watch it run.
  await page.getByRole('link', { name: 'Continue to Learn →' }).click();
  await expect(page.getByRole('radio', { name: /Fast/ })).toBeChecked();
  await page.getByRole('button', { name: 'Start learning' }).click();
  await expect(page.getByTestId('learn-step')).toContainText(/step \d+ of \d+/, { timeout: 120_000 });
  await expect(page.getByTestId('attention-maps').locator('canvas')).toHaveCount(2, { timeout: 120_000 });
  await shot(page, testInfo, 'learning');
  await expect(page.getByTestId('learn-state')).toHaveText('Learned', { timeout: 240_000 });
  await expect(page.getByTestId('learned-tokens')).toContainText('<circle>');
  await expect(page.getByTestId('learned-tokens')).toContainText('<star>');
  await expect(page.getByTestId('learn-previews').locator('img').first()).toBeVisible();
  await shot(page, testInfo, 'learned');

  // Compose with a box for each token, and the same seed without box control.
  await page.getByRole('link', { name: 'Compose with them →' }).click();
  await expect(page.getByTestId('prompt')).toHaveValue('a photo of <circle> and <star> on the beach');
  await expect(page.getByTestId('box-0')).toBeVisible();
  await expect(page.getByTestId('box-1')).toBeVisible();
  await page.getByTestId('box-canvas').scrollIntoViewIfNeeded();
  const before = (await page.getByTestId('box-0').boundingBox())!;
  await page.mouse.move(before.x + before.width / 2, before.y + before.height / 2);
  await page.mouse.down();
  await page.mouse.move(before.x + before.width / 2, before.y + before.height / 2 - 30, { steps: 4 });
  await page.mouse.up();
  expect((await page.getByTestId('box-0').boundingBox())!.y).toBeLessThan(before.y - 20);
  await page.getByTestId('box-1').focus();
  await page.keyboard.press('Shift+ArrowUp');
  await page.getByLabel('Steps', { exact: true }).fill('8');
  await page.getByLabel('Seed', { exact: true }).fill('7');
  await page.getByRole('button', { name: 'Generate' }).click();
  await expect(page.getByTestId('compose-state')).toBeVisible();
  await shot(page, testInfo, 'composing');
  await expect(page.getByTestId('generated-image')).toHaveCount(2, { timeout: 180_000 });
  await expect(page.getByTestId('generation').first()).toContainText('seed 7 · 8 steps');
  await shot(page, testInfo, 'composed');

  // Export the learned tokens as a pack and download it.
  await page.getByRole('link', { name: /4\. Share/ }).click();
  await page.getByRole('button', { name: 'Export pack' }).click();
  await expect(page.getByTestId('pack-exported')).toBeVisible({ timeout: 120_000 });
  await expect(page.getByTestId('pack-card')).toContainText('<circle>');
  const downloadPromise = page.waitForEvent('download');
  await page.getByTestId('pack-download').first().click();
  const download = await downloadPromise;
  expect(download.suggestedFilename()).toMatch(/\.safetensors$/);
  const packPath = join(testInfo.outputDir, download.suggestedFilename());
  await download.saveAs(packPath);
  await shot(page, testInfo, 'pack-exported');

  // Import the downloaded pack into another project and compose with its tokens there.
  await page.goto('/');
  await page.getByTestId('sample-similar-pair').getByRole('button', { name: 'Open with masks' }).click();
  await expect(page).toHaveURL(/\/masks$/);
  await page.getByRole('link', { name: /4\. Share/ }).click();
  await page.getByTestId('pack-file-input').setInputFiles(packPath);
  await expect(page.getByTestId('imported-tokens')).toContainText('<circle>', { timeout: 120_000 });
  await expect(page.getByTestId('imported-tokens')).toContainText('<star>');
  await shot(page, testInfo, 'pack-imported');
  await page.getByRole('link', { name: 'Compose with them →' }).click();
  await expect(page.getByTestId('prompt')).toHaveValue(/<circle>/);
  await page.getByLabel('Steps', { exact: true }).fill('6');
  await page.getByRole('button', { name: 'Generate' }).click();
  await expect(page.getByTestId('generated-image').first()).toBeVisible({ timeout: 180_000 });
  await shot(page, testInfo, 'imported-composed');

  expect(errors).toEqual([]);
});
