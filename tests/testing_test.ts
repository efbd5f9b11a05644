// The testing entry on the real adapter: leaks named with the line that made
// them, peak bounds, artifacts, and a teardown that survives what the test did.
import assert from "node:assert/strict";
import { FakeDevice, HeapAllocator } from "../mod.ts";
import { empty, relu, tensor } from "../kernels/mod.ts";
import {
  ARTIFACTS_ENV,
  assertMemory,
  GpuMemoryError,
  gpuTest,
  userSite,
  withGpu,
} from "../kernels/testing.ts";
import { readTrace } from "../allocator/tools/read_trace.ts";
import { readSnapshot } from "../allocator/tools/read_snapshot.ts";

/** What `make` returned, and `file:line` of the call of this function: the line `make` runs on. */
function madeHere<T>(make: () => T): [T, string] {
  const line = new Error().stack!.split("\n")[2];
  const m = /([^/]+\.ts):(\d+):\d+/.exec(line)!;
  return [make(), `${m[1]}:${m[2]}:`];
}

/** Runs `fn` with artifacts going to a fresh temporary directory, removed after. */
async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "gpuheap-artifacts-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The error `p` rejects with, which must be a GpuMemoryError. */
async function memoryError(p: Promise<void>): Promise<GpuMemoryError> {
  let caught: unknown = null;
  await p.catch((e) => (caught = e));
  assert.ok(caught instanceof GpuMemoryError, `expected a GpuMemoryError, got ${caught}`);
  return caught;
}

Deno.test("withGpu() fails a test that leaks a tensor, naming it and the line that made it", async () => {
  await inTempDir(async (artifactsDir) => {
    let site = "";
    const data = new Float32Array(256).fill(-1);
    const error = await memoryError(withGpu(async ({ allocator }) => {
      const [x, at] = madeHere(() => tensor(allocator, data, [256], { label: "kept" }));
      site = at;
      using y = relu(x); // y is disposed; its input x is left live
      await y.read();
    }, { artifactsDir }));
    assert.match(error.message, /Test left 1 GPU block live/);
    assert.match(error.message, /"kept": 1\.00 KiB \(storage, small pool\)/);
    assert.ok(error.message.includes(`made at tests/${site}`), error.message);
  });
});

Deno.test("withGpu() passes the same test when the tensor is disposed", async () => {
  await inTempDir(async (artifactsDir) => {
    await withGpu(async ({ allocator }) => {
      using x = tensor(allocator, new Float32Array(256).fill(-1), [256], { label: "kept" });
      using y = relu(x);
      assert.equal((await y.read())[0], 0);
    }, { artifactsDir });
    assert.deepEqual([...Deno.readDirSync(artifactsDir)], [], "artifacts of a passing test");
  });
});

Deno.test("withGpu() names every leaked block: a staging block of the user's own too", async () => {
  await inTempDir(async (artifactsDir) => {
    const sites: string[] = [];
    const error = await memoryError(withGpu(({ allocator }) => {
      sites.push(madeHere(() => empty(allocator, [8], { label: "first" }))[1]);
      sites.push(madeHere(() => allocator.alloc(64, { usage: "readback", label: "second" }))[1]);
    }, { artifactsDir }));
    assert.match(error.message, /Test left 2 GPU blocks live/);
    const lines = error.message.split("\n").filter((l) => l.startsWith("  block"));
    assert.equal(lines.length, 2);
    assert.match(lines[0], /"first": 32 B \(storage, small pool\)/);
    assert.ok(lines[0].includes(sites[0]), lines[0]);
    assert.match(lines[1], /"second": 64 B \(readback, readback pool\)/);
    assert.ok(lines[1].includes(sites[1]), lines[1]);
  });
});

Deno.test("withGpu() lets allowLive blocks stay, by label or RegExp", async () => {
  await withGpu(({ allocator }) => {
    empty(allocator, [8], { label: "weights" });
    empty(allocator, [8], { label: "cache:3" });
  }, { allowLive: ["weights", /^cache:/] });
  const error = await memoryError(withGpu(({ allocator }) => {
    empty(allocator, [8], { label: "weights" });
    empty(allocator, [8], { label: "other" });
  }, { allowLive: ["weights"], artifactsDir: await Deno.makeTempDir() }));
  assert.match(error.message, /Test left 1 GPU block live/);
  assert.match(error.message, /"other"/);
  await Deno.remove(error.artifacts!, { recursive: true });
});

Deno.test("withGpu() fails a test over its peak bound with the memory summary", async () => {
  await inTempDir(async (artifactsDir) => {
    const error = await memoryError(withGpu(({ allocator }) => {
      empty(allocator, [512 * 1024]).dispose(); // 2 MiB, freed: no leak, but a peak
    }, { peakAllocated: "1MiB", artifactsDir }));
    assert.match(
      error.message,
      /^GPU memory past its bound: peak allocated 2\.00 MiB > 1\.00 MiB$/m,
    );
    assert.match(error.message, /\| Allocated memory +\|/); // the summary's table
    assert.doesNotMatch(error.message, /Test left/);
    // The same within its bound passes.
    await withGpu(({ allocator }) => {
      empty(allocator, [512 * 1024]).dispose();
    }, { peakAllocated: "2MiB", peakReserved: "64MiB", artifactsDir });
  });
});

Deno.test("withGpu() writes a snapshot, a trace and a picture where the option or the environment says", async () => {
  await inTempDir(async (dir) => {
    const error = await memoryError(withGpu(({ allocator }) => {
      empty(allocator, [64], { label: "leaked" });
    }, { name: "leaks one/tensor", artifactsDir: `${dir}/option` }));
    assert.equal(error.artifacts, `${dir}/option/leaks_one_tensor`);
    assert.ok(error.message.includes(`artifacts written to ${error.artifacts}`));
    const files = [...Deno.readDirSync(error.artifacts!)].map((e) => e.name).sort();
    assert.deepEqual(files, ["memory.html", "snapshot.json", "trace.json"]);
    const html = Deno.readTextFileSync(`${error.artifacts}/memory.html`);
    assert.match(html, /^<!DOCTYPE html>/i);
    assert.match(html, /<\/html>\s*$/);
    assert.match(html, /<svg/); // the timeline is drawn
    assert.match(html, /leaked/);
    const snapshot = readSnapshot(Deno.readTextFileSync(`${error.artifacts}/snapshot.json`));
    const live = snapshot.heaps.flatMap((h) => h.blocks).filter((b) => b.state === "live");
    assert.deepEqual(live.map((b) => b.label), ["leaked"]);
    const trace = readTrace(Deno.readTextFileSync(`${error.artifacts}/trace.json`));
    assert.ok(trace.events.some((e) => e[0] === "a" && String(e[9]).startsWith("leaked @ ")));

    const before = Deno.env.get(ARTIFACTS_ENV);
    Deno.env.set(ARTIFACTS_ENV, `${dir}/env`);
    try {
      const e2 = await memoryError(withGpu(({ allocator }) => {
        empty(allocator, [64]);
      }, { name: "env" }));
      assert.equal(e2.artifacts, `${dir}/env/env`);
    } finally {
      if (before === undefined) Deno.env.delete(ARTIFACTS_ENV);
      else Deno.env.set(ARTIFACTS_ENV, before);
    }
  });
});

Deno.test("withGpu() rethrows the test's own error after tearing down, allocator and device destroyed", async () => {
  await inTempDir(async (artifactsDir) => {
    let seen: { allocator: HeapAllocator; device: GPUDevice } | null = null;
    const boom = new Error("boom");
    const log = console.error;
    const said: string[] = [];
    console.error = (line: string) => said.push(line);
    try {
      await assert.rejects(
        withGpu(({ allocator, device }) => {
          seen = { allocator, device };
          empty(allocator, [8]); // left live: the test's error wins, not the leak
          throw boom;
        }, { artifactsDir, name: "throws" }),
        (e) => e === boom,
      );
    } finally {
      console.error = log;
    }
    const { allocator, device } = seen!;
    assert.equal(allocator.destroyed, true);
    assert.equal((await device.lost).reason, "destroyed");
    assert.deepEqual(said, [`gpuheap: test failed; artifacts written to ${artifactsDir}/throws`]);
  });
});

Deno.test("withGpu() tears down a test that destroyed its allocator or left work unsubmitted", async () => {
  await withGpu(({ allocator }) => {
    allocator.destroy();
  });
  // A shared device is drained but left alive.
  const device = await navigator.gpu.requestAdapter().then((a) => a!.requestDevice());
  try {
    await withGpu(({ allocator }) => {
      using x = empty(allocator, [1024]);
      relu(x).dispose(); // recorded, never submitted by the test
    }, { device });
    assert.ok(device.createBuffer({ size: 4, usage: GPUBufferUsage.STORAGE }));
  } finally {
    device.destroy();
  }
});

gpuTest(
  "gpuTest() registers a test with its own device and allocator",
  async ({ allocator, device }) => {
    assert.equal(allocator.device, device);
    using t = tensor(allocator, [1, -1], [2]);
    using y = relu(t);
    assert.deepEqual([...await y.read()], [1, 0]);
  },
  { peakAllocated: "1MiB" },
);

Deno.test("withGpu() and assertMemory() reject bad options with a TypeError naming them", async () => {
  const noop = () => {};
  await assert.rejects(
    withGpu(noop, { peakAllocated: "lots" }),
    /Invalid peakAllocated bound: .*lots/,
  );
  await assert.rejects(
    withGpu(noop, { allowLive: "x" as unknown as string[] }),
    TypeError,
    "Cannot run the GPU test: allowLive must be a list of labels or RegExps, got x",
  );
  await assert.rejects(
    withGpu(noop, { artifactsDir: 3 as unknown as string }),
    TypeError,
    "Cannot run the GPU test: artifactsDir must be a string, got 3",
  );
  const heap = new HeapAllocator(new FakeDevice());
  assert.throws(() => assertMemory(heap, { reserved: -1 }), RangeError);
  assert.throws(
    () => assertMemory(heap, null as unknown as object),
    TypeError,
  );
  heap.destroy();
});

Deno.test("assertMemory() checks current and peak bytes, showing the summary", () => {
  const heap = new HeapAllocator(new FakeDevice());
  const a = heap.alloc(3 << 20, { label: "big" });
  assertMemory(heap, { allocated: 3 << 20, peakAllocated: "3MiB", reserved: "32MiB" });
  let caught: unknown = null;
  try {
    assertMemory(heap, { allocated: "1MiB", peakReserved: "16MiB" });
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof GpuMemoryError);
  const lines = caught.message.split("\n");
  assert.equal(lines[0], "GPU memory past its bound: allocated 3.00 MiB > 1.00 MiB");
  assert.equal(lines[1], "GPU memory past its bound: peak reserved 32.00 MiB > 16.00 MiB");
  assert.ok(caught.message.includes(heap.memorySummary()));
  heap.free(a);
  assertMemory(heap, { allocated: 0 }); // the peak stays, the current bytes went
  assert.throws(() => assertMemory(heap, { peakAllocated: "1MiB" }), GpuMemoryError);
  heap.destroy();
});

Deno.test("userSite() takes the innermost frames outside the package, relative to the cwd", () => {
  const pkg = new URL("../kernels/tensor.ts", import.meta.url).href;
  const alloc = new URL("../allocator/allocator.ts", import.meta.url).href;
  const user = new URL("./model.ts", import.meta.url).href;
  const stack = [
    "Error",
    `    at HeapAllocator.alloc (${alloc}:10:3)`,
    `    at tensor (${pkg}:20:5)`,
    "    at ext:core/01_core.js:5:1",
    `    at forward (${user}:7:9)`,
    `    at async ${user}:30:1`,
    `    at main (${user}:40:1)`,
  ].join("\n");
  const rel = new URL(user).pathname.slice(Deno.cwd().length + 1);
  assert.equal(userSite(stack), `${rel}:7:9 ← ${rel}:30:1`);
  assert.equal(userSite("Error\n    at x (node:internal/a.js:1:1)"), "");
});

Deno.test("withGpu() tears down after the device was lost: the loss fails the test, its own error first", async () => {
  const lose = async (device: GPUDevice) => {
    device.destroy();
    await device.lost;
  };
  await assert.rejects(
    withGpu(async ({ allocator, device }) => {
      empty(allocator, [8]).dispose();
      await lose(device);
    }),
    (e: Error) => e.name === "DeviceLostError",
  );
  const boom = new Error("boom");
  const log = console.error;
  console.error = () => {};
  try {
    await assert.rejects(
      withGpu(async ({ allocator, device }) => {
        empty(allocator, [8]).dispose();
        await lose(device);
        throw boom;
      }, { artifactsDir: "/nonexistent/dir" }),
      (e) => e === boom,
    );
  } finally {
    console.error = log;
  }
});
