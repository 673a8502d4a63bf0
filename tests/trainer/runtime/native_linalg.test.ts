// Native GEMM and convolution kernels against the tfjs cpu backend (values) and end-to-end gradients through tf.grads
// (native wasm vs cpu). Kernel-level tests skip when the addon is not active (MIFO_NATIVE=0 or not built); the
// gradient test runs either way.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { initRuntime, tf } from '../../../trainer/runtime/backend.ts';
import { nativeAddon, nativeStatus, replacedWasmKernel } from '../../../trainer/runtime/native.ts';
import { repoRoot } from '../../helpers.ts';
import { assertAllClose, cpuKernel, randomTensor, wasmKernel } from './kernel_helpers.ts';

// Skip decisions are made while tests are declared, so the runtime must be up before that.
await initRuntime();
type TensorInfoLike = { dataId: object; shape: number[] };
const skipNative = () => (nativeStatus().active ? false : `native kernels off: ${nativeStatus().reason}`);

function registered(kernelName: string) {
  const kernel = tf.getKernel(kernelName, 'wasm');
  assert.ok(kernel, `${kernelName} is registered`);
  return kernel.kernelFunc as Parameters<typeof wasmKernel>[0];
}

const matMulCases = [
  { name: '2D', a: [5, 7], b: [7, 3], transposeA: false, transposeB: false },
  { name: '3D transposeA', a: [2, 7, 5], b: [2, 7, 3], transposeA: true, transposeB: false },
  { name: '3D transposeB', a: [2, 5, 7], b: [2, 3, 7], transposeA: false, transposeB: true },
  { name: '3D both transposed', a: [3, 7, 5], b: [3, 4, 7], transposeA: true, transposeB: true },
  { name: 'rank 4', a: [2, 3, 4, 6], b: [2, 3, 6, 5], transposeA: false, transposeB: false },
  { name: 'shared right operand', a: [4, 5, 6], b: [6, 3], transposeA: false, transposeB: false },
  { name: 'shared right operand, transposeB', a: [4, 5, 6], b: [1, 3, 6], transposeA: false, transposeB: true },
  { name: 'shared left operand', a: [5, 6], b: [3, 6, 2], transposeA: false, transposeB: false },
  { name: 'large, split over threads by rows', a: [300, 200], b: [200, 100], transposeA: false, transposeB: false },
  { name: 'large, split by columns, both transposed', a: [200, 40], b: [300, 200], transposeA: true, transposeB: true },
  { name: 'cross broadcast (falls back)', a: [2, 1, 3, 4], b: [1, 3, 4, 2], transposeA: false, transposeB: false },
];

const convCases = [
  { name: '3x3 same', x: [2, 7, 6, 5], filter: [3, 3, 5, 4], strides: 1, pad: 'same', dilations: 1 },
  { name: '3x3 stride 2, explicit pad 1', x: [2, 9, 8, 3], filter: [3, 3, 3, 6], strides: 2, pad: 1, dilations: 1 },
  { name: '1x1', x: [3, 4, 5, 8], filter: [1, 1, 8, 7], strides: 1, pad: 'valid', dilations: 1 },
  { name: '1x1 stride 2', x: [1, 6, 6, 4], filter: [1, 1, 4, 3], strides: 2, pad: 'valid', dilations: 1 },
  { name: 'valid, odd sizes, stride [1,2]', x: [1, 6, 5, 2], filter: [3, 2, 2, 3], strides: [1, 2], pad: 'valid', dilations: 1 },
  { name: 'padding wider than the filter', x: [1, 4, 4, 2], filter: [3, 3, 2, 3], strides: 1, pad: 3, dilations: 1 },
  { name: 'asymmetric padding', x: [2, 5, 5, 3], filter: [3, 3, 3, 2], strides: 1, pad: [[0, 0], [0, 2], [1, 0], [0, 0]], dilations: 1 },
] as const;

function convInfo(c: (typeof convCases)[number], dilations: number | readonly number[] = 1) {
  return tf.backend_util.computeConv2DInfo(
    [...c.x] as [number, number, number, number],
    [...c.filter] as [number, number, number, number],
    c.strides as number,
    dilations as number,
    c.pad as 'same',
  );
}

describe('native GEMM and convolution kernels', () => {
  test('the runtime runs on the wasm backend', async () => {
    assert.equal((await initRuntime()).engine, 'wasm');
  });

  for (const c of matMulCases) {
    test(`BatchMatMul ${c.name}`, { skip: skipNative() }, () => {
      const a = randomTensor(c.a, 1);
      const b = randomTensor(c.b, 2);
      const attrs = { transposeA: c.transposeA, transposeB: c.transposeB };
      assertAllClose(wasmKernel(registered('BatchMatMul'), { a, b }, attrs), cpuKernel('BatchMatMul', { a, b }, attrs), c.name);
    });
  }

  for (const c of convCases) {
    test(`Conv2D ${c.name}`, { skip: skipNative() }, () => {
      const x = randomTensor([...c.x], 3);
      const filter = randomTensor([...c.filter], 4);
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', dilations: c.dilations };
      assertAllClose(wasmKernel(registered('Conv2D'), { x, filter }, attrs), cpuKernel('Conv2D', { x, filter }, attrs), 'y');
    });

    test(`Conv2DBackpropInput ${c.name}`, { skip: skipNative() }, () => {
      const dy = randomTensor(convInfo(c).outShape, 5);
      const filter = randomTensor([...c.filter], 6);
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', inputShape: [...c.x] };
      const expected = cpuKernel('Conv2DBackpropInput', { dy, filter }, attrs);
      assertAllClose(wasmKernel(registered('Conv2DBackpropInput'), { dy, filter }, attrs), expected, 'dx');
    });

    test(`Conv2DBackpropFilter ${c.name}`, { skip: skipNative() }, () => {
      const x = randomTensor([...c.x], 7);
      const dy = randomTensor(convInfo(c).outShape, 8);
      const attrs = { strides: c.strides, pad: c.pad, dataFormat: 'NHWC', filterShape: [...c.filter] };
      const expected = cpuKernel('Conv2DBackpropFilter', { x, dy }, attrs);
      assertAllClose(wasmKernel(registered('Conv2DBackpropFilter'), { x, dy }, attrs), expected, 'dW');
    });
  }

  test('Conv2D with dilation 2', { skip: skipNative() }, () => {
    const x = randomTensor([2, 9, 8, 3], 9);
    const filter = randomTensor([3, 3, 3, 4], 10);
    const attrs = { strides: 1, pad: 'same', dataFormat: 'NHWC', dilations: 2 };
    assertAllClose(wasmKernel(registered('Conv2D'), { x, filter }, attrs), cpuKernel('Conv2D', { x, filter }, attrs), 'y');
  });

  test('UnsortedSegmentSum (native) matches the cpu backend, dropping out-of-range ids', { skip: skipNative() }, () => {
    const x = randomTensor([9, 4, 3], 15);
    const segmentIds = { values: Int32Array.from([3, 0, 3, -1, 5, 1, 9, 0, 2]), shape: [9], dtype: 'int32' as const };
    const attrs = { numSegments: 6 };
    const expected = cpuKernel('UnsortedSegmentSum', { x, segmentIds }, attrs);
    assertAllClose(wasmKernel(registered('UnsortedSegmentSum'), { x, segmentIds }, attrs), expected, 'segment sum');
  });

  test('Concat along every axis, with an empty part and int32', { skip: skipNative() }, () => {
    const parts = [randomTensor([2, 3, 4], 20), randomTensor([2, 3, 4], 21), randomTensor([2, 3, 4], 22)];
    for (const axis of [0, 1, 2, -1]) {
      assertAllClose(wasmKernel(registered('Concat'), parts, { axis }), cpuKernel('Concat', parts, { axis }), `axis ${axis}`);
    }
    const empty = { values: new Float32Array(0), shape: [2, 0, 4] };
    const withEmpty = [parts[0]!, empty, parts[1]!];
    assertAllClose(wasmKernel(registered('Concat'), withEmpty, { axis: 1 }), cpuKernel('Concat', withEmpty, { axis: 1 }), 'empty part');
    const ints = [
      { values: Int32Array.from([1, 2, 3, 4]), shape: [2, 2], dtype: 'int32' as const },
      { values: Int32Array.from([5, 6]), shape: [2, 1], dtype: 'int32' as const },
    ];
    const joined = wasmKernel(registered('Concat'), ints, { axis: 1 });
    assert.deepEqual(Array.from(joined.values), [1, 2, 5, 3, 4, 6]);
  });

  test('SplitV along a middle and the last axis', { skip: skipNative() }, () => {
    const x = randomTensor([2, 5, 6], 23);
    for (const [axis, numOrSizeSplits] of [[1, [2, -1, 1]], [2, 3], [0, [1, 1]]] as const) {
      const attrs = { axis, numOrSizeSplits };
      const native = registered('SplitV')({ inputs: { x: tf.tensor(x.values, x.shape) }, backend: tf.backend() as never, attrs } as never) as unknown as TensorInfoLike[];
      const backend = tf.backend();
      const cpu = tf.engine().findBackend('cpu')!;
      const reference = tf.getKernel('SplitV', 'cpu')!.kernelFunc({
        inputs: { x: { dataId: cpu.write(x.values, x.shape, 'float32'), shape: x.shape, dtype: 'float32' } },
        backend: cpu,
        attrs: attrs as never,
      }) as unknown as TensorInfoLike[];
      assert.equal(native.length, reference.length);
      native.forEach((part, i) => {
        assert.deepEqual(part.shape, reference[i]!.shape);
        assert.deepEqual(Array.from(backend.readSync(part.dataId) as Float32Array), Array.from(cpu.readSync(reference[i]!.dataId) as Float32Array));
      });
    }
  });

  test('Sum over leading, trailing, middle and all axes, with keepDims', { skip: skipNative() }, () => {
    const x = randomTensor([3, 4, 5, 6], 24);
    for (const [axis, keepDims] of [[[0], false], [[0, 1, 2], false], [[3], true], [[1, 2], false], [[0, 1, 2, 3], true], [[-1, -2], false]] as const) {
      const attrs = { axis: [...axis], keepDims };
      assertAllClose(wasmKernel(registered('Sum'), { x }, attrs), cpuKernel('Sum', { x }, attrs), `axes ${axis}`);
    }
    const attrs = { axis: [0, 2], keepDims: false };
    assertAllClose(wasmKernel(registered('Sum'), { x }, attrs), cpuKernel('Sum', { x }, attrs), 'non-contiguous axes (fallback)');
  });

  test('the native kernels replaced the wasm ones and keep them as fallbacks', { skip: skipNative() }, () => {
    for (const name of ['BatchMatMul', 'Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'UnsortedSegmentSum', 'Concat', 'SplitV', 'Sum']) {
      assert.ok(replacedWasmKernel(name), `${name} keeps its fallback`);
    }
  });

  test('native kernels refuse regions outside the wasm heap', { skip: skipNative() }, () => {
    const native = nativeAddon()!;
    const heap = new ArrayBuffer(64);
    assert.throws(() => native.gemm(heap, 1, 0, 0, 4, 4, 4, 0, 0, 0, 0, 64), /gemm: .*outside the wasm heap/);
    assert.throws(() => native.gemm(heap, 1, 0, 0, 2, 2, 2, 0, 0, 16, 0, 33), /misaligned/);
    const untyped = native.gemm as (...args: unknown[]) => void;
    assert.throws(() => untyped(heap, 1, 0, 0, 2, 2, 2, 0, 0, 16), /expected 12 arguments/);
  });

  test('gradients of a conv + matmul network match the cpu backend', async () => {
    const xData = randomTensor([2, 8, 8, 3], 11);
    const params = [randomTensor([3, 3, 3, 8], 12), randomTensor([3, 3, 8, 8], 13), randomTensor([8, 5], 14)];
    const run = () =>
      tf.tidy(() => {
        const x = tf.tensor4d(xData.values, xData.shape as [number, number, number, number]);
        const loss = (w1: tf.Tensor, w2: tf.Tensor, w3: tf.Tensor, input: tf.Tensor) => {
          const h = tf.relu(tf.conv2d(input as tf.Tensor4D, w1 as tf.Tensor4D, 1, 'same'));
          const down = tf.conv2d(h, w2 as tf.Tensor4D, 2, 1);
          const tokens = tf.reshape(down, [2, 16, 8]);
          const attention = tf.softmax(tf.matMul(tokens, tokens, false, true));
          // (tfjs-core's gradient for a batched-by-unbatched matMul has the wrong shape, so flatten first)
          return tf.sum(tf.matMul(tf.reshape(tf.matMul(attention, tokens), [32, 8]), w3));
        };
        const grads = tf.grads(loss)([...params.map((p) => tf.tensor(p.values, p.shape)), x]);
        return grads.map((g) => ({ values: g.dataSync() as Float32Array, shape: g.shape }));
      });
    const onWasm = run();
    assert.ok(await tf.setBackend('cpu'));
    try {
      const onCpu = run();
      onWasm.forEach((g, i) => assertAllClose(g, onCpu[i]!, `gradient ${i}`, 2e-5));
    } finally {
      assert.ok(await tf.setBackend('wasm'));
    }
  });

  test('MIFO_NATIVE=0 keeps the addon off and says so once at start-up', () => {
    const script = "import { initRuntime } from './trainer/runtime/backend.ts'; await initRuntime();";
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: repoRoot,
      env: { ...process.env, MIFO_NATIVE: '0', MIFO_QUIET: '0' },
      encoding: 'utf8',
    });
    assert.equal(child.status, 0, child.stderr);
    const lines = child.stderr.split('\n').filter((line) => line.includes('tensor engine'));
    assert.equal(lines.length, 1, child.stderr);
    assert.match(lines[0]!, /native kernels off: disabled by MIFO_NATIVE=0/);
  });
});
