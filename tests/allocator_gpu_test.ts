// The allocator on the real adapter (the software one in CI): every usage
// binds and computes, the freed-before-submit trap, scalars, OOM.
import assert from "node:assert/strict";
import {
  type Block,
  DeviceLostError,
  HeapAllocator,
  OutOfMemoryError,
  requestDevice,
} from "../mod.ts";
import { gpu } from "./_util.ts";

const SHADER = /* wgsl */ `
// Inputs are read_write too: blocks share GPUBuffers, and a buffer bound as
// read-write storage in a dispatch may not also be bound read-only there.
@group(0) @binding(0) var<storage, read_write> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> params: vec4<f32>;
@group(0) @binding(3) var<uniform> bias: f32;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x < arrayLength(&dst)) { dst[id.x] = src[id.x] * params.x + bias; }
}`;

const pipelines = new WeakMap<GPUDevice, GPUComputePipeline>();
function pipeline(device: GPUDevice): GPUComputePipeline {
  let p = pipelines.get(device);
  if (!p) {
    const module = device.createShaderModule({ code: SHADER });
    p = device.createComputePipeline({ layout: "auto", compute: { module } });
    pipelines.set(device, p);
  }
  return p;
}

/** Records dst = src * scale + bias into a new encoder. */
function record(device: GPUDevice, src: Block, dst: Block, params: Block, bias: Block) {
  const p = pipeline(device);
  const group = device.createBindGroup({
    layout: p.getBindGroupLayout(0),
    entries: [src, dst, params, bias].map((b, binding) => ({ binding, resource: b.binding() })),
  });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(p);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(Math.ceil(dst.requestedSize / 4 / 64));
  pass.end();
  return encoder;
}

/** Copies a block to a readback block in `encoder`, submits, maps and returns the floats. */
async function read(allocator: HeapAllocator, block: Block, encoder?: GPUCommandEncoder) {
  const device = allocator.device as GPUDevice;
  const staging = allocator.alloc(block.requestedSize, { usage: "readback" });
  const enc = encoder ?? device.createCommandEncoder();
  enc.copyBufferToBuffer(block.buffer, block.offset, staging.buffer, 0, block.requestedSize);
  allocator.submit([enc.finish()]);
  await staging.buffer.mapAsync(GPUMapMode.READ, 0, block.requestedSize);
  const out = new Float32Array(staging.buffer.getMappedRange(0, block.requestedSize).slice(0));
  allocator.free(staging);
  return out;
}

function randomFloats(n: number, seed: number): Float32Array<ArrayBuffer> {
  const a = new Float32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    a[i] = x / 2 ** 31 + 0.5;
  }
  return a;
}

Deno.test("requestDevice() raises the limits to the adapter's", async () => {
  const device = await gpu();
  const adapter = (await navigator.gpu.requestAdapter())!;
  assert.equal(device.limits.maxBufferSize, adapter.limits.maxBufferSize);
  assert.equal(
    device.limits.maxStorageBufferBindingSize,
    adapter.limits.maxStorageBufferBindingSize,
  );
});

Deno.test("alloc() gives storage, uniform, upload and readback blocks that bind and compute", async () => {
  const device = await gpu();
  const allocator = new HeapAllocator(device);
  const n = 1000;
  const input = randomFloats(n, 11);
  // upload: map for writing, fill, copy into a storage block
  const upload = allocator.alloc(n * 4, { usage: "upload" });
  await upload.buffer.mapAsync(GPUMapMode.WRITE);
  new Float32Array(upload.buffer.getMappedRange()).set(input);
  upload.buffer.unmap();
  const src = allocator.alloc(n * 4);
  const dst = allocator.alloc(n * 4);
  const params = allocator.alloc(16, { usage: "uniform" });
  device.queue.writeBuffer(params.buffer, params.offset, new Float32Array([3, 0, 0, 0]));
  device.queue.writeBuffer(dst.buffer, dst.offset, new Float32Array(n).fill(NaN));
  const bias = allocator.scalar(0.25, "f32");
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(upload.buffer, 0, src.buffer, src.offset, n * 4);
  allocator.submit([encoder.finish()]);
  allocator.free(upload);
  const out = await read(allocator, dst, record(device, src, dst, params, bias));
  for (let i = 0; i < n; i++) {
    const want = input[i] * 3 + 0.25;
    if (Math.abs(out[i] - want) > 1e-6 * Math.abs(want)) {
      assert.fail(`dst[${i}] = ${out[i]}, want ${want}`);
    }
  }
  for (const b of [src, dst, params, bias]) allocator.free(b);
  allocator.submit();
  allocator.emptyCache();
  assert.equal(allocator.driverAllocatedMemory(), 0);
  allocator.destroy();
});

Deno.test("scalar() values of each type are readable by a shader", async () => {
  const device = await gpu();
  const allocator = new HeapAllocator(device);
  const module = device.createShaderModule({
    code: `
@group(0) @binding(0) var<uniform> a: f32;
@group(0) @binding(1) var<uniform> b: i32;
@group(0) @binding(2) var<uniform> c: u32;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1) fn main() { out[0] = a; out[1] = f32(b); out[2] = f32(c); }`,
  });
  const p = device.createComputePipeline({ layout: "auto", compute: { module } });
  const scalars = [
    allocator.scalar(-1.5, "f32"),
    allocator.scalar(-7, "i32"),
    allocator.scalar(4000000, "u32"),
  ];
  const out = allocator.alloc(16);
  const group = device.createBindGroup({
    layout: p.getBindGroupLayout(0),
    entries: [...scalars, out].map((b, binding) => ({ binding, resource: b.binding() })),
  });
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(p);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(1);
  pass.end();
  const got = await read(allocator, out, encoder);
  assert.deepEqual([...got.slice(0, 3)], [-1.5, -7, 4000000]);
  assert.equal(new Set(scalars.map((s) => s.heapId)).size, 1, "scalars share one scalar heap");
  allocator.destroy();
});

Deno.test("free() before submit() keeps the block from the next alloc() (freed before submit)", async () => {
  const device = await gpu();
  const allocator = new HeapAllocator(device);
  const n = 256;
  const a = allocator.alloc(n * 4);
  const dst = allocator.alloc(n * 4);
  const params = allocator.alloc(16, { usage: "uniform" });
  const bias = allocator.scalar(0, "f32");
  const dataA = randomFloats(n, 5);
  device.queue.writeBuffer(a.buffer, a.offset, dataA);
  device.queue.writeBuffer(params.buffer, params.offset, new Float32Array([1, 0, 0, 0]));
  // Record a pass that reads A, free A, allocate B of the same size and write it.
  const encoder = record(device, a, dst, params, bias);
  allocator.free(a);
  const b = allocator.alloc(n * 4);
  assert.ok(b.heapId !== a.heapId || b.offset !== a.offset, "B must not take A's memory yet");
  device.queue.writeBuffer(b.buffer, b.offset, new Float32Array(n).fill(-1));
  const out = await read(allocator, dst, encoder);
  assert.deepEqual(out, dataA, "the pass read A's data, not B's");
  // After the submit, A's memory is reusable.
  const c = allocator.alloc(n * 4);
  assert.ok(c.heapId === a.heapId && c.offset === a.offset, "A's memory is reused after submit");
  allocator.destroy();
});

Deno.test("alloc() and free() in a loop without GPU work reuse memory", async () => {
  const device = await gpu();
  const allocator = new HeapAllocator(device);
  for (let i = 0; i < 1000; i++) {
    const blocks = [allocator.alloc(4096), allocator.alloc(3 << 20), allocator.scalar(i)];
    for (const b of blocks) allocator.free(b);
  }
  const s = allocator.memoryStats();
  assert.equal(s.createBufferCalls, 3, "one small, one large and one scalar heap");
  assert.equal(s.cacheHits, 3000 - 3);
  allocator.destroy();
});

Deno.test("alloc() past a small high watermark throws OutOfMemoryError with the facts", async () => {
  const device = await gpu();
  const allocator = new HeapAllocator(device, {
    highWatermark: "20MiB",
    allocConf: "max_reserved_ratio:0", // the watermark alone decides
  });
  const a = allocator.alloc(6 << 20); // a 32 MiB large heap does not fit: falls back to 6 MiB
  const b = allocator.alloc(6 << 20);
  allocator.free(b);
  const c = allocator.alloc(1 << 20); // a small heap (an eighth of the 12 MiB held) fits beside
  const before = allocator.memoryStats();
  let err: unknown;
  try {
    allocator.alloc(14 << 20); // 64 MiB extra-large, or 14 MiB beside 7.5 MiB: neither fits
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof OutOfMemoryError, `expected OutOfMemoryError, got ${err}`);
  assert.match(
    err.message,
    /out of memory \(allocated: 7\.00 MiB, cached: \d+\.\d+ [KM]iB, max allowed: 20\.00 MiB\)\. Tried to allocate 14\.00 MiB on large pool/,
  );
  const after = allocator.memoryStats();
  assert.equal(after.numOoms, 1);
  assert.ok(after.numAllocRetries > before.numAllocRetries, "cached memory was released first");
  assert.ok(after.reservedBytes.current <= 20 << 20);
  allocator.free(a);
  allocator.free(c);
  allocator.destroy();
});

Deno.test("submit() sends a pending kernel batch first (beforeSubmit())", async () => {
  const { relu, tensor } = await import("../kernels/mod.ts");
  const device = await gpu();
  const allocator = new HeapAllocator(device);
  const x = tensor(allocator, [-1, 2, -3, 4], [4]);
  const y = relu(x);
  const xb = x.block as Block;
  x.dispose(); // freed mid-batch: must not be reused before the relu is queued
  const z = allocator.alloc(16);
  assert.ok(z.heapId !== xb.heapId || z.offset !== xb.offset);
  const order: string[] = [];
  allocator.beforeSubmit(() => (order.push("hook"), []));
  allocator.submit(); // the caller's submit, not the batch's
  assert.deepEqual(order, ["hook"]);
  device.queue.writeBuffer(z.buffer, z.offset, new Float32Array([9, 9, 9, 9]));
  assert.deepEqual([...await y.read()], [0, 2, 0, 4]);
  allocator.destroy();
});

Deno.test("alloc() after device.destroy() throws DeviceLostError; free() and destroy() still work", async () => {
  const device = await requestDevice(); // a device of its own: this test destroys it
  const allocator = new HeapAllocator(device);
  const a = allocator.alloc(4096);
  device.destroy();
  await device.lost;
  await new Promise((r) => setTimeout(r, 0));
  assert.throws(() => allocator.alloc(64), (e: unknown) => {
    assert.ok(e instanceof DeviceLostError);
    assert.equal(e.reason, "destroyed");
    assert.match(e.message, /^Cannot allocate: the GPU device was lost \(destroyed: /);
    return true;
  });
  assert.throws(() => allocator.scalar(1), DeviceLostError);
  assert.throws(() => allocator.submit(), DeviceLostError);
  allocator.free(a);
  assert.equal(allocator.currentAllocatedMemory(), 0);
  allocator.destroy();
});
