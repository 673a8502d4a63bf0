// The whole studio flow in a browser, with the fastest preset: the project list, a refused upload and the crop,
// a sample photo segmented with two SAM clicks, learning, a composition with two boxes (and without box control),
// a pack exported, downloaded, and imported into another project, where it composes again. Every step leaves a
// screenshot in test-results/e2e-screenshots/.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test, type Locator, type Page, type TestInfo } from '@playwright/test';
import sharp from 'sharp';
import { encodeRle } from '../server/sam/rle.ts';

interface SampleManifest {
  samples: { id: string; title: string; width: number; height: number; photo: string; instances: { name: string; click: [number, number]; box: [number, number, number, number] }[] }[];
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
  // A modal dialog covers only the viewport: picture just that, not the whole page behind it.
  const modal = await page.locator('dialog[open]').count();
  await page.screenshot({ path, fullPage: modal === 0 });
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
    await expect(name).toHaveValue(instance.name);
  }
  await expect(page.getByText(`Editing ${sample.instances.at(-1)!.name}.`)).toBeVisible();
  await expect(page.getByText('All changes saved')).toBeVisible();
  await shot(page, testInfo, 'masks');

  // Learn with the fast preset and watch it run.
  await page.getByRole('link', { name: 'Continue to Learn →' }).click();
  await expect(page.getByRole('radio', { name: /Paper/ })).toBeChecked();
  await page.getByRole('radio', { name: /Fast/ }).check();
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
  await expect(page.getByTestId('prompt')).toHaveValue('a photo of <circle> and <star> on snow');
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
  // The live x̂0 preview under the boxes (or, if the run was quicker than the page, its result).
  await expect(page.getByTestId('live-preview').or(page.getByTestId('compose-result'))).toBeVisible({ timeout: 120_000 });
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

test('mask tools: box prompt, keyboard click, brush and eraser, undo and redo, PNG and SAM JSON imports, reorder, delete; learning cancelled and resumed', async ({ page }, testInfo) => {
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  const sample = samples.find((s) => s.id === 'three-on-snow')!;
  const size = { width: sample.width, height: sample.height };
  await page.goto('/');
  await page.getByTestId(`sample-${sample.id}`).getByRole('button', { name: 'Mark objects myself' }).click();
  await expect(page.getByTestId('sam-ready')).toBeVisible({ timeout: 60_000 });
  const rows = page.getByTestId('instance-row');
  const canvas = page.getByTestId('mask-canvas');
  const toScreen = async ([x, y]: [number, number]) => {
    const box = (await canvas.boundingBox())!;
    return { x: box.x + (x / size.width) * box.width, y: box.y + (y / size.height) * box.height };
  };

  // A box dragged around the checkered heart (one click would pick a single check).
  const heart = sample.instances.find((i) => i.name === 'heart')!;
  await page.getByRole('button', { name: 'Box', exact: true }).click();
  const from = await toScreen([heart.box[0] - 6, heart.box[1] - 6]);
  const to = await toScreen([heart.box[2] + 6, heart.box[3] + 6]);
  await page.mouse.move(from.x, from.y);
  await page.mouse.down();
  await page.mouse.move(to.x, to.y, { steps: 6 });
  await page.mouse.up();
  await expect(rows.nth(0)).toContainText('click-to-segment mask', { timeout: 30_000 });

  // The keyboard: a new instance (N), the click tool (C), the cursor to the hexagon with the arrows, Enter.
  await canvas.focus();
  await page.keyboard.press('n');
  await page.keyboard.press('c');
  const hexagon = sample.instances.find((i) => i.name === 'hexagon')!.click;
  // The cursor starts in the middle and moves 1% of the side per arrow press.
  for (let i = 0; i < Math.round(((hexagon[0] - size.width / 2) / size.width) * 100); i++) await page.keyboard.press('ArrowRight');
  for (let i = 0; i < Math.round(((size.height / 2 - hexagon[1]) / size.height) * 100); i++) await page.keyboard.press('ArrowUp');
  await page.keyboard.press('Enter');
  await expect(rows).toHaveCount(2);
  await expect(rows.nth(1)).toContainText('click-to-segment mask', { timeout: 30_000 });
  await expect(page.getByText('All changes saved')).toBeVisible();
  const undo = page.getByRole('button', { name: 'Undo', exact: true });
  const redo = page.getByRole('button', { name: 'Redo', exact: true });
  /** Two undos leave the instance's mask empty with nothing left to undo; two redos bring `restored` back, saved. */
  const undoTwiceRedoTwice = async (row: Locator, restored: string, afterOneUndo?: string) => {
    await undo.click();
    if (afterOneUndo) await expect(row).toContainText(afterOneUndo);
    await undo.click();
    await expect(undo).toBeDisabled();
    await expect(row).toContainText('no mask yet');
    await redo.click();
    await redo.click();
    await expect(redo).toBeDisabled();
    await expect(row).toContainText(restored);
    await expect(page.getByText('All changes saved')).toBeVisible();
  };

  // Two clicks made before SAM answers the first are one undo step: the mask between them was never shown.
  const isSegment = (url: URL) => url.pathname.includes('masks.segment');
  let releaseSegments = () => {};
  const held = new Promise<void>((resolve) => (releaseSegments = resolve));
  let answered = 0;
  page.on('requestfinished', (request) => void (isSegment(new URL(request.url())) && answered++));
  await page.route(isSegment, async (route) => {
    await held;
    await route.continue();
  });
  for (const dx of [-4, 4]) {
    const point = await toScreen([hexagon[0] + dx, hexagon[1]]);
    await page.mouse.click(point.x, point.y);
  }
  releaseSegments();
  await expect.poll(() => answered).toBe(2);
  await page.unroute(isSegment);
  await expect(page.getByText('All changes saved')).toBeVisible();
  // the first undo goes back to the keyboard click, the second to no mask
  await undoTwiceRedoTwice(rows.nth(1), 'click-to-segment mask', 'click-to-segment mask');

  // Brush a blob into a new instance, then erase part of it.
  await page.getByRole('button', { name: '+ New instance' }).click();
  await page.getByRole('button', { name: 'Brush', exact: true }).click();
  const stroke = [await toScreen([420, 420]), await toScreen([470, 440]), await toScreen([480, 480])];
  await page.mouse.move(stroke[0]!.x, stroke[0]!.y);
  await page.mouse.down();
  for (const point of stroke.slice(1)) await page.mouse.move(point.x, point.y, { steps: 5 });
  await page.mouse.up();
  await expect(rows).toHaveCount(3);
  await expect(rows.nth(2)).toContainText('painted mask');
  await page.getByRole('button', { name: 'Eraser', exact: true }).click();
  const erase = await toScreen([470, 440]);
  await page.mouse.click(erase.x, erase.y);
  await expect(page.getByText('All changes saved')).toBeVisible();
  // Undo takes back the eraser and the stroke (the mask is empty again); redo brings both back.
  await undoTwiceRedoTwice(rows.nth(2), 'painted mask');

  // Imports: a mask PNG, and SAM automatic-mask-generator JSON with COCO RLE (compressed and not).
  await page.getByTestId('mask-png-input').setInputFiles(join(root, 'public', 'samples', 'three-on-snow-moon.png'));
  await expect(rows).toHaveCount(4);
  await expect(rows.nth(3)).toContainText('imported mask');
  await expect(rows.nth(3).getByTestId('instance-name')).toHaveValue('three-on-snow-moon');
  const moon = await sharp(join(root, 'public', 'samples', 'three-on-snow-moon.png')).extractChannel(0).raw().toBuffer();
  const half = { width: size.width / 2, height: size.height / 2 };
  const small = new Uint8Array(half.width * half.height);
  for (let y = 0; y < half.height; y++) for (let x = 0; x < half.width; x++) small[y * half.width + x] = moon[2 * y * size.width + 2 * x]! > 127 ? 1 : 0;
  const background = Uint8Array.from(small, (v) => 1 - v);
  const amg = [
    { segmentation: encodeRle(small, half.height, half.width), area: 0, predicted_iou: 0.97, stability_score: 0.95 },
    { segmentation: encodeRle(background, half.height, half.width, false), predicted_iou: 0.9, stability_score: 0.9 },
  ];
  await page.getByTestId('sam-json-input').setInputFiles({ name: 'masks.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(amg)) });
  const dialog = page.getByRole('dialog', { name: 'Choose the masks to add' });
  await expect(dialog).toContainText('The file holds 2 masks');
  await expect(dialog.getByRole('checkbox')).toHaveCount(2);
  await shot(page, testInfo, 'sam-json-import');
  await dialog.getByRole('button', { name: /Add 1 instance/ }).click();
  await expect(rows).toHaveCount(5);

  // Reorder and delete.
  const names = async () => rows.getByTestId('instance-name').evaluateAll((inputs) => inputs.map((input) => (input as HTMLInputElement).value));
  const before = await names();
  await rows.nth(4).getByRole('button', { name: /Move .* up/ }).click();
  await expect.poll(names).toEqual([...before.slice(0, 3), before[4], before[3]]);
  await rows.nth(2).getByRole('button', { name: /Delete/ }).click();
  await expect(rows).toHaveCount(4);
  await shot(page, testInfo, 'mask-tools');

  // Learning: cancel mid-run, then resume from the checkpoint to the end.
  await page.getByRole('link', { name: 'Continue to Learn →' }).click();
  await page.getByRole('radio', { name: /Fast/ }).check();
  await page.getByRole('button', { name: 'Start learning' }).click();
  await expect(page.getByTestId('learn-step')).toContainText(/step [1-9]\d* of \d+/, { timeout: 120_000 });
  await page.getByRole('button', { name: 'Cancel' }).click();
  await expect(page.getByTestId('learn-state')).toHaveText('Cancelled', { timeout: 60_000 });
  await shot(page, testInfo, 'learn-cancelled');
  await page.getByRole('button', { name: 'Resume from checkpoint' }).click();
  await expect(page.getByTestId('learn-state')).toHaveText('Learned', { timeout: 240_000 });
  await expect(page.getByTestId('learned-tokens').locator('span')).toHaveCount(4);

  expect(errors).toEqual([]);
});
