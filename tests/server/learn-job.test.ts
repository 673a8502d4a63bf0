// The real `learn` job (trainer/learn, fast preset shortened further) on ../shared/fixtures/tiny-sd through both
// queues: kill -9 of the worker mid-learning, the other worker resumes from the last checkpoint and finishes with
// the same learned weights as an uninterrupted run; bad learning input fails once.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import type { JobEvent, JobRecord } from '../../server/jobs/contract.ts';
import { JobInputError } from '../../server/jobs/contract.ts';
import type { LearnJobResult } from '../../server/jobs/types/learn.ts';
import { LEARN_PRESETS } from '../../server/jobs/types/learn.ts';
import { PRESET_NAMES } from '../../trainer/learn/options.ts';
import { JobHarness, redisServerInstalled, startRedis, type RedisServer, type WorkerProcess } from './support/harness.ts';

const tinySd = join(resolve(process.env.MIFO_FIXTURES ?? join(import.meta.dirname, '..', '..', '..', 'shared', 'fixtures')), 'tiny-sd');
const CHECKPOINT_EVERY = 2;
/** The fast preset cut to 16 + 4 steps, checkpointing every 2, no attention maps in between. */
const OPTIONS = { checkpointEvery: CHECKPOINT_EVERY, attentionMapEvery: 0, phase1: { steps: 16, attention: { rewardSteps: 6 } }, phase2: { steps: 4 } };

/** A 64×64 photo with a red square on the left and a blue disc on the right, and their masks. */
async function scene(): Promise<{ photo: Buffer; masks: Buffer[] }> {
  const svg = (body: string, background: string) => Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="${background}"/>${body}</svg>`);
  const square = '<rect x="6" y="20" width="22" height="22" fill="FILL"/>';
  const disc = '<circle cx="46" cy="32" r="11" fill="FILL"/>';
  const png = (input: Buffer) => sharp(input).png().toBuffer();
  return {
    photo: await png(svg(square.replace('FILL', '#d02020') + disc.replace('FILL', '#2040d0'), '#808070')),
    masks: [await png(svg(square.replace('FILL', 'white'), 'black')), await png(svg(disc.replace('FILL', 'white'), 'black'))],
  };
}

function workerRunning(workers: WorkerProcess[], job: JobRecord): WorkerProcess | undefined {
  return workers.find((worker) => job.workerId?.endsWith(`-${worker.pid}`));
}

test('the learn job offers exactly the trainer presets', () => {
  assert.deepEqual([...LEARN_PRESETS].sort(), [...PRESET_NAMES].sort());
});

for (const queue of ['embedded', 'redis'] as const) {
  const skip = !existsSync(join(tinySd, 'model_index.json'))
    ? `no tiny-sd fixture at ${tinySd} (set MIFO_FIXTURES)`
    : queue === 'redis' && !redisServerInstalled()
      ? 'redis-server is not installed (apt-get install redis-server)'
      : false;

  describe(`learn job on the ${queue} queue`, { skip }, () => {
    let redis: RedisServer | undefined;
    let harness: JobHarness;
    let workers: WorkerProcess[];
    let input: { model: string; image: string; masks: string[]; names: string[]; preset: 'fast'; options: typeof OPTIONS };

    before(async () => {
      redis = queue === 'redis' ? await startRedis() : undefined;
      // A learning step and the model load run synchronously: the lease must outlast the longest of them.
      harness = await JobHarness.open({ queue, redisUrl: redis?.url, env: { MIFO_LEASE_MS: '8000' } });
      workers = await Promise.all([harness.startWorker({ modules: [] }), harness.startWorker({ modules: [] })]);
      const { photo, masks } = await scene();
      const store = harness.services.artifacts;
      input = {
        model: tinySd,
        image: (await store.put(photo, 'image/png')).sha256,
        masks: [(await store.put(masks[0]!)).sha256, (await store.put(masks[1]!)).sha256],
        names: ['square', 'disc'],
        preset: 'fast',
        options: OPTIONS,
      };
    });

    after(async () => {
      await harness?.close();
      await redis?.stop();
    });

    test('kill -9 mid-learning: the other worker resumes from the last checkpoint and learns the same weights', async () => {
      const project = harness.services.projects.create({ name: 'square and disc' });
      const square = harness.services.projects.addInstance(project.id, { name: 'square', maskSha256: input.masks[0]! });
      const job = await harness.services.jobs.submit({ type: 'learn', projectId: project.id, input: { ...input, instanceIds: [square.id, 'no-such-instance'] } });
      const running = await harness.waitFor(
        'learning step 7',
        () => {
          const current = harness.services.jobs.get(job.id)!;
          return (current.progress?.step ?? 0) >= 7 && workerRunning(workers, current) ? current : undefined;
        },
        120_000,
      );
      const victim = workerRunning(workers, running)!;
      victim.kill('SIGKILL');
      await victim.exited;
      const killedAtStep = running.progress!.step;

      const finished = await harness.finished(job.id, 180_000);
      assert.equal(finished.status, 'completed', JSON.stringify(finished.error));
      const result = finished.result as unknown as LearnJobResult;
      assert.deepEqual(result.tokens, ['<asset0>', '<asset1>']);

      const events = harness.services.jobs.store.events({ jobId: job.id }, 0, 10_000);
      const restart = events.filter((event) => event.kind === 'started')[1]!;
      assert.equal(restart.data.attempt, 2);
      assert.equal(restart.data.resumedFromCheckpoint, true);
      const resumedLog = events.find((event): event is JobEvent => event.kind === 'log' && event.id > restart.id && String(event.data.message).includes('resumed at'));
      const resumedStep = Number(/resumed at phase 1 step (\d+)/.exec(String(resumedLog?.data.message))?.[1]);
      console.log(`  ${queue}: killed pid ${victim.pid} at step ${killedAtStep}; resumed at step ${resumedStep} on pid ${workers.find((w) => w !== victim)!.pid}`);
      assert.ok(resumedStep >= killedAtStep - CHECKPOINT_EVERY && resumedStep <= killedAtStep, `resumed at step ${resumedStep}, killed at ${killedAtStep}`);
      const firstStepAfter = events.find((event) => event.kind === 'progress' && event.id > restart.id && event.data.phase === 'phase 1');
      assert.equal(firstStepAfter?.data.step, resumedStep + 1, 'the resumed attempt continues after its checkpoint');

      const concepts = harness.services.projects.detail(project.id).concepts;
      assert.deepEqual(
        concepts.map((concept) => [concept.token, concept.instanceId, concept.folderSha256, concept.learnJobId, concept.preset]),
        [
          ['<asset0>', square.id, result.concept, job.id, 'fast'],
          ['<asset1>', null, result.concept, job.id, 'fast'],
        ],
        'the completed job recorded one concept per token, exactly once',
      );

      const tree = await harness.services.artifacts.readTree(result.concept);
      const files = new Map(tree.map((entry) => [entry.path, entry.sha256]));
      assert.ok(files.has('learned_embeds.safetensors') && files.has('manifest.json'), [...files.keys()].join(', '));

      if (queue === 'embedded') {
        const uninterrupted = await harness.services.jobs.submit({ type: 'learn', input });
        const reference = (await harness.finished(uninterrupted.id, 180_000)).result as unknown as LearnJobResult;
        const referenceFiles = new Map((await harness.services.artifacts.readTree(reference.concept)).map((entry) => [entry.path, entry.sha256]));
        for (const [path, sha256] of referenceFiles) {
          if (path.endsWith('.safetensors')) assert.equal(files.get(path), sha256, `${path} equals the uninterrupted run's`);
        }
      }
      workers = [workers.find((worker) => worker !== victim)!, await harness.startWorker({ modules: [] })];
    });

    test('bad learning input fails once with a clear error', async () => {
      await assert.rejects(harness.services.jobs.submit({ type: 'learn', input: { ...input, masks: [] } }), JobInputError);
      const intoAnyFolder = await harness.services.jobs.submit({ type: 'learn', input: { ...input, options: { ...input.options, prior: { cacheDir: '/etc' } } } });
      const refused = await harness.finished(intoAnyFolder.id, 60_000);
      assert.deepEqual([refused.status, refused.error?.kind, refused.attempts], ['failed', 'input', 1]);
      assert.match(refused.error!.message, /prior.cacheDir cannot be set by a job/);
      const black = await harness.services.artifacts.put(await sharp({ create: { width: 64, height: 64, channels: 3, background: 'black' } }).png().toBuffer());
      const job = await harness.services.jobs.submit({ type: 'learn', input: { ...input, masks: [input.masks[0]!, black.sha256] } });
      const failed = await harness.finished(job.id, 60_000);
      assert.equal(failed.status, 'failed');
      assert.equal(failed.error?.kind, 'input');
      assert.match(failed.error!.message, /^mask 1: the mask .* is empty/);
      assert.equal(failed.attempts, 1);
    });
  });
}
