// The fake device: counts, limits, and the faults it injects on request.
import assert from "node:assert/strict";
import { type FakeBuffer, FakeDevice } from "../mod.ts";

const MiB = 1 << 20;
const STORAGE = 0x80;

function create(device: FakeDevice, size: number): FakeBuffer {
  return device.createBuffer({ size, usage: STORAGE }) as unknown as FakeBuffer;
}

Deno.test("FakeDevice.createBuffer() counts buffers and bytes until destroyed", () => {
  const device = new FakeDevice();
  const a = create(device, 1024);
  const b = create(device, 2048);
  assert.deepEqual([device.liveBytes, device.liveBuffers.size, device.createBufferCalls], [
    3072,
    2,
    2,
  ]);
  a.destroy();
  a.destroy();
  assert.equal(device.liveBytes, 2048);
  b.destroy();
  assert.equal(device.liveBytes, 0);
});

Deno.test("FakeDevice error scopes report a refusal past memory, or when refuse() says so", async () => {
  const device = new FakeDevice({ memory: 3 * MiB, refuse: (d) => d.size === 1000 });
  device.pushErrorScope("out-of-memory");
  const fits = create(device, 2 * MiB);
  assert.equal(await device.popErrorScope(), null);
  device.pushErrorScope("out-of-memory");
  const over = create(device, 2 * MiB);
  const error = await device.popErrorScope();
  assert.match(String(error?.message), /Not enough memory left for 2097152 bytes/);
  device.pushErrorScope("out-of-memory");
  const chosen = create(device, 1000);
  assert.notEqual(await device.popErrorScope(), null);
  assert.deepEqual([fits.refused, over.refused, chosen.refused], [false, true, true]);
  await assert.rejects(() => device.popErrorScope(), /no error scope/);
});

Deno.test("FakeDevice({ holdVerdicts }) answers error scopes only at deliverVerdicts()", async () => {
  const device = new FakeDevice({ holdVerdicts: true, refuse: () => true });
  const answers: (string | null)[] = [];
  for (let i = 0; i < 3; i++) {
    device.pushErrorScope("out-of-memory");
    create(device, 64);
    device.popErrorScope().then((e) => answers.push(e ? e.message : null));
  }
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual([answers.length, device.heldVerdicts], [0, 3]);
  await device.deliverVerdicts(2);
  assert.deepEqual([answers.length, device.heldVerdicts], [2, 1]);
  await device.deliverVerdicts();
  assert.equal(answers.length, 3);
});

Deno.test("FakeDevice.lose() and destroy() resolve lost; loseAtCall loses at the chosen call", async () => {
  const destroyed = new FakeDevice();
  destroyed.destroy();
  const info = await destroyed.lost;
  assert.deepEqual([info.reason, info.message], ["destroyed", "the device was destroyed"]);
  const device = new FakeDevice({ loseAtCall: 3 });
  create(device, 64);
  device.queue.submit([]);
  assert.equal(device.isLost, false);
  const buffer = create(device, 64); // the third call
  assert.equal(device.isLost, true);
  assert.equal((await device.lost).message, "lost at call 3");
  device.queue.writeBuffer(buffer as unknown as GPUBuffer, 0, new Uint8Array([1, 2, 3, 4]));
  assert.deepEqual([...buffer.bytes!.subarray(0, 4)], [0, 0, 0, 0], "a lost device ignores writes");
  await assert.rejects(() => buffer.mapAsync(), /the device was lost/);
});

Deno.test("FakeBuffer.mapAsync() is pending, then mapped; unmap aborts it; failMap fails it", async () => {
  const device = new FakeDevice({ failMap: (b) => b.size === 128 });
  const a = create(device, 64);
  const mapped = a.mapAsync();
  assert.equal(a.mapState, "pending");
  await mapped;
  assert.equal(a.mapState, "mapped");
  await assert.rejects(() => a.mapAsync(), /it is mapped/);
  a.unmap();
  const aborted = a.mapAsync();
  a.unmap();
  await assert.rejects(() => aborted, (e: unknown) => (e as Error).name === "AbortError");
  const b = create(device, 128);
  await assert.rejects(() => b.mapAsync(), /failed/);
  assert.equal(b.mapState, "unmapped");
  b.destroy();
  await assert.rejects(() => b.mapAsync(), /destroyed/);
});
