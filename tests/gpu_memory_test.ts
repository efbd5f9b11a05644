// GPU memory: the budget and the GPUBuffer move together, and verdicts arrive late.
import assert from "node:assert/strict";
import { AllocatorError, type FakeBuffer, FakeDevice } from "../mod.ts";
import type { Heap } from "../allocator/block.ts";
import { GpuMemory } from "../allocator/gpu_memory.ts";
import { CountingBudget, deviceWithBrokenScopes } from "./_budget.ts";
import { gcProbe } from "./_gc_probe.ts";

const MiB = 1 << 20;
const ignore = { refused: () => {}, failed: () => {}, lost: () => {} };

Deno.test("GpuMemory.createHeap() reserves the budget, then makes a labelled GPUBuffer", () => {
  const device = new FakeDevice();
  const budget = new CountingBudget();
  const memory = new GpuMemory(device, budget, ignore);
  const heap = memory.createHeap("uniform", 1 * MiB, 7, true)!;
  assert.deepEqual([heap.id, heap.pool, heap.size, heap.isSplit, heap.live], [
    7,
    "uniform",
    1 * MiB,
    true,
    0,
  ]);
  const buffer = heap.buffer as unknown as FakeBuffer;
  assert.equal(buffer.label, "gpuheap uniform heap #7");
  assert.equal(
    buffer.usage,
    GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
  );
  assert.deepEqual(budget.calls, [["reserve", 1 * MiB, true]]);
  assert.equal(device.liveBytes, 1 * MiB);
});

Deno.test("GpuMemory.createHeap() makes nothing when the budget refuses", () => {
  const device = new FakeDevice();
  const memory = new GpuMemory(device, new CountingBudget(4 * MiB), ignore);
  assert.equal(memory.createHeap("small", 8 * MiB, 1, true), null);
  assert.equal(device.createBufferCalls, 0);
});

Deno.test("GpuMemory.createHeap() gives the budget back when createBuffer throws", async () => {
  const device = new FakeDevice();
  let pushes = 0;
  let pops = 0;
  const throwing = {
    limits: device.limits,
    queue: device.queue,
    createBuffer: () => {
      throw new TypeError("no buffers today");
    },
    pushErrorScope: () => void pushes++,
    popErrorScope: () => (pops++, Promise.resolve(null)),
  };
  const budget = new CountingBudget();
  const memory = new GpuMemory(throwing, budget, ignore);
  assert.throws(
    () => memory.createHeap("small", 8 * MiB, 1, true),
    (e: unknown) =>
      e instanceof AllocatorError &&
      e.message === "Cannot create a heap of 8.00 MiB on small pool: no buffers today",
  );
  assert.equal(budget.reserved, 0);
  assert.equal(pops, pushes, "every error scope pushed is popped");
  await memory.settle();
});

Deno.test("GpuMemory.destroyHeap() destroys the GPUBuffer and releases its bytes", () => {
  const device = new FakeDevice();
  const budget = new CountingBudget();
  const memory = new GpuMemory(device, budget, ignore);
  const heap = memory.createHeap("readback", 10_240, 1, false)!;
  memory.destroyHeap(heap);
  assert.equal((heap.buffer as unknown as FakeBuffer).destroyed, true);
  assert.equal(budget.reserved, 0);
  assert.equal(device.liveBytes, 0);
});

Deno.test("GpuMemory.settle() waits for every verdict; a refusal reaches refused()", async () => {
  const device = new FakeDevice({ memory: 10 * MiB });
  const refused: [Heap, string][] = [];
  const memory = new GpuMemory(device, undefined, {
    ...ignore,
    refused: (heap, message) => refused.push([heap, message]),
  });
  const fits = memory.createHeap("small", 8 * MiB, 1, true)!;
  const over = memory.createHeap("small", 8 * MiB, 2, true)!;
  assert.equal(refused.length, 0, "verdicts come later");
  await memory.settle();
  assert.deepEqual(refused.map(([h]) => h), [over]);
  assert.match(refused[0][1], /Not enough memory/);
  assert.notEqual(fits, over);
});

Deno.test("GpuMemory.createHeap() destroys the GPUBuffer and gives the budget back when the scope fails", () => {
  const device = new FakeDevice();
  const failing = deviceWithBrokenScopes(device, "the scope stack is gone");
  const budget = new CountingBudget();
  const memory = new GpuMemory(failing, budget, ignore);
  assert.throws(() => memory.createHeap("large", 32 * MiB, 3, true), /the scope stack is gone/);
  assert.deepEqual([budget.reserved, device.liveBytes], [0, 0]);
});

Deno.test("GpuMemory.destroyHeap() destroys and releases once, however often it is called", () => {
  const device = new FakeDevice();
  const budget = new CountingBudget();
  const memory = new GpuMemory(device, budget, ignore);
  const heap = memory.createHeap("small", 8 * MiB, 1, true)!;
  memory.destroyHeap(heap);
  memory.destroyHeap(heap);
  assert.deepEqual([budget.count("release"), budget.reserved, heap.released], [1, 0, true]);
});

Deno.test("GpuMemory verdicts: a handler that throws is reported through failed(), never rejected", async () => {
  const device = new FakeDevice({ refuse: () => true });
  const failures: unknown[] = [];
  const memory = new GpuMemory(device, undefined, {
    ...ignore,
    refused: () => {
      throw new Error("handler bug");
    },
    failed: (_heap, error) => failures.push(error),
  });
  memory.createHeap("small", 8 * MiB, 1, true);
  await memory.settle();
  assert.equal(failures.length, 1);
  assert.match(String(failures[0]), /handler bug/);
});

Deno.test("GpuMemory hears the device lost, with its reason and message", async () => {
  const device = new FakeDevice();
  const lost: string[][] = [];
  new GpuMemory(device, undefined, { ...ignore, lost: (r, m) => lost.push([r, m]) });
  device.lose("the driver crashed");
  await device.lost;
  await Promise.resolve();
  assert.deepEqual(lost, [["unknown", "the driver crashed"]]);
});

Deno.test("GpuMemory hears device.lost without keeping its allocator alive", async () => {
  const result = await gcProbe();
  assert.equal(result.deviceAlive, true);
  assert.equal(result.allocatorCollected, true, "a dropped allocator was collected");
});
