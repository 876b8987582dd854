/**
 * The external data file a graph's weights go into. Each tensor is appended as it is
 * produced (so a 7B layer never sits in memory twice) and the graph records where it landed.
 */
import type { ExternalRef } from '../onnx/graph-builder.ts';

export interface WeightFile {
  /** File name relative to the package, as written into the graph's external_data. */
  location: string;
  append(bytes: Uint8Array): Promise<ExternalRef>;
}

/** Large tensors start on a 4 KiB boundary so runtimes may map them; small ones on 64 bytes. */
export function alignmentFor(length: number): number {
  return length >= 1 << 20 ? 4096 : 64;
}

/** A WeightFile over any byte writer; pads between tensors to keep them aligned. */
export function createWeightFile(location: string, write: (bytes: Uint8Array) => Promise<void>): WeightFile & { size(): number } {
  let size = 0;
  return {
    location,
    size: () => size,
    async append(bytes) {
      const align = alignmentFor(bytes.byteLength);
      const pad = (align - (size % align)) % align;
      if (pad > 0) {
        await write(new Uint8Array(pad));
        size += pad;
      }
      const offset = size;
      await write(bytes);
      size += bytes.byteLength;
      return { location, offset, length: bytes.byteLength };
    },
  };
}

export function floatBytes(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}
