// Registers the addon's fused kernels (Mifo*) for the wasm backend, each with its gradient, so tfjs autodiff runs
// through them. Forward kernels output what their backward needs (normalisation mean and 1/σ, attention log-sum-exp);
// the ops in fused.ts hide those extra outputs.
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './native.ts';
import { type BackendWasm, heapBuffer, heapOffset, type TensorInfo } from './wasm_heap.ts';

export const FUSED = {
  silu: 'MifoSilu',
  siluGrad: 'MifoSiluGrad',
  gelu: 'MifoGelu',
  geluGrad: 'MifoGeluGrad',
  softmax: 'MifoSoftmax',
  softmaxGrad: 'MifoSoftmaxGrad',
  groupNorm: 'MifoGroupNorm',
  groupNormGrad: 'MifoGroupNormGrad',
  layerNorm: 'MifoLayerNorm',
  layerNormGrad: 'MifoLayerNormGrad',
  attention: 'MifoAttention',
  attentionMasked: 'MifoAttentionMasked',
  attentionGrad: 'MifoAttentionGrad',
  adamw: 'MifoAdamW',
} as const;

type Args = { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: any };

function get(inputs: tf.NamedTensorInfoMap, name: string): TensorInfo {
  const info = inputs[name];
  if (!info) throw new Error(`missing input '${name}'`);
  if (info.dtype !== 'float32') throw new Error(`input '${name}' must be float32, got ${info.dtype}`);
  return info;
}

const size = (shape: number[]) => tf.util.sizeFromShape(shape);
const lastDim = (shape: number[]) => shape[shape.length - 1] ?? 1;

function register(kernelName: string, kernelFunc: (args: Args) => TensorInfo | TensorInfo[]): void {
  if (tf.getKernel(kernelName, 'wasm')) tf.unregisterKernel(kernelName, 'wasm');
  tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
}

function run(kernelName: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown> = {}): tf.Tensor[] {
  const out = tf.engine().runKernel(kernelName, inputs as tf.NamedTensorMap, attrs as tf.NamedAttrMap);
  return Array.isArray(out) ? out : [out as tf.Tensor];
}

/** Gradient of a broadcast operand: sum dy over the axes `shape` was broadcast along. */
function sumToShape(dy: tf.Tensor, shape: number[]): tf.Tensor {
  const axes = tf.broadcast_util.getReductionAxes(shape, dy.shape);
  const reduced = axes.length > 0 ? tf.sum(dy, axes, true) : dy;
  return tf.reshape(reduced, shape);
}

/**
 * Strides that read a mask broadcast to [B, H, N, M]: 0 along broadcast axes. Throws when the shapes do not
 * broadcast.
 */
export function maskStrides(maskShape: number[], target: [number, number, number, number]): [number, number, number, number] {
  if (maskShape.length > 4) throw new Error(`attention mask rank ${maskShape.length} > 4`);
  const padded = [...Array(4 - maskShape.length).fill(1), ...maskShape] as number[];
  const strides = [0, 0, 0, 0] as [number, number, number, number];
  let stride = 1;
  for (let axis = 3; axis >= 0; axis--) {
    const extent = padded[axis]!;
    if (extent !== 1 && extent !== target[axis]) {
      throw new Error(`attention mask of shape [${maskShape}] does not broadcast to [${target}]`);
    }
    strides[axis] = extent === 1 ? 0 : stride;
    stride *= extent;
  }
  return strides;
}

export function registerFusedKernels(native: NativeAddon): void {
  const activations = [
    { name: FUSED.silu, grad: FUSED.siluGrad, forward: native.silu, backward: native.siluGrad },
    { name: FUSED.gelu, grad: FUSED.geluGrad, forward: native.gelu, backward: native.geluGrad },
  ];
  for (const activation of activations) {
    register(activation.name, ({ inputs, backend }) => {
      const x = get(inputs, 'x');
      const y = backend.makeOutput([...x.shape], 'float32');
      if (size(x.shape) > 0) activation.forward(heapBuffer(backend), heapOffset(backend, x), heapOffset(backend, y), size(x.shape));
      return y;
    });
    register(activation.grad, ({ inputs, backend }) => {
      const dy = get(inputs, 'dy');
      const x = get(inputs, 'x');
      const dx = backend.makeOutput([...x.shape], 'float32');
      if (size(x.shape) > 0) {
        activation.backward(heapBuffer(backend), heapOffset(backend, dy), heapOffset(backend, x), heapOffset(backend, dx), size(x.shape));
      }
      return dx;
    });
    tf.registerGradient({
      kernelName: activation.name,
      inputsToSave: ['x'],
      gradFunc: (dy, saved) => {
        const [x] = saved as [tf.Tensor];
        return { x: () => run(activation.grad, { dy: dy as tf.Tensor, x })[0]! };
      },
    });
  }

  register(FUSED.softmax, ({ inputs, backend }) => {
    const x = get(inputs, 'x');
    const y = backend.makeOutput([...x.shape], 'float32');
    const cols = lastDim(x.shape);
    if (size(x.shape) > 0) native.softmax(heapBuffer(backend), heapOffset(backend, x), heapOffset(backend, y), size(x.shape) / cols, cols);
    return y;
  });
  register(FUSED.softmaxGrad, ({ inputs, backend }) => {
    const dy = get(inputs, 'dy');
    const y = get(inputs, 'y');
    const dx = backend.makeOutput([...y.shape], 'float32');
    const cols = lastDim(y.shape);
    if (size(y.shape) > 0) {
      native.softmaxGrad(heapBuffer(backend), heapOffset(backend, dy), heapOffset(backend, y), heapOffset(backend, dx), size(y.shape) / cols, cols);
    }
    return dx;
  });
  tf.registerGradient({
    kernelName: FUSED.softmax,
    outputsToSave: [true],
    gradFunc: (dy, saved) => {
      const [y] = saved as [tf.Tensor];
      return { x: () => run(FUSED.softmaxGrad, { dy: dy as tf.Tensor, y })[0]! };
    },
  });

  register(FUSED.groupNorm, ({ inputs, backend, attrs }) => {
    const x = get(inputs, 'x');
    const gamma = get(inputs, 'gamma');
    const beta = get(inputs, 'beta');
    const [batch, height, width, channels] = x.shape as [number, number, number, number];
    const y = backend.makeOutput([...x.shape], 'float32');
    const mean = backend.makeOutput([batch, attrs.groups], 'float32');
    const rstd = backend.makeOutput([batch, attrs.groups], 'float32');
    native.groupNorm(
      heapBuffer(backend), heapOffset(backend, x), heapOffset(backend, gamma), heapOffset(backend, beta),
      heapOffset(backend, y), heapOffset(backend, mean), heapOffset(backend, rstd),
      batch, height * width, channels, attrs.groups, attrs.eps,
    );
    return [y, mean, rstd];
  });
  register(FUSED.groupNormGrad, ({ inputs, backend, attrs }) => {
    const x = get(inputs, 'x');
    const [batch, height, width, channels] = x.shape as [number, number, number, number];
    const dx = backend.makeOutput([...x.shape], 'float32');
    const dgamma = backend.makeOutput([channels], 'float32');
    const dbeta = backend.makeOutput([channels], 'float32');
    native.groupNormGrad(
      heapBuffer(backend), heapOffset(backend, get(inputs, 'dy')), heapOffset(backend, x), heapOffset(backend, get(inputs, 'gamma')),
      heapOffset(backend, get(inputs, 'mean')), heapOffset(backend, get(inputs, 'rstd')),
      heapOffset(backend, dx), heapOffset(backend, dgamma), heapOffset(backend, dbeta),
      batch, height * width, channels, attrs.groups,
    );
    return [dx, dgamma, dbeta];
  });
  tf.registerGradient({
    kernelName: FUSED.groupNorm,
    inputsToSave: ['x', 'gamma'],
    outputsToSave: [false, true, true],
    gradFunc: (dys, saved, attrs) => {
      const [x, gamma, mean, rstd] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
      const [dx, dgamma, dbeta] = run(FUSED.groupNormGrad, { dy: (dys as tf.Tensor[])[0]!, x, gamma, mean, rstd }, { groups: attrs.groups });
      return { x: () => dx!, gamma: () => dgamma!, beta: () => dbeta! };
    },
  });

  register(FUSED.layerNorm, ({ inputs, backend, attrs }) => {
    const x = get(inputs, 'x');
    const cols = lastDim(x.shape);
    const rows = size(x.shape) / cols;
    const y = backend.makeOutput([...x.shape], 'float32');
    const mean = backend.makeOutput([rows], 'float32');
    const rstd = backend.makeOutput([rows], 'float32');
    native.layerNorm(
      heapBuffer(backend), heapOffset(backend, x), heapOffset(backend, get(inputs, 'gamma')), heapOffset(backend, get(inputs, 'beta')),
      heapOffset(backend, y), heapOffset(backend, mean), heapOffset(backend, rstd), rows, cols, attrs.eps,
    );
    return [y, mean, rstd];
  });
  register(FUSED.layerNormGrad, ({ inputs, backend }) => {
    const x = get(inputs, 'x');
    const cols = lastDim(x.shape);
    const dx = backend.makeOutput([...x.shape], 'float32');
    const dgamma = backend.makeOutput([cols], 'float32');
    const dbeta = backend.makeOutput([cols], 'float32');
    native.layerNormGrad(
      heapBuffer(backend), heapOffset(backend, get(inputs, 'dy')), heapOffset(backend, x), heapOffset(backend, get(inputs, 'gamma')),
      heapOffset(backend, get(inputs, 'mean')), heapOffset(backend, get(inputs, 'rstd')),
      heapOffset(backend, dx), heapOffset(backend, dgamma), heapOffset(backend, dbeta), size(x.shape) / cols, cols,
    );
    return [dx, dgamma, dbeta];
  });
  tf.registerGradient({
    kernelName: FUSED.layerNorm,
    inputsToSave: ['x', 'gamma'],
    outputsToSave: [false, true, true],
    gradFunc: (dys, saved) => {
      const [x, gamma, mean, rstd] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
      const [dx, dgamma, dbeta] = run(FUSED.layerNormGrad, { dy: (dys as tf.Tensor[])[0]!, x, gamma, mean, rstd });
      return { x: () => dx!, gamma: () => dgamma!, beta: () => dbeta! };
    },
  });

  const attentionForward = ({ inputs, backend, attrs }: Args): TensorInfo[] => {
    const q = get(inputs, 'q');
    const k = get(inputs, 'k');
    const v = get(inputs, 'v');
    const mask = inputs.mask ? get(inputs, 'mask') : null;
    const [batch, heads, queries, headDim] = q.shape as [number, number, number, number];
    const keys = k.shape[2]!;
    const strides: [number, number, number, number] = mask ? maskStrides(mask.shape, [batch, heads, queries, keys]) : [0, 0, 0, 0];
    const out = backend.makeOutput([...q.shape], 'float32');
    const lse = backend.makeOutput([batch, heads, queries], 'float32');
    const probs = attrs.returnProbs ? backend.makeOutput([batch, heads, queries, keys], 'float32') : null;
    native.attention(
      heapBuffer(backend), batch, heads, queries, keys, headDim, attrs.scale,
      heapOffset(backend, q), heapOffset(backend, k), heapOffset(backend, v), mask ? heapOffset(backend, mask) : -1, ...strides,
      heapOffset(backend, out), heapOffset(backend, lse), probs ? heapOffset(backend, probs) : -1,
    );
    return probs ? [out, lse, probs] : [out, lse];
  };
  register(FUSED.attention, attentionForward);
  register(FUSED.attentionMasked, attentionForward);
  register(FUSED.attentionGrad, ({ inputs, backend, attrs }) => {
    const q = get(inputs, 'q');
    const k = get(inputs, 'k');
    const v = get(inputs, 'v');
    const mask = inputs.mask ? get(inputs, 'mask') : null;
    const probs = inputs.probs ? get(inputs, 'probs') : null;
    const dprobs = inputs.dprobs ? get(inputs, 'dprobs') : null;
    const [batch, heads, queries, headDim] = q.shape as [number, number, number, number];
    const keys = k.shape[2]!;
    const strides: [number, number, number, number] = mask ? maskStrides(mask.shape, [batch, heads, queries, keys]) : [0, 0, 0, 0];
    const dq = backend.makeOutput([...q.shape], 'float32');
    const dk = backend.makeOutput([...k.shape], 'float32');
    const dv = backend.makeOutput([...v.shape], 'float32');
    native.attentionGrad(
      heapBuffer(backend), batch, heads, queries, keys, headDim, attrs.scale,
      heapOffset(backend, q), heapOffset(backend, k), heapOffset(backend, v), mask ? heapOffset(backend, mask) : -1, ...strides,
      heapOffset(backend, get(inputs, 'lse')), probs ? heapOffset(backend, probs) : -1, heapOffset(backend, get(inputs, 'dout')),
      dprobs ? heapOffset(backend, dprobs) : -1, heapOffset(backend, dq), heapOffset(backend, dk), heapOffset(backend, dv),
    );
    return [dq, dk, dv];
  });
  for (const [kernelName, masked] of [[FUSED.attention, false], [FUSED.attentionMasked, true]] as const) {
    tf.registerGradient({
      kernelName,
      inputsToSave: masked ? ['q', 'k', 'v', 'mask'] : ['q', 'k', 'v'],
      outputsToSave: [false, true, true],
      gradFunc: (dys, saved, attrs) => {
        const [dout, , dprobsOrUndefined] = dys as tf.Tensor[];
        const [q, k, v, ...rest] = saved as tf.Tensor[];
        const mask = masked ? rest.shift()! : null;
        const [lse, probs] = rest as [tf.Tensor, tf.Tensor | undefined];
        const dprobs = attrs.returnProbs ? dprobsOrUndefined : undefined;
        const inputs: Record<string, tf.Tensor> = { q: q!, k: k!, v: v!, lse, dout: dout! };
        if (mask) inputs.mask = mask;
        if (probs) inputs.probs = probs;
        if (dprobs) inputs.dprobs = dprobs;
        const [dq, dk, dv] = run(FUSED.attentionGrad, inputs, { scale: attrs.scale });
        const grads: Record<string, () => tf.Tensor> = { q: () => dq!, k: () => dk!, v: () => dv! };
        // A mask is normally a constant; when it does need a gradient, recompute it with plain ops.
        if (mask) grads.mask = () => attentionMaskGradient(q!, k!, v!, mask, dout!, dprobs, attrs.scale as number);
        return grads;
      },
    });
  }

  register(FUSED.adamw, ({ inputs, backend, attrs }) => {
    const param = get(inputs, 'param');
    const n = size(param.shape);
    const paramOut = backend.makeOutput([...param.shape], 'float32');
    const mOut = backend.makeOutput([...param.shape], 'float32');
    const vOut = backend.makeOutput([...param.shape], 'float32');
    if (n > 0) {
      native.adamw(
        heapBuffer(backend), heapOffset(backend, param), heapOffset(backend, get(inputs, 'grad')), heapOffset(backend, get(inputs, 'm')),
        heapOffset(backend, get(inputs, 'v')), heapOffset(backend, paramOut), heapOffset(backend, mOut), heapOffset(backend, vOut), n,
        attrs.learningRate, attrs.beta1, attrs.beta2, attrs.epsilon, attrs.weightDecay, attrs.step,
      );
    }
    return [paramOut, mOut, vOut];
  });
}

function attentionMaskGradient(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, mask: tf.Tensor, dout: tf.Tensor, dprobs: tf.Tensor | undefined, scale: number): tf.Tensor {
  return tf.tidy(() => {
    const probs = tf.softmax(tf.add(tf.mul(tf.matMul(q, k, false, true), scale), mask));
    let dp = tf.matMul(dout, v, false, true);
    if (dprobs) dp = tf.add(dp, dprobs);
    const dscores = tf.mul(probs, tf.sub(dp, tf.sum(tf.mul(probs, dp), -1, true)));
    return sumToShape(dscores, mask.shape);
  });
}
