/**
 * A WebGPU stand-in for Node tests of the probes and the handshake (Node has no WebGPU): it
 * keeps buffers as bytes and executes a submission on the CPU, a "matmul dispatch" by
 * multiplying the bound buffers, so the probes' sizing, read-back and result checks run for
 * real. `matmul: 'wrong'` leaves a tile of the result unwritten, as a broken shader or driver would. Only tests
 * import it; the real shader runs in the browser tests (e2e/handshake.test.ts).
 */
import { BufferUsage } from '../../worker/device/webgpu-probe.ts';

export interface FakeGpuOptions {
  info?: { vendor: string; architecture: string; device: string; description: string; isFallbackAdapter?: boolean };
  limits?: Record<string, number>;
  features?: string[];
  /** 'wrong' leaves C's last 64×64 tile unwritten, as a dispatch one workgroup short would */
  matmul?: 'correct' | 'wrong';
  /** copies into buffers that cannot be mapped (the benchmark's, not read-backs) do nothing */
  copy?: 'correct' | 'skipped';
  /** reported by the first popErrorScope */
  validationError?: string;
}

export const FAKE_ADAPTER_INFO = { vendor: 'fake', architecture: 'cpu-in-a-test', device: '0x1234', description: 'infermesh fake adapter' };

export const FAKE_LIMITS: Record<string, number> = {
  maxBufferSize: 256 << 20,
  maxStorageBufferBindingSize: 128 << 20,
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupsPerDimension: 65535,
};

/** Limits as browsers expose them: accessors on the prototype, no own properties. */
function prototypeLimits(values: Record<string, number>): object {
  const proto = {};
  for (const [key, value] of Object.entries(values)) Object.defineProperty(proto, key, { get: () => value, enumerable: true });
  return Object.create(proto) as object;
}

class FakeBuffer {
  readonly bytes: Uint8Array;
  readonly size: number;
  readonly usage: number;
  constructor(size: number, usage: number) {
    this.bytes = new Uint8Array(size);
    this.size = size;
    this.usage = usage;
  }
  async mapAsync() {}
  getMappedRange() {
    return this.bytes.slice().buffer;
  }
  unmap() {}
  destroy() {}
}

type Command = { kind: 'dispatch'; buffers: FakeBuffer[] } | { kind: 'copy'; src: FakeBuffer; srcOffset: number; dst: FakeBuffer; dstOffset: number; size: number };

function runMatmul([a, b, c, params]: FakeBuffer[], wrong: boolean): void {
  const n = new Uint32Array(params.bytes.buffer, 0, 1)[0];
  const A = new Float32Array(a.bytes.buffer, 0, n * n);
  const B = new Float32Array(b.bytes.buffer, 0, n * n);
  const C = new Float32Array(c.bytes.buffer, 0, n * n);
  const row = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    row.fill(0);
    for (let t = 0; t < n; t++) {
      const av = A[i * n + t];
      for (let j = 0; j < n; j++) row[j] += av * B[t * n + j];
    }
    for (let j = 0; j < n; j++) C[i * n + j] = row[j];
  }
  if (wrong) {
    for (let i = n - 64; i < n; i++) C.fill(0, i * n + n - 64, (i + 1) * n);
  }
}

/**
 * A `navigator.gpu` whose adapter and devices are plain objects doing the work on the CPU.
 * Typed as the real GPU: the probes are written against @webgpu/types, and the fake
 * implements only the members they call.
 */
export function fakeGpu(options: FakeGpuOptions = {}): GPU {
  const limits = { ...FAKE_LIMITS, ...options.limits };
  const info = { isFallbackAdapter: false, ...(options.info ?? FAKE_ADAPTER_INFO) };

  const execute = (commands: Command[]) => {
    for (const command of commands) {
      if (command.kind === 'dispatch') runMatmul(command.buffers, options.matmul === 'wrong');
      else if (options.copy !== 'skipped' || command.dst.usage & BufferUsage.MAP_READ) {
        command.dst.bytes.set(command.src.bytes.subarray(command.srcOffset, command.srcOffset + command.size), command.dstOffset);
      }
    }
  };

  const makeDevice = () => {
    let pendingError = options.validationError;
    return {
      limits: prototypeLimits(limits),
      queue: {
        submit(buffers: { commands: Command[] }[]) {
          for (const buffer of buffers) execute(buffer.commands);
        },
        writeBuffer(buffer: FakeBuffer, offset: number, data: ArrayBufferView) {
          buffer.bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
        },
        async onSubmittedWorkDone() {},
      },
      createBuffer: ({ size, usage }: { size: number; usage: number }) => new FakeBuffer(size, usage),
      createShaderModule: ({ code }: { code: string }) => ({
        async getCompilationInfo() {
          return { messages: code.includes('@compute') ? [] : [{ type: 'error', message: 'no @compute entry point', lineNum: 1 }] };
        },
      }),
      createComputePipelineAsync: async () => ({ getBindGroupLayout: () => ({}) }),
      createBindGroup: ({ entries }: { entries: { resource: { buffer: FakeBuffer } }[] }) => ({ buffers: entries.map((e) => e.resource.buffer) }),
      createCommandEncoder() {
        const commands: Command[] = [];
        let group: { buffers: FakeBuffer[] } | undefined;
        return {
          beginComputePass: () => ({
            setPipeline() {},
            setBindGroup(_index: number, g: { buffers: FakeBuffer[] }) {
              group = g;
            },
            dispatchWorkgroups() {
              commands.push({ kind: 'dispatch', buffers: group!.buffers });
            },
            end() {},
          }),
          copyBufferToBuffer(src: FakeBuffer, srcOffset: number, dst: FakeBuffer, dstOffset: number, size: number) {
            commands.push({ kind: 'copy', src, srcOffset, dst, dstOffset, size });
          },
          finish: () => ({ commands }),
        };
      },
      pushErrorScope() {},
      async popErrorScope() {
        const error = pendingError ? { message: pendingError } : null;
        pendingError = undefined;
        return error;
      },
      destroy() {},
    };
  };

  const adapter = {
    features: new Set(options.features ?? []),
    limits: prototypeLimits(limits),
    info,
    requestDevice: async () => makeDevice(),
  };
  return { requestAdapter: async () => adapter } as unknown as GPU;
}
