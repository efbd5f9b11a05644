/**
 * The slice of `GPUDevice` the allocator calls, and a fake device that
 * implements it without a GPU so the same allocator code can run millions of
 * operations in tests and trace replays.
 *
 * @module
 */

/** The limits the allocator reads. */
export type AllocatorLimits = Pick<
  GPUSupportedLimits,
  | "maxBufferSize"
  | "maxStorageBufferBindingSize"
  | "maxUniformBufferBindingSize"
  | "minStorageBufferOffsetAlignment"
  | "minUniformBufferOffsetAlignment"
>;

/** What the allocator needs of a device: a real `GPUDevice` satisfies it. */
export interface AllocatorDevice {
  /** The device's limits. */
  readonly limits: AllocatorLimits;
  /** The queue that submits work and writes scalar values. */
  readonly queue: Pick<GPUQueue, "submit" | "writeBuffer">;
  /** Facts about the adapter; a fallback (CPU) adapter gets larger extra-large heaps. */
  readonly adapterInfo?: Pick<GPUAdapterInfo, "isFallbackAdapter">;
  /** Makes a GPUBuffer. */
  createBuffer(descriptor: GPUBufferDescriptor): GPUBuffer;
  /** Starts catching errors of one kind. */
  pushErrorScope(filter: GPUErrorFilter): void;
  /** Stops catching and reports the first error caught, if any. */
  popErrorScope(): Promise<GPUError | null>;
}

/** Options of a {@linkcode FakeDevice}. */
export interface FakeDeviceOptions {
  /** Limits to report; unset ones take the software adapter's values. */
  limits?: Partial<AllocatorLimits>;
  /** Bytes of device memory: buffers past it are reported as out of memory (0: unlimited). */
  memory?: number;
  /** Report itself as a fallback (CPU) adapter. */
  fallback?: boolean;
}

/** A buffer of the {@linkcode FakeDevice}: sizes and states, and the bytes of small buffers. */
export class FakeBuffer {
  /** Size in bytes. */
  readonly size: number;
  /** GPUBufferUsage flags. */
  readonly usage: number;
  /** Label given at creation. */
  readonly label: string;
  /** Map state, as on a GPUBuffer. */
  mapState: GPUBufferMapState = "unmapped";
  /** True once destroyed. */
  destroyed = false;
  /** Contents of buffers up to 1 MiB (larger ones keep no bytes). */
  readonly bytes: Uint8Array | null;
  #device: FakeDevice;

  /** Makes a buffer as `device.createBuffer(descriptor)` would. */
  constructor(device: FakeDevice, descriptor: GPUBufferDescriptor) {
    this.#device = device;
    this.size = descriptor.size;
    this.usage = descriptor.usage;
    this.label = descriptor.label ?? "";
    this.bytes = descriptor.size <= 1 << 20 ? new Uint8Array(descriptor.size) : null;
    if (descriptor.mappedAtCreation) this.mapState = "mapped";
  }

  /** Releases the buffer's memory. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.mapState = "unmapped";
    this.#device.onDestroy(this);
  }

  /** Maps at once (the fake has no GPU to wait for). */
  mapAsync(): Promise<void> {
    if (this.destroyed) return Promise.reject(new Error("buffer destroyed"));
    this.mapState = "mapped";
    return Promise.resolve();
  }

  /** Unmaps. */
  unmap(): void {
    this.mapState = "unmapped";
  }
}

/**
 * A device without a GPU: counts every buffer and byte, reports limits, and
 * can refuse memory past a size the way a real device reports OOM (through
 * an error scope).
 *
 * @example
 * ```ts
 * import { FakeDevice } from "./device.ts";
 * import assert from "node:assert/strict";
 *
 * const device = new FakeDevice();
 * const buffer = device.createBuffer({ size: 1024, usage: GPUBufferUsage.STORAGE });
 * assert.equal(device.liveBytes, 1024);
 * buffer.destroy();
 * assert.equal(device.liveBytes, 0);
 * ```
 */
export class FakeDevice implements AllocatorDevice {
  /** The device's limits. */
  readonly limits: AllocatorLimits;
  /** Adapter facts. */
  readonly adapterInfo: Pick<GPUAdapterInfo, "isFallbackAdapter">;
  /** Buffers created and not destroyed. */
  readonly liveBuffers: Set<FakeBuffer> = new Set();
  /** Bytes of buffers created and not destroyed. */
  liveBytes = 0;
  /** Number of createBuffer calls. */
  createBufferCalls = 0;
  /** Number of queue.submit calls. */
  submits = 0;
  /** Device memory in bytes (0: unlimited). */
  memory: number;
  readonly #scopes: (GPUError | null)[] = [];

  /** The queue: submits are counted, writes land in small buffers' bytes. */
  readonly queue: Pick<GPUQueue, "submit" | "writeBuffer">;

  /**
   * Creates a fake device.
   *
   * @param options limits, memory size and adapter kind
   */
  constructor(options: FakeDeviceOptions = {}) {
    this.limits = {
      maxBufferSize: 2 ** 31 - 1,
      maxStorageBufferBindingSize: 2 ** 27,
      maxUniformBufferBindingSize: 2 ** 16,
      minStorageBufferOffsetAlignment: 32,
      minUniformBufferOffsetAlignment: 32,
      ...options.limits,
    };
    this.memory = options.memory ?? 0;
    this.adapterInfo = { isFallbackAdapter: options.fallback ?? false };
    this.queue = {
      submit: () => {
        this.submits++;
      },
      writeBuffer: (buffer, offset, data, dataOffset = 0, size) => {
        const fake = buffer as unknown as FakeBuffer;
        if (fake.destroyed) throw new Error("writeBuffer into a destroyed buffer");
        const src = ArrayBuffer.isView(data)
          ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
          : new Uint8Array(data as ArrayBuffer);
        const elem = ArrayBuffer.isView(data) && "BYTES_PER_ELEMENT" in data
          ? (data as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT
          : 1;
        const start = dataOffset * elem;
        const bytes = src.subarray(start, size === undefined ? undefined : start + size * elem);
        if (offset + bytes.byteLength > fake.size) throw new Error("writeBuffer past the end");
        fake.bytes?.set(bytes, offset);
      },
    };
  }

  /** Makes a fake buffer; past `memory`, the enclosing error scope reports OOM. */
  createBuffer(descriptor: GPUBufferDescriptor): GPUBuffer {
    this.createBufferCalls++;
    const buffer = new FakeBuffer(this, descriptor);
    if (this.memory > 0 && this.liveBytes + descriptor.size > this.memory) {
      this.#report(
        new GPUOutOfMemoryErrorLike(`Not enough memory left for ${descriptor.size} bytes`),
      );
    }
    this.liveBuffers.add(buffer);
    this.liveBytes += buffer.size;
    return buffer as unknown as GPUBuffer;
  }

  /** Starts an error scope (the filter is ignored: the fake reports only OOM). */
  pushErrorScope(_filter: GPUErrorFilter): void {
    this.#scopes.push(null);
  }

  /** Ends the innermost error scope. */
  popErrorScope(): Promise<GPUError | null> {
    if (this.#scopes.length === 0) return Promise.reject(new Error("no error scope to pop"));
    return Promise.resolve(this.#scopes.pop()!);
  }

  /** Called by a buffer when it is destroyed. */
  onDestroy(buffer: FakeBuffer): void {
    if (this.liveBuffers.delete(buffer)) this.liveBytes -= buffer.size;
  }

  #report(error: GPUError): void {
    const i = this.#scopes.length - 1;
    if (i >= 0 && this.#scopes[i] === null) this.#scopes[i] = error;
  }
}

/** An out-of-memory error shaped like WebGPU's, for the fake device. */
class GPUOutOfMemoryErrorLike extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GPUOutOfMemoryError";
  }
}
