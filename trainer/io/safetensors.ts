// safetensors: u64-LE header length, a JSON header {name: {dtype, shape, data_offsets}, __metadata__?}, then raw
// little-endian tensor bytes. Reading is per tensor straight from the file, so a multi-GB checkpoint is never held
// whole in memory; writing streams tensor by tensor into a temp file that is renamed into place.
import { closeSync, fstatSync, openSync, readSync, renameSync, writeSync, unlinkSync } from 'node:fs';
import {
  bfloat16ArrayToFloat32,
  float16ArrayToFloat32,
  float32ArrayToBfloat16,
  float32ArrayToFloat16,
} from './half.ts';

export const DTYPE_SIZES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
} as const;
export type Dtype = keyof typeof DTYPE_SIZES;

export interface TensorInfo {
  dtype: Dtype;
  shape: number[];
  /** byte range relative to the start of the data section */
  dataOffsets: [number, number];
}

export type TypedData = Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array | Uint16Array | BigInt64Array;

export interface RawTensor {
  dtype: Dtype;
  shape: number[];
  data: TypedData;
}

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

/** Headers beyond this are refused before they are read: real checkpoints stay far below it. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export interface ParsedHeader {
  headerBytes: number;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  dataBytes: number;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Validates a header against the total file size: known dtypes, consistent sizes, no overlaps and no holes. */
export function parseHeader(headerJson: string, headerBytes: number, fileBytes: number, source: string): ParsedHeader {
  let header: unknown;
  try {
    header = JSON.parse(headerJson);
  } catch (error) {
    throw new SafetensorsError(`${source}: header is not valid JSON (${(error as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new SafetensorsError(`${source}: header must be a JSON object`);
  }
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, value] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new SafetensorsError(`${source}: __metadata__ must be an object of strings`);
      }
      for (const [key, text] of Object.entries(value as Record<string, unknown>)) {
        if (typeof text !== 'string') throw new SafetensorsError(`${source}: __metadata__.${key} is not a string`);
        metadata[key] = text;
      }
      continue;
    }
    tensors.set(name, parseTensorInfo(name, value, source));
  }
  const ordered = [...tensors.entries()].sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0]);
  let cursor = 0;
  for (const [name, info] of ordered) {
    const [begin, end] = info.dataOffsets;
    if (begin !== cursor) {
      throw new SafetensorsError(
        `${source}: tensor '${name}' starts at byte ${begin} but the previous tensor ends at ${cursor} (${begin > cursor ? 'hole' : 'overlap'} in the data section)`,
      );
    }
    cursor = end;
  }
  const dataBytes = fileBytes - 8 - headerBytes;
  if (cursor !== dataBytes) {
    throw new SafetensorsError(`${source}: tensors cover ${cursor} bytes but the data section has ${dataBytes} (truncated or padded file)`);
  }
  return { headerBytes, tensors, metadata, dataBytes };
}

function parseTensorInfo(name: string, value: unknown, source: string): TensorInfo {
  const entry = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof value !== 'object' || value === null) throw new SafetensorsError(`${source}: entry '${name}' is not an object`);
  if (typeof entry.dtype !== 'string' || !(entry.dtype in DTYPE_SIZES)) {
    throw new SafetensorsError(`${source}: tensor '${name}' has unsupported dtype ${JSON.stringify(entry.dtype)}`);
  }
  const dtype = entry.dtype as Dtype;
  if (!Array.isArray(entry.shape) || !entry.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError(`${source}: tensor '${name}' has an invalid shape ${JSON.stringify(entry.shape)}`);
  }
  const offsets = entry.data_offsets;
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[1] < offsets[0]
  ) {
    throw new SafetensorsError(`${source}: tensor '${name}' has invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  const shape = entry.shape as number[];
  const expected = numel(shape) * DTYPE_SIZES[dtype];
  if (offsets[1] - offsets[0] !== expected) {
    throw new SafetensorsError(
      `${source}: tensor '${name}' (${dtype} [${shape.join(',')}]) needs ${expected} bytes but data_offsets span ${offsets[1] - offsets[0]}`,
    );
  }
  return { dtype, shape, dataOffsets: [offsets[0], offsets[1]] };
}

function typedFromBytes(dtype: Dtype, bytes: Uint8Array): TypedData {
  // `bytes` always starts at offset 0 of its own buffer, so every view is aligned.
  const { buffer, byteLength } = bytes;
  switch (dtype) {
    case 'F64':
      return new Float64Array(buffer, 0, byteLength / 8);
    case 'F32':
      return new Float32Array(buffer, 0, byteLength / 4);
    case 'F16':
    case 'BF16':
      return new Uint16Array(buffer, 0, byteLength / 2);
    case 'I64':
      return new BigInt64Array(buffer, 0, byteLength / 8);
    case 'I32':
      return new Int32Array(buffer, 0, byteLength / 4);
    case 'I16':
      return new Int16Array(buffer, 0, byteLength / 2);
    case 'I8':
      return new Int8Array(buffer, 0, byteLength);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(buffer, 0, byteLength);
  }
}

/** Converts any floating dtype to float32 (F32 data is returned as is). */
export function toFloat32(tensor: RawTensor): Float32Array {
  switch (tensor.dtype) {
    case 'F32':
      return tensor.data as Float32Array;
    case 'F16':
      return float16ArrayToFloat32(tensor.data as Uint16Array);
    case 'BF16':
      return bfloat16ArrayToFloat32(tensor.data as Uint16Array);
    case 'F64':
      return Float32Array.from(tensor.data as Float64Array);
    default:
      throw new SafetensorsError(`expected a floating-point tensor, got ${tensor.dtype}`);
  }
}

/** Converts integer dtypes to int32, refusing values that do not fit. */
export function toInt32(tensor: RawTensor): Int32Array {
  if (tensor.dtype === 'I32') return tensor.data as Int32Array;
  if (tensor.dtype === 'I64') {
    const source = tensor.data as BigInt64Array;
    const out = new Int32Array(source.length);
    for (let i = 0; i < source.length; i++) {
      const v = source[i]!;
      if (v > 2147483647n || v < -2147483648n) throw new SafetensorsError(`int64 value ${v} does not fit in int32`);
      out[i] = Number(v);
    }
    return out;
  }
  if (tensor.dtype === 'I16' || tensor.dtype === 'I8' || tensor.dtype === 'U8' || tensor.dtype === 'BOOL') {
    return Int32Array.from(tensor.data as ArrayLike<number>);
  }
  throw new SafetensorsError(`expected an integer tensor, got ${tensor.dtype}`);
}

/** An open safetensors file; tensors are read on demand. */
export class SafetensorsFile {
  private fd: number | null;
  readonly tensors: Map<string, TensorInfo>;
  readonly metadata: Record<string, string>;
  private readonly dataStart: number;

  private constructor(readonly path: string, fd: number, header: ParsedHeader) {
    this.fd = fd;
    this.tensors = header.tensors;
    this.metadata = header.metadata;
    this.dataStart = 8 + header.headerBytes;
  }

  static open(path: string): SafetensorsFile {
    refusePickle(path);
    const fd = openSync(path, 'r');
    try {
      const fileBytes = fstatSync(fd).size;
      if (fileBytes < 8) throw new SafetensorsError(`${path}: file is ${fileBytes} bytes, too short for a safetensors header`);
      const lengthBytes = Buffer.alloc(8);
      readSync(fd, lengthBytes, 0, 8, 0);
      const headerBytes = Number(lengthBytes.readBigUInt64LE(0));
      if (headerBytes > MAX_HEADER_BYTES || 8 + headerBytes > fileBytes) {
        throw new SafetensorsError(`${path}: header length ${headerBytes} is impossible for a ${fileBytes}-byte file (not a safetensors file?)`);
      }
      const headerBuffer = Buffer.alloc(headerBytes);
      readSync(fd, headerBuffer, 0, headerBytes, 8);
      const header = parseHeader(headerBuffer.toString('utf8'), headerBytes, fileBytes, path);
      return new SafetensorsFile(path, fd, header);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  keys(): string[] {
    return [...this.tensors.keys()];
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new SafetensorsError(`${this.path}: no tensor named '${name}'`);
    return info;
  }

  read(name: string): RawTensor {
    if (this.fd === null) throw new SafetensorsError(`${this.path}: file is closed`);
    const info = this.info(name);
    const [begin, end] = info.dataOffsets;
    const bytes = new Uint8Array(end - begin);
    let done = 0;
    while (done < bytes.length) {
      const n = readSync(this.fd, bytes, done, bytes.length - done, this.dataStart + begin + done);
      if (n === 0) throw new SafetensorsError(`${this.path}: unexpected end of file reading '${name}'`);
      done += n;
    }
    return { dtype: info.dtype, shape: info.shape, data: typedFromBytes(info.dtype, bytes) };
  }

  readFloat32(name: string): { shape: number[]; data: Float32Array } {
    const tensor = this.read(name);
    return { shape: tensor.shape, data: toFloat32(tensor) };
  }

  readInt32(name: string): { shape: number[]; data: Int32Array } {
    const tensor = this.read(name);
    return { shape: tensor.shape, data: toInt32(tensor) };
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** Parses a safetensors file held in memory (uploads, packs); tensor data are copied out on read. */
export function parseSafetensorsBuffer(buffer: Uint8Array, source = 'buffer'): {
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  read(name: string): RawTensor;
} {
  if (buffer.byteLength < 8) throw new SafetensorsError(`${source}: ${buffer.byteLength} bytes, too short for a safetensors header`);
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const headerBytes = Number(view.getBigUint64(0, true));
  if (headerBytes > MAX_HEADER_BYTES || 8 + headerBytes > buffer.byteLength) {
    throw new SafetensorsError(`${source}: header length ${headerBytes} is impossible for a ${buffer.byteLength}-byte file`);
  }
  const headerText = new TextDecoder('utf-8', { fatal: false }).decode(buffer.subarray(8, 8 + headerBytes));
  const header = parseHeader(headerText, headerBytes, buffer.byteLength, source);
  const dataStart = 8 + headerBytes;
  return {
    tensors: header.tensors,
    metadata: header.metadata,
    read(name: string): RawTensor {
      const info = header.tensors.get(name);
      if (!info) throw new SafetensorsError(`${source}: no tensor named '${name}'`);
      // Uint8Array's slice copies; a Node Buffer's would share memory, and typedFromBytes views from offset 0.
      const bytes = Uint8Array.prototype.slice.call(buffer, dataStart + info.dataOffsets[0], dataStart + info.dataOffsets[1]);
      return { dtype: info.dtype, shape: info.shape, data: typedFromBytes(info.dtype, bytes) };
    },
  };
}

export interface TensorToWrite {
  dtype: Dtype;
  shape: readonly number[];
  /** Float32Array data may be written as F32, F16 or BF16; other dtypes need data of their own type. */
  data: TypedData;
}

function encodeTensor(name: string, tensor: TensorToWrite): Uint8Array {
  const expected = numel(tensor.shape);
  if (tensor.data.length !== expected) {
    throw new SafetensorsError(`tensor '${name}': shape [${tensor.shape.join(',')}] needs ${expected} values, got ${tensor.data.length}`);
  }
  let data: TypedData = tensor.data;
  if (data instanceof Float32Array && tensor.dtype === 'F16') data = float32ArrayToFloat16(data);
  else if (data instanceof Float32Array && tensor.dtype === 'BF16') data = float32ArrayToBfloat16(data);
  else if (data instanceof Int32Array && tensor.dtype === 'I64') data = BigInt64Array.from(data, (v) => BigInt(v));
  if (data.BYTES_PER_ELEMENT !== DTYPE_SIZES[tensor.dtype]) {
    throw new SafetensorsError(`tensor '${name}': ${data.constructor.name} cannot be written as ${tensor.dtype}`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function buildHeader(entries: [string, TensorToWrite][], metadata?: Record<string, string>): Buffer {
  const json: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) json.__metadata__ = metadata;
  let offset = 0;
  for (const [name, tensor] of entries) {
    if (name === '__metadata__') throw new SafetensorsError(`'__metadata__' is reserved and cannot name a tensor`);
    const size = numel(tensor.shape) * DTYPE_SIZES[tensor.dtype];
    json[name] = { dtype: tensor.dtype, shape: [...tensor.shape], data_offsets: [offset, offset + size] };
    offset += size;
  }
  let text = JSON.stringify(json);
  // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
  const pad = (8 - ((8 + Buffer.byteLength(text)) % 8)) % 8;
  text += ' '.repeat(pad);
  const header = Buffer.alloc(8 + Buffer.byteLength(text));
  header.writeBigUInt64LE(BigInt(Buffer.byteLength(text)), 0);
  header.write(text, 8, 'utf8');
  return header;
}

/** Serialises tensors to one buffer (for small files such as embeddings and packs). */
export function serializeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Buffer {
  const entries = Object.entries(tensors);
  const header = buildHeader(entries, metadata);
  return Buffer.concat([header, ...entries.map(([name, tensor]) => encodeTensor(name, tensor))]);
}

/** Writes tensors to `path` atomically: a temp file is streamed tensor by tensor, then renamed. */
export function writeSafetensors(path: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): void {
  const entries = Object.entries(tensors);
  const header = buildHeader(entries, metadata);
  const tempPath = `${path}.tmp-${process.pid}-${Date.now()}`;
  const fd = openSync(tempPath, 'w');
  try {
    writeSync(fd, header);
    for (const [name, tensor] of entries) writeSync(fd, encodeTensor(name, tensor));
    closeSync(fd);
    renameSync(tempPath, path);
  } catch (error) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    try {
      unlinkSync(tempPath);
    } catch {
      // never created
    }
    throw error;
  }
}

const PICKLE_SUFFIXES = ['.bin', '.ckpt', '.pt', '.pth', '.pkl'];

/** Pickle checkpoints can run arbitrary code when loaded, so they are refused outright. */
export function refusePickle(path: string): void {
  const lower = path.toLowerCase();
  const suffix = PICKLE_SUFFIXES.find((s) => lower.endsWith(s));
  if (suffix) {
    throw new SafetensorsError(
      `${path}: ${suffix} files are Python pickles, which can execute code when loaded and are not supported. ` +
        `Convert them to .safetensors (e.g. diffusers: pipe.save_pretrained(dir, safe_serialization=True); ` +
        `torch: safetensors.torch.save_file(state_dict, "model.safetensors")).`,
    );
  }
}
