// A lost device (DESIGN trap 10): from the call that destroys it on, every tensor call fails
// with a DeviceLostError, in the same tick as well as later; disposing still works.
import assert from "node:assert/strict";
import { DeviceLostError, FakeDevice, HeapAllocator } from "../mod.ts";
import { requestDevice } from "../allocator/request_device.ts";
import { empty, readAll, relu, submit, tensor } from "../kernels/mod.ts";

const LOST = (what: string) => (e: unknown) => {
  assert.ok(e instanceof DeviceLostError, `not a DeviceLostError: ${e}`);
  assert.match(e.message, new RegExp(`^Cannot ${what}: the GPU device was lost \\(destroyed`));
  return true;
};

Deno.test("after device.destroy(), in the same tick, tensor(), relu() and readAll() throw DeviceLostError", async () => {
  const device = await requestDevice();
  const allocator = new HeapAllocator(device);
  const x = tensor(allocator, [1, -2, 3, -4], [4]);
  device.destroy();
  assert.throws(() => tensor(allocator, [1], [1]), LOST("create tensor"));
  assert.throws(() => empty(allocator, [4]), LOST("create tensor"));
  assert.throws(() => relu(x), LOST("record GPU work"));
  assert.throws(() => submit(allocator), LOST("record GPU work"));
  await assert.rejects(() => readAll([x]), LOST("read tensors"));
  await assert.rejects(() => x.read(), LOST("read tensors"));
  // A turn later, when the device's own promise has settled: the same.
  await device.lost;
  assert.throws(() => relu(x), LOST("record GPU work"));
  x.dispose(); // cleanup keeps working
  allocator.destroy();
});

Deno.test("a readback in flight when the device is destroyed rejects with DeviceLostError", async () => {
  const device = await requestDevice();
  const allocator = new HeapAllocator(device);
  const y = relu(tensor(allocator, [1, -2], [2]));
  const pending = readAll([y]);
  device.destroy();
  await assert.rejects(pending, LOST("read tensors"));
  y.dispose();
  allocator.destroy();
});

Deno.test("a FakeDevice lost by its driver: empty() throws DeviceLostError at once", () => {
  const device = new FakeDevice();
  const allocator = new HeapAllocator(device);
  empty(allocator, [4]).dispose();
  device.lose("lost by the driver");
  assert.throws(() => empty(allocator, [4]), (e: unknown) => {
    assert.ok(e instanceof DeviceLostError);
    assert.match(e.message, /^Cannot create tensor: the GPU device was lost/);
    return true;
  });
  allocator.destroy();
});

Deno.test("after device.destroy(), in the same tick, alloc() and scalar() throw DeviceLostError; free still works", async () => {
  for (const device of [new FakeDevice(), await requestDevice()]) {
    const allocator = new HeapAllocator(device);
    const block = allocator.alloc(1024);
    device.destroy();
    assert.throws(() => allocator.alloc(1024), LOST("allocate"));
    assert.throws(() => allocator.scalar(1), LOST("allocate a scalar"));
    // An allocator made on the dead device hears of it at once too.
    const late = new HeapAllocator(device);
    assert.throws(() => late.alloc(1024), LOST("allocate"));
    allocator.free(block);
    late.destroy();
    allocator.destroy();
  }
});
