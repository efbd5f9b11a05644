/**
 * The slice of `GPUDevice` the allocator calls, and a fake device that
 * implements it without a GPU so the same allocator code can run millions of
 * operations in tests and trace replays. The fake can also inject the faults
 * a real device shows: heaps refused late, the device lost, maps that fail.
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
  /** Resolves when the device is lost (destroyed, or lost by the driver). */
  readonly lost?: Promise<GPUDeviceLostInfo>;
}

/** Options of a {@linkcode FakeDevice}. */
export interface FakeDeviceOptions {
  /** Limits to report; unset ones take the software adapter's values. */
  limits?: Partial<AllocatorLimits>;
  /** Bytes of device memory: buffers past it are reported as out of memory (0: unlimited). */
  memory?: number;
  /** Report itself as a fallback (CPU) adapter. */
  fallback?: boolean;
  /** Asked at each createBuffer: true makes the device refuse it (reported by the error scope). */
  refuse?: (descriptor: GPUBufferDescriptor) => boolean;
  /**
   * Hold every error scope's verdict until {@linkcode FakeDevice.deliverVerdicts}:
   * a real device answers late, after the caller may have moved on.
   */
  holdVerdicts?: boolean;
  /**
   * Lose the device at this call of it (1 is the first call of createBuffer,
   * pushErrorScope, popErrorScope, queue.submit or queue.writeBuffer); that
   * call and later ones behave as on a lost device. 0: never.
   */
  loseAtCall?: number;
  /** Asked at each mapAsync: true makes the map fail (the promise rejects). */
  failMap?: (buffer: FakeBuffer) => boolean;
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
  /** True if the device refused it (its error scope reported out of memory). */
  refused = false;
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

  /**
   * Maps the buffer: pending now, mapped a moment later (or failed, as the
   * device's `failMap` decides). An unmap or destroy before then aborts it.
   */
  mapAsync(_mode?: number, _offset?: number, _size?: number): Promise<void> {
    const device = this.#device;
    if (this.destroyed || device.isLost || this.mapState !== "unmapped") {
      return Promise.reject(
        new DOMException(`Cannot map buffer "${this.label}": ${this.#why()}`, "OperationError"),
      );
    }
    this.mapState = "pending";
    const fail = device.failMap(this);
    return new Promise((resolve, reject) => {
      queueMicrotask(() => {
        if (this.mapState !== "pending") {
          reject(new DOMException(`Mapping of "${this.label}" was aborted`, "AbortError"));
        } else if (fail || device.isLost) {
          this.mapState = "unmapped";
          reject(new DOMException(`Mapping of "${this.label}" failed`, "OperationError"));
        } else {
          this.mapState = "mapped";
          resolve();
        }
      });
    });
  }

  /** Unmaps (and aborts a pending map). */
  unmap(): void {
    this.mapState = "unmapped";
  }

  #why(): string {
    if (this.destroyed) return "it was destroyed";
    if (this.#device.isLost) return "the device was lost";
    return `it is ${this.mapState}`;
  }
}

/**
 * A device without a GPU: counts every buffer and byte, reports limits, and
 * can refuse memory past a size the way a real device reports OOM (through
 * an error scope).
 *
 * @example
 * ```ts
 * import { FakeDevice } from "@gpuheap/gpuheap";
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
  /** Calls of createBuffer, pushErrorScope, popErrorScope, queue.submit and queue.writeBuffer. */
  calls = 0;
  /** True once the device was lost (or destroyed). */
  isLost = false;
  /** Resolves when the device is lost, as a GPUDevice's does. */
  readonly lost: Promise<GPUDeviceLostInfo>;
  readonly #scopes: (GPUError | null)[] = [];
  readonly #held: (() => void)[] = [];
  readonly #options: FakeDeviceOptions;
  #resolveLost: (info: GPUDeviceLostInfo) => void = () => {};

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
    this.#options = options;
    this.lost = new Promise((resolve) => this.#resolveLost = resolve);
    this.queue = {
      submit: () => {
        this.#call();
        this.submits++;
      },
      writeBuffer: (buffer, offset, data, dataOffset = 0, size) => {
        if (this.#call()) return; // a lost device ignores writes
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

  /**
   * Makes a fake buffer; past `memory`, or when `refuse` says so, the
   * enclosing error scope reports out of memory (the buffer is still made,
   * as WebGPU returns an unusable one).
   */
  createBuffer(descriptor: GPUBufferDescriptor): GPUBuffer {
    const lost = this.#call();
    this.createBufferCalls++;
    const buffer = new FakeBuffer(this, descriptor);
    const full = this.memory > 0 && this.liveBytes + descriptor.size > this.memory;
    if (!lost && (full || this.#options.refuse?.(descriptor))) {
      buffer.refused = true;
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
    this.#call();
    this.#scopes.push(null);
  }

  /** Ends the innermost error scope; with `holdVerdicts`, its answer waits for deliverVerdicts(). */
  popErrorScope(): Promise<GPUError | null> {
    this.#call();
    if (this.#scopes.length === 0) return Promise.reject(new Error("no error scope to pop"));
    const verdict = this.#scopes.pop()!;
    if (!this.#options.holdVerdicts) return Promise.resolve(verdict);
    return new Promise((resolve) => this.#held.push(() => resolve(verdict)));
  }

  /** Error-scope verdicts held back (with `holdVerdicts`). */
  get heldVerdicts(): number {
    return this.#held.length;
  }

  /**
   * Gives the verdicts held back, oldest first, and waits until the
   * handlers of each have run.
   *
   * @param count how many to give (default: all)
   */
  async deliverVerdicts(count: number = this.#held.length): Promise<void> {
    for (const resolve of this.#held.splice(0, count)) resolve();
    // A verdict's handlers run a few promise reactions later: let them all run.
    await new Promise((resolve) => setTimeout(resolve, 0));
  }

  /**
   * Loses the device: {@linkcode FakeDevice.lost} resolves with `reason` and
   * `message`; maps fail and writes are ignored from now on.
   */
  lose(message = "the device was lost", reason: "unknown" | "destroyed" = "unknown"): void {
    if (this.isLost) return;
    this.isLost = true;
    this.#resolveLost({ reason, message } as unknown as GPUDeviceLostInfo);
  }

  /** Destroys the device, as `GPUDevice.destroy()`: it is lost with reason `"destroyed"`. */
  destroy(): void {
    this.lose("the device was destroyed", "destroyed");
  }

  /** Called by a buffer when it is destroyed. */
  onDestroy(buffer: FakeBuffer): void {
    if (this.liveBuffers.delete(buffer)) this.liveBytes -= buffer.size;
  }

  /** Counts a call, losing the device at the chosen one; true if the device is lost. */
  #call(): boolean {
    this.calls++;
    if (this.calls === this.#options.loseAtCall) this.lose(`lost at call ${this.calls}`);
    return this.isLost;
  }

  /** @internal asks the `failMap` option about a map of `buffer`. */
  failMap(buffer: FakeBuffer): boolean {
    return this.#options.failMap?.(buffer) ?? false;
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
