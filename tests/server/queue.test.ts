// The job system end to end, once with the embedded (SQLite) queue and once with BullMQ on a real redis-server:
// two worker processes, kill -9 of one mid-job, cancellation, 20 concurrent submissions, bad input, crashes,
// timeouts.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { JobEvent, JobRecord } from '../../server/jobs/contract.ts';
import { JobInputError } from '../../server/jobs/contract.ts';
import { JobHarness, redisServerInstalled, startRedis, type RedisServer, type WorkerProcess } from './support/harness.ts';
import { completionMarkerDir, expectedSum, STEP_JOB, STEP_JOB_CPU, type StepJobResult } from './support/step-job.ts';

const CPU_CONCURRENCY = 3;

function events(harness: JobHarness, jobId: string): JobEvent[] {
  return harness.services.jobs.store.events({ jobId }, 0, 10_000);
}

function resultOf(job: JobRecord): StepJobResult {
  assert.equal(job.status, 'completed', `job ${job.id} ${job.status}: ${JSON.stringify(job.error)}`);
  return job.result as unknown as StepJobResult;
}

function workerRunning(workers: WorkerProcess[], job: JobRecord): WorkerProcess | undefined {
  return workers.find((worker) => job.workerId?.endsWith(`-${worker.pid}`));
}

/** The most spans open at one instant. */
function maxConcurrent(spans: { start: number; end: number }[]): number {
  const edges = spans.flatMap((span) => [{ at: span.start, delta: 1 }, { at: span.end, delta: -1 }]);
  // At equal times close before opening: a job that ends as another starts did not overlap it.
  edges.sort((a, b) => a.at - b.at || a.delta - b.delta);
  let open = 0;
  let most = 0;
  for (const edge of edges) {
    open += edge.delta;
    most = Math.max(most, open);
  }
  return most;
}

for (const queue of ['embedded', 'redis'] as const) {
  const skip = queue === 'redis' && !redisServerInstalled() ? 'redis-server is not installed (apt-get install redis-server)' : false;

  describe(`${queue} queue`, { skip }, () => {
    let redis: RedisServer | undefined;
    let harness: JobHarness;
    let workers: WorkerProcess[];

    before(async () => {
      redis = queue === 'redis' ? await startRedis() : undefined;
      harness = await JobHarness.open({ queue, redisUrl: redis?.url });
      workers = await Promise.all([harness.startWorker({ concurrency: CPU_CONCURRENCY }), harness.startWorker({ concurrency: CPU_CONCURRENCY })]);
    });

    after(async () => {
      await harness?.close();
      await redis?.stop();
    });

    test('a worker killed with SIGKILL mid-job: the other worker resumes the job from its checkpoint', async () => {
      const steps = 30;
      const job = await harness.services.jobs.submit({ type: STEP_JOB, input: { steps, stepMs: 100 } });
      const running = await harness.waitFor('the job to reach step 5', () => {
        const current = harness.services.jobs.get(job.id)!;
        return (current.progress?.step ?? 0) >= 5 && workerRunning(workers, current) ? current : undefined;
      });
      const victim = workerRunning(workers, running)!;
      const killedAt = Date.now();
      victim.kill('SIGKILL');
      assert.equal((await victim.exited).signal, 'SIGKILL');

      const finished = await harness.finished(job.id);
      const result = resultOf(finished);
      const survivor = workers.find((worker) => worker !== victim)!;
      console.log(`  ${queue}: killed pid ${victim.pid} at step ${running.progress!.step}; pid ${result.pid} resumed from step ${result.resumedFrom}, took over ${result.startedAt - killedAt} ms after the kill`);
      assert.equal(result.pid, survivor.pid);
      assert.equal(result.sum, expectedSum(steps));
      assert.equal(result.attempt, 2);
      assert.ok(result.resumedFrom >= 5, `resumed from step ${result.resumedFrom}`);

      const log = events(harness, job.id);
      const starts = log.filter((event) => event.kind === 'started');
      assert.equal(starts.length, 2);
      assert.equal(starts[1]!.data.resumedFromCheckpoint, true);
      assert.ok(log.some((event) => event.kind === 'stalled'), 'the takeover is recorded as a stalled event');
      const secondAttemptSteps = log.filter((event) => event.kind === 'progress' && event.id > starts[1]!.id).map((event) => event.data.step);
      assert.equal(secondAttemptSteps[0], result.resumedFrom + 1, 'no checkpointed step is run again');
      assert.equal(readdirSync(completionMarkerDir(harness.dataDir)).filter((name) => name.startsWith(job.id)).length, 1);

      workers = [survivor, await harness.startWorker({ concurrency: CPU_CONCURRENCY })];
    });

    test('cancellation stops a running job within one step; retry resumes it from its checkpoint', async () => {
      const stepMs = 200;
      const job = await harness.services.jobs.submit({ type: STEP_JOB, input: { steps: 100, stepMs } });
      await harness.waitFor('step 2', () => (harness.services.jobs.get(job.id)!.progress?.step ?? 0) >= 2);
      const cancelledAt = Date.now();
      await harness.services.jobs.cancel(job.id);
      const finished = await harness.finished(job.id, 10_000);
      assert.equal(finished.status, 'cancelled');
      const log = events(harness, job.id);
      const terminal = log.at(-1)!;
      assert.equal(terminal.kind, 'cancelled');
      const stepsAfterCancel = log.filter((event) => event.kind === 'progress' && event.at > cancelledAt).length;
      console.log(`  ${queue}: cancelled ${terminal.at - cancelledAt} ms after the request (step ${stepMs} ms), ${stepsAfterCancel} step(s) finished after it`);
      assert.ok(stepsAfterCancel <= 1, `${stepsAfterCancel} steps ran after the cancel request`);
      assert.ok(terminal.at - cancelledAt < 2 * stepMs + 500, `took ${terminal.at - cancelledAt} ms to stop`);
      const lastStep = finished.progress!.step;

      const retried = await harness.services.jobs.retry(job.id);
      assert.equal(retried.status, 'queued');
      await harness.waitFor('the retried job to run', () => harness.services.jobs.get(job.id)!.status === 'running');
      await harness.services.jobs.cancel(job.id);
      const again = await harness.finished(job.id, 10_000);
      assert.equal(again.status, 'cancelled');
      const restart = events(harness, job.id).filter((event) => event.kind === 'started').at(-1)!;
      assert.equal(restart.data.resumedFromCheckpoint, true);
      const firstStepAfterRetry = events(harness, job.id).find((event) => event.kind === 'progress' && event.id > restart.id);
      if (firstStepAfterRetry) assert.equal(firstStepAfterRetry.data.step, lastStep + 1);
    });

    test('20 concurrent submissions all finish, none lost, none run twice; one GPU job at a time per worker', async () => {
      const submitted = await Promise.all(
        Array.from({ length: 20 }, (_, i) => harness.services.jobs.submit({ type: i % 5 === 0 ? STEP_JOB : STEP_JOB_CPU, input: { steps: 4 + (i % 3), stepMs: 40 } })),
      );
      assert.equal(new Set(submitted.map((job) => job.id)).size, 20);
      const started = Date.now();
      const finished = await Promise.all(submitted.map((job) => harness.finished(job.id, 60_000)));
      console.log(`  ${queue}: 20 jobs finished in ${Date.now() - started} ms on ${workers.length} workers`);
      const markers = readdirSync(completionMarkerDir(harness.dataDir));
      for (const job of finished) {
        const result = resultOf(job);
        assert.equal(result.sum, expectedSum(result.steps));
        assert.equal(markers.filter((name) => name.startsWith(job.id)).length, 1, `job ${job.id} ran to completion once`);
      }
      const byWorker = new Map<number, { gpu: boolean; start: number; end: number }[]>();
      for (const job of finished) {
        const result = resultOf(job);
        const spans = byWorker.get(result.pid) ?? [];
        spans.push({ gpu: job.resource === 'gpu', start: result.startedAt, end: result.finishedAt });
        byWorker.set(result.pid, spans);
      }
      for (const [pid, spans] of byWorker) {
        for (const kind of [true, false]) {
          const mine = spans.filter((span) => span.gpu === kind);
          const overlap = maxConcurrent(mine);
          assert.ok(overlap <= (kind ? 1 : CPU_CONCURRENCY), `worker ${pid} ran ${overlap} ${kind ? 'GPU' : 'CPU'} jobs at once`);
        }
      }
    });

    test('bad input fails once with a clear error: at submission, or in the handler without retries', async () => {
      await assert.rejects(harness.services.jobs.submit({ type: STEP_JOB, input: { steps: 'many', stepMs: 1 } }), (error: Error) => {
        assert.ok(error instanceof JobInputError);
        assert.match(error.message, /invalid input for a 'test-steps' job.*steps/s);
        return true;
      });
      await assert.rejects(harness.services.jobs.submit({ type: 'no-such-type', input: {} }), /unknown job type 'no-such-type'/);

      const missing = 'ab'.repeat(32);
      const job = await harness.services.jobs.submit({ type: STEP_JOB_CPU, input: { steps: 3, stepMs: 10, sourceSha256: missing } });
      const failed = await harness.finished(job.id);
      assert.equal(failed.status, 'failed');
      assert.deepEqual(failed.error, { kind: 'input', message: `source artifact ${missing} does not exist` });
      assert.equal(failed.attempts, 1);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const log = events(harness, job.id);
      assert.deepEqual(
        log.map((event) => event.kind),
        ['queued', 'started', 'failed'],
      );
    });

    test('a crashing handler is retried with backoff and resumes from its checkpoint', async () => {
      const job = await harness.services.jobs.submit({ type: STEP_JOB_CPU, input: { steps: 6, stepMs: 20, crashAt: { attempt: 1, step: 3 } } });
      const result = resultOf(await harness.finished(job.id));
      assert.equal(result.attempt, 2);
      assert.equal(result.resumedFrom, 2);
      assert.equal(result.sum, expectedSum(6));
      const retry = events(harness, job.id).find((event) => event.kind === 'retrying');
      assert.ok(retry, 'a retrying event');
      assert.deepEqual(retry.data.error, { kind: 'crash', message: 'simulated crash at step 3' });
    });

    test('an attempt that runs past its timeout fails as a timeout, without retries', async () => {
      const job = await harness.services.jobs.submit({ type: STEP_JOB_CPU, input: { steps: 50, stepMs: 100 }, timeoutMs: 700 });
      const failed = await harness.finished(job.id);
      assert.equal(failed.status, 'failed');
      assert.equal(failed.error?.kind, 'timeout');
      assert.match(failed.error!.message, /timeout of 700 ms/);
      assert.equal(failed.attempts, 1);
      assert.ok(failed.progress!.step <= 8, `stopped at step ${failed.progress!.step}`);
    });

    test('SIGTERM releases a running job, which resumes on another worker without using up an attempt', async () => {
      const job = await harness.services.jobs.submit({ type: STEP_JOB, input: { steps: 20, stepMs: 100 } });
      const running = await harness.waitFor('step 3', () => {
        const current = harness.services.jobs.get(job.id)!;
        return (current.progress?.step ?? 0) >= 3 && workerRunning(workers, current) ? current : undefined;
      });
      const leaving = workerRunning(workers, running)!;
      leaving.kill('SIGTERM');
      assert.equal((await leaving.exited).code, 0);
      const result = resultOf(await harness.finished(job.id));
      assert.notEqual(result.pid, leaving.pid);
      assert.equal(result.attempt, 1);
      assert.ok(result.resumedFrom >= 3);
      assert.ok(events(harness, job.id).some((event) => event.kind === 'released'));
      workers = [workers.find((worker) => worker !== leaving)!, await harness.startWorker({ concurrency: CPU_CONCURRENCY })];
    });
  });
}
