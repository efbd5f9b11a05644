// conv2d on the real adapter, every kernel, against the float64 reference:
// strides, paddings, dilation, groups, depthwise, odd sizes, batches, the
// fused 2x2 pool, f16 (storage and products); and every bad call rejected
// before anything is recorded.
import assert from "node:assert/strict";
import {
  avgPool2dRef,
  conv2d,
  type Conv2dAlgorithm,
  type Conv2dOptions,
  conv2dRef,
  conv2dRelu,
  type Conv2dWinogradTiles,
  maxPool2dRef,
  type RefTensor,
  tensor,
  WINOGRAD_HALF_MAX_CHANNELS,
} from "../kernels/mod.ts";
import {
  assertClose,
  assertRejected,
  f16Test,
  filled,
  half,
  kernelsOf,
  randomRef,
  rng,
  withAllocator,
} from "./_kernels_util.ts";
import { scope } from "../kernels/mod.ts";

interface Case {
  name: string;
  x: number[];
  w: number[];
  bias?: boolean;
  relu?: boolean;
  options?: Conv2dOptions;
}

const CASES: Case[] = [
  {
    name: "3x3 pad 1 stride 1, batch 2",
    x: [2, 4, 8, 8],
    w: [8, 4, 3, 3],
    options: { padding: 1 },
  },
  { name: "3x3 stride 2 pad 0", x: [1, 3, 9, 9], w: [4, 3, 3, 3], options: { stride: 2 } },
  {
    name: "odd 7x5, stride 2 pad 2, no bias",
    x: [1, 5, 7, 5],
    w: [6, 5, 3, 3],
    bias: false,
    options: { stride: 2, padding: 2 },
  },
  {
    name: "dilation 2 pad 2 + relu",
    x: [1, 4, 11, 10],
    w: [5, 4, 3, 3],
    relu: true,
    options: { dilation: 2, padding: 2 },
  },
  {
    name: "groups 2, odd 7x5, batch 2",
    x: [2, 6, 7, 5],
    w: [4, 3, 3, 3],
    options: { groups: 2, padding: 1 },
  },
  {
    name: "depthwise",
    x: [1, 8, 9, 9],
    w: [8, 1, 3, 3],
    relu: true,
    options: { groups: 8, padding: 1 },
  },
  {
    name: "depthwise with channel multiplier 2, stride 2",
    x: [2, 4, 7, 7],
    w: [8, 1, 3, 3],
    options: { groups: 4, padding: 1, stride: 2 },
  },
  { name: "1x1 kernel", x: [1, 16, 5, 7], w: [12, 16, 1, 1] },
  { name: "1 channel in and out", x: [3, 1, 6, 6], w: [1, 1, 3, 3], options: { padding: 1 } },
  { name: "1x1 image", x: [2, 6, 1, 1], w: [5, 6, 1, 1] },
  {
    name: "2x5 kernel, stride [1,2], padding [1,2]",
    x: [1, 3, 6, 9],
    w: [4, 3, 2, 5],
    options: { stride: [1, 2], padding: [1, 2] },
  },
  {
    name: 'even kernel, padding "same"',
    x: [1, 2, 6, 5],
    w: [3, 2, 4, 4],
    options: { padding: "same" },
  },
  {
    name: "many pixel tiles, 20 channels, batch 3",
    x: [3, 8, 13, 11],
    w: [20, 8, 3, 3],
    relu: true,
    options: { padding: 1 },
  },
  {
    name: "two channel tiles (72 outputs), 16 inputs",
    x: [1, 16, 8, 8],
    w: [72, 16, 3, 3],
    options: { padding: 1 },
  },
  {
    name: "target layer shape at small size: 32 -> 64, 3x3 pad 1",
    x: [2, 32, 12, 12],
    w: [64, 32, 3, 3],
    relu: true,
    options: { padding: 1 },
  },
  {
    name: "groups 3 with channel tiles, stride 2, dilation 2",
    x: [1, 12, 11, 9],
    w: [24, 4, 3, 3],
    options: { groups: 3, stride: 2, dilation: 2, padding: 2 },
  },
];

const ALGORITHMS: Conv2dAlgorithm[] = ["naive", "tiled"];

/** Whether the Winograd kernel takes a weight shape and options: 3x3, stride 1, dilation 1. */
function winograd(w: number[], o: Conv2dOptions = {}): boolean {
  return w[2] === 3 && w[3] === 3 && (o.stride ?? 1) === 1 && (o.dilation ?? 1) === 1;
}

/** The kernels that take a weight shape and options. */
function algorithmsFor(w: number[], o?: Conv2dOptions): Conv2dAlgorithm[] {
  return winograd(w, o) ? [...ALGORITHMS, "winograd"] : ALGORITHMS;
}

/**
 * Asserts a conv2d with `pool` ran the kernel `algorithm` names, with the
 * pool fused into the Winograd kernel's epilogue and a pooling op after the
 * others ("auto" may pick any).
 */
function assertPooled(kernels: string[], algorithm: Conv2dAlgorithm, pool: "max" | "avg"): void {
  const conv = kernels.find((k) => /^conv2d_(naive|tiled|winograd)$/.test(k));
  if (algorithm !== "auto") assert.equal(conv, `conv2d_${algorithm}`);
  const pools = kernels.filter((k) => k.endsWith("pool2d"));
  assert.deepEqual(pools, conv === "conv2d_winograd" ? [] : [`${pool}_pool2d`], `${kernels}`);
}

/** The reference 2x2 stride-2 pool, max or average, of `x`. */
function pool2x2Ref(x: RefTensor, pool: "max" | "avg"): RefTensor {
  return pool === "max" ? maxPool2dRef(x, { kernelSize: 2 }) : avgPool2dRef(x, { kernelSize: 2 });
}

for (const [i, c] of CASES.entries()) {
  Deno.test(`conv2d() matches the float64 reference: ${c.name}`, async () => {
    await withAllocator(async (allocator) => {
      const random = rng(1000 + i);
      const xr = randomRef(random, c.x);
      const wr = randomRef(random, c.w);
      const br = c.bias === false ? null : randomRef(random, [c.w[0]]);
      const ref = conv2dRef(xr, wr, br, { ...c.options, relu: c.relu });
      const x = tensor(allocator, xr.data, c.x);
      const w = tensor(allocator, wr.data, c.w);
      const b = br ? tensor(allocator, br.data, br.shape) : null;
      for (const algorithm of algorithmsFor(c.w, c.options)) {
        const [y, kernels] = kernelsOf(() =>
          c.relu
            ? conv2dRelu(x, w, b, { ...c.options, algorithm })
            : conv2d(x, w, b, { ...c.options, algorithm })
        );
        assert.equal(kernels.at(-1), `conv2d_${algorithm}`);
        assert.deepEqual(y.shape, ref.shape);
        assertClose(await y.read(), ref.data, 1e-5, `${algorithm} ${c.name}`);
        y.dispose();
      }
    });
  });
}

Deno.test("conv2d() with non-default tiles matches the reference", async () => {
  await withAllocator(async (allocator) => {
    const random = rng(77);
    const xr = randomRef(random, [2, 10, 9, 7]);
    const wr = randomRef(random, [40, 10, 3, 3]);
    const br = randomRef(random, [40]);
    const ref = conv2dRef(xr, wr, br, { padding: 1, relu: true });
    const x = tensor(allocator, xr.data, xr.shape);
    const w = tensor(allocator, wr.data, wr.shape);
    const b = tensor(allocator, br.data, br.shape);
    for (
      const tiles of [
        { tileM: 64, tileN: 64, tileK: 4, threadM: 4, threadN: 4 },
        { tileM: 32, tileN: 32, tileK: 8, threadM: 4, threadN: 8 },
      ]
    ) {
      const y = conv2dRelu(x, w, b, { padding: 1, algorithm: "tiled", tiles });
      assertClose(await y.read(), ref.data, 1e-5, JSON.stringify(tiles));
    }
  });
});

Deno.test("conv2d() with pool matches conv, ReLU, then a 2x2 pool, every kernel", async () => {
  await withAllocator(async (allocator) => {
    const random = rng(91);
    // Odd sizes: the pool drops the last row and column, and the Winograd
    // kernel computes only the tiles the pool covers.
    const cases: [number[], number[], number][] = [
      [[2, 12, 9, 11], [20, 12, 3, 3], 1],
      [[1, 8, 8, 8], [4, 8, 3, 3], 0],
    ];
    for (const [xs, ws, padding] of cases) {
      const xr = randomRef(random, xs);
      const wr = randomRef(random, ws);
      const br = randomRef(random, [ws[0]]);
      const conv = conv2dRef(xr, wr, br, { padding, relu: true });
      const x = tensor(allocator, xr.data, xr.shape);
      const w = tensor(allocator, wr.data, wr.shape);
      const b = tensor(allocator, br.data, br.shape);
      for (const pool of ["max", "avg"] as const) {
        const ref = pool2x2Ref(conv, pool);
        for (const algorithm of ["naive", "tiled", "winograd", "auto"] as const) {
          const [y, kernels] = kernelsOf(() => conv2dRelu(x, w, b, { padding, pool, algorithm }));
          assertPooled(kernels, algorithm, pool);
          assert.deepEqual(y.shape, ref.shape);
          assertClose(await y.read(), ref.data, 1e-5, `${pool} pool, ${algorithm}, ${xs}`);
          y.dispose();
        }
      }
    }
  });
});

Deno.test("conv2d() with pool and no ReLU pools the raw convolution", async () => {
  await withAllocator(async (allocator) => {
    const random = rng(93);
    // Without ReLU, negative outputs reach the pool: a kernel applying ReLU
    // anyway, or pooling before the bias, shows here.
    const xr = randomRef(random, [1, 6, 7, 6]);
    const wr = randomRef(random, [8, 6, 3, 3]);
    const br = randomRef(random, [8]);
    const conv = conv2dRef(xr, wr, br, { padding: 1 });
    const x = tensor(allocator, xr.data, xr.shape);
    const w = tensor(allocator, wr.data, wr.shape);
    const b = tensor(allocator, br.data, br.shape);
    for (const pool of ["max", "avg"] as const) {
      const ref = pool2x2Ref(conv, pool);
      assert.ok(Array.from(ref.data).some((v) => v < 0), "the reference has negative outputs");
      for (const algorithm of ["naive", "tiled", "winograd"] as const) {
        const [y, kernels] = kernelsOf(() => conv2d(x, w, b, { padding: 1, pool, algorithm }));
        assertPooled(kernels, algorithm, pool);
        assert.deepEqual(y.shape, ref.shape);
        assertClose(await y.read(), ref.data, 1e-5, `${pool} pool, ${algorithm}, no ReLU`);
        y.dispose();
      }
    }
  });
});

Deno.test("conv2d() Winograd kernel with other tiles matches the reference", async () => {
  await withAllocator(async (allocator) => {
    const random = rng(92);
    // 21 input channels: steps of 2 and 4 leave a partial last step; 40
    // outputs leave a partial channel block; 7x9 leaves partial tiles.
    const xr = randomRef(random, [2, 21, 7, 9]);
    const wr = randomRef(random, [40, 21, 3, 3]);
    const br = randomRef(random, [40]);
    const ref = conv2dRef(xr, wr, br, { padding: 1, relu: true });
    const x = tensor(allocator, xr.data, xr.shape);
    const w = tensor(allocator, wr.data, wr.shape);
    const b = tensor(allocator, br.data, br.shape);
    const configs: Conv2dWinogradTiles[] = [
      // Several epilogue passes of 4 channels each.
      { tiles: 16, tileN: 32, tileK: 4, threadM: 4, threadN: 8, passChannels: 8 },
      { tiles: 32, tileN: 16, tileK: 4, threadM: 8, threadN: 4 },
      { tiles: 16, tileN: 16, tileK: 2, threadM: 4, threadN: 4 },
    ];
    for (const [i, winogradTiles] of configs.entries()) {
      const [y, kernels] = kernelsOf(() =>
        conv2dRelu(x, w, b, { padding: 1, algorithm: "winograd", winogradTiles })
      );
      // The weights are transformed once, then kept with w.
      const expected = i === 0
        ? ["conv2d_winograd_weights", "conv2d_winograd"]
        : ["conv2d_winograd"];
      assert.deepEqual(kernels, expected);
      assertClose(await y.read(), ref.data, 1e-5, JSON.stringify(winogradTiles));
      y.dispose();
    }
  });
});

Deno.test("conv2d() keeps packed weights with the weight: packed once, past a scope, disposed with it", async () => {
  await withAllocator(async (allocator) => {
    const random = rng(93);
    const xr = randomRef(random, [1, 8, 6, 6]);
    const wr = randomRef(random, [8, 8, 3, 3]);
    const ref = conv2dRef(xr, wr, null, { padding: 1 });
    const x = tensor(allocator, xr.data, xr.shape);
    // Storage blocks (the ops' parameter slots are uniforms).
    const live = () => {
      const { small, large } = allocator.memoryStats().pools;
      return small.blocks + large.blocks;
    };
    for (const algorithm of ["tiled", "winograd"] as const) {
      const w = tensor(allocator, wr.data, wr.shape);
      const before = live();
      const prepare = algorithm === "tiled" ? "conv2d_pack_weights" : "conv2d_winograd_weights";
      for (let i = 0; i < 3; i++) {
        // Inside a scope: the scope disposes the output, never what w keeps.
        const [out, kernels] = kernelsOf(() =>
          scope(() => {
            const y = conv2d(x, w, null, { padding: 1, algorithm });
            return { data: y.read(), y };
          })
        );
        assert.deepEqual(
          kernels,
          i === 0 ? [prepare, `conv2d_${algorithm}`] : [`conv2d_${algorithm}`],
        );
        assertClose(await out.data, ref.data, 1e-5, `${algorithm}, call ${i}`);
        out.y.dispose();
        assert.equal(live(), before + 1, "the packed weight stays, kept by w");
      }
      w.dispose();
      assert.equal(live(), before - 1, "disposing w disposes its packed weight");
    }
  });
});

Deno.test('conv2d() with algorithm "auto" matches the reference, depthwise and dense', async () => {
  await withAllocator(async (allocator) => {
    const random = rng(5);
    for (
      const [xs, ws, groups] of [[[1, 4, 6, 6], [4, 1, 3, 3], 4], [[1, 4, 6, 6], [8, 4, 3, 3], 1]]
    ) {
      const xr = randomRef(random, xs as number[]);
      const wr = randomRef(random, ws as number[]);
      const ref = conv2dRef(xr, wr, null, { groups: groups as number, padding: 1 });
      const y = conv2d(
        tensor(allocator, xr.data, xr.shape),
        tensor(allocator, wr.data, wr.shape),
        null,
        {
          groups: groups as number,
          padding: 1,
        },
      );
      assertClose(await y.read(), ref.data, 1e-5, `groups ${groups}`);
    }
  });
});

Deno.test("conv2d() rejects mismatched shapes and bad options, naming them, recording nothing", async () => {
  await withAllocator((allocator) => {
    const x = filled(allocator, [1, 3, 8, 8]);
    const w = filled(allocator, [4, 4, 3, 3]);
    assertRejected(
      allocator,
      RangeError,
      () => conv2d(x, w),
      "Cannot conv2d: input has 3 channels but weight expects 4 (input [1,3,8,8], weight [4,4,3,3])",
    );
    const w3 = filled(allocator, [4, 3, 3, 3]);
    const b3 = filled(allocator, [3]);
    const x3d = filled(allocator, [3, 8, 8]);
    const w3d = filled(allocator, [4, 3, 3]);
    const w9 = filled(allocator, [4, 3, 9, 9]);
    const x6 = filled(allocator, [1, 6, 8, 8]);
    const w42 = filled(allocator, [4, 2, 3, 3]);
    assertRejected(
      allocator,
      RangeError,
      () => conv2d(x, w3, b3),
      "Cannot conv2d: bias must be [4] for weight [4,3,3,3], got [3]",
    );
    assertRejected(allocator, RangeError, () => conv2d(x3d, w3), /input must be 4-D.*\[3,8,8\]/);
    assertRejected(allocator, RangeError, () => conv2d(x, w3d), /weight must be 4-D/);
    assertRejected(
      allocator,
      RangeError,
      () => conv2d(x, w9),
      "Cannot conv2d: padded input 8x8 is smaller than the dilated kernel 9x9 (input [1,3,8,8], weight [4,3,9,9])",
    );
    assertRejected(
      allocator,
      RangeError,
      () => conv2d(x, w3, null, { dilation: 4 }),
      /padded input 8x8 is smaller than the dilated kernel 9x9/,
    );
    assertRejected(
      allocator,
      RangeError,
      () => conv2d(x6, w42, null, { groups: 3 }),
      /weight has 4 output channels, not divisible by groups 3/,
    );
    assertRejected(
      allocator,
      RangeError,
      () => conv2d(x6, w42, null, { groups: 2 }),
      "Cannot conv2d: input has 6 channels but weight expects 4 (2 per group, groups 2) (input [1,6,8,8], weight [4,2,3,3])",
    );
    assertRejected(
      allocator,
      RangeError,
      () => conv2d(x, w3, null, { groups: 0 }),
      /groups must be a positive integer, got 0/,
    );
    assertRejected(
      allocator,
      RangeError,
      () => conv2d(x, w3, null, { stride: 1.5 }),
      /stride must be a positive integer.*1\.5/,
    );
    assertRejected(
      allocator,
      RangeError,
      () => conv2d(x, w3, null, { stride: 0 }),
      /stride must be a positive integer/,
    );
    assertRejected(
      allocator,
      RangeError,
      () => conv2d(x, w3, null, { padding: -1 }),
      /padding must be a non-negative integer/,
    );
    assertRejected(
      allocator,
      RangeError,
      () => conv2d(x, w3, null, { padding: [1] as unknown as [number, number] }),
      /padding must be .* a pair/,
    );
    assertRejected(
      allocator,
      RangeError,
      () => conv2d(x, w3, null, { padding: "same", stride: 2 }),
      /padding "same" needs stride 1/,
    );
    assertRejected(
      allocator,
      RangeError,
      () => conv2d(x, w3, null, { algorithm: "fast" as "naive" }),
      /algorithm must be "auto", "naive", "tiled" or "winograd", got "fast"/,
    );
    assertRejected(
      allocator,
      RangeError,
      () => conv2d(x, w3, null, { algorithm: "winograd", stride: 2 }),
      /the Winograd kernel takes 3x3 filters with stride 1 and dilation 1, got 3x3 stride 2x2/,
    );
    assertRejected(
      allocator,
      RangeError,
      () => conv2d(x, w3, null, { pool: "min" as "max" }),
      /pool must be "max" or "avg", got "min"/,
    );
    const thin = filled(allocator, [1, 3, 3, 1]);
    assertRejected(
      allocator,
      RangeError,
      () => conv2d(thin, w3, null, { padding: 1, pool: "max" }),
      /a 2x2 pool needs an output of at least 2x2, got 3x1/,
    );
    assertRejected(
      allocator,
      RangeError,
      () =>
        conv2d(x, w3, null, {
          algorithm: "winograd",
          winogradTiles: { tiles: 32, tileN: 32, tileK: 8, threadM: 8, threadN: 4 },
        }),
      /bad Winograd tiles: each of the 16 products takes 16 threads/,
    );
    assertRejected(
      allocator,
      RangeError,
      () =>
        conv2d(x, w3, null, {
          algorithm: "winograd",
          winogradTiles: { tiles: 16, tileN: 32, tileK: 8, threadM: 2, threadN: 16 },
        }),
      /bad Winograd tiles: threadM and threadN must be multiples of 4, got 2 and 16/,
    );
    assertRejected(
      allocator,
      RangeError,
      () =>
        conv2d(x, w3, null, {
          algorithm: "winograd",
          winogradTiles: {
            tiles: 16,
            tileN: 16,
            tileK: 4,
            threadM: 4,
            threadN: 4,
            passChannels: 6,
          },
        }),
      /bad Winograd tiles: passChannels must be a positive multiple of 4, got 6/,
    );
    assertRejected(
      allocator,
      RangeError,
      () =>
        conv2d(x, w3, null, {
          algorithm: "winograd",
          winogradTiles: { tiles: 32, tileN: 32, tileK: 8, threadM: 8, threadN: 8, half: true },
        }),
      /bad Winograd tiles: f16 products need dtype f16, got f32/,
    );
    assertRejected(
      allocator,
      RangeError,
      () =>
        conv2d(x, w3, null, {
          algorithm: "tiled",
          tiles: { tileM: 64, tileN: 16, tileK: 16, threadM: 4, threadN: 4, half: true },
        }),
      /bad tiles: f16 products need dtype f16, got f32/,
    );
    assertRejected(
      allocator,
      RangeError,
      () =>
        conv2d(x, w3, null, {
          algorithm: "tiled",
          tiles: { tileM: 64, tileN: 64, tileK: 8, threadM: 3, threadN: 4 },
        }),
      /bad tiles: threadM and threadN must be multiples of 4/,
    );
  });
});

f16Test(
  "conv2d() matches the reference, every kernel, bias and relu, odd sizes and groups",
  async () => {
    await withAllocator(async (allocator) => {
      const random = rng(601);
      const cases: [number[], number[], Conv2dOptions][] = [
        [[2, 8, 9, 7], [16, 8, 3, 3], { padding: 1 }],
        [[1, 6, 7, 5], [4, 3, 3, 3], { groups: 2, stride: 2, padding: 2 }],
        [[1, 32, 8, 8], [64, 32, 3, 3], { padding: 1, relu: true }],
        [[1, 4, 9, 9], [4, 1, 3, 3], { groups: 4, dilation: 2, padding: 2 }],
      ];
      for (const [xs, ws, options] of cases) {
        const xr = half(randomRef(random, xs));
        const wr = half(randomRef(random, ws));
        const br = half(randomRef(random, [ws[0]]));
        const ref = conv2dRef(xr, wr, br, options);
        const x = tensor(allocator, xr.data, xs, { dtype: "f16" });
        const w = tensor(allocator, wr.data, ws, { dtype: "f16" });
        const b = tensor(allocator, br.data, br.shape, { dtype: "f16" });
        for (const algorithm of algorithmsFor(ws, options)) {
          const y = conv2d(x, w, b, { ...options, algorithm });
          assert.equal(y.dtype, "f16");
          const out = await y.read();
          assert.ok(out instanceof Float16Array);
          assertClose(out, ref.data, 1e-2, `f16 conv2d ${algorithm} ${xs} ${ws}`);
        }
      }
    });
  },
);

f16Test(
  "conv2d() with f16 products matches the reference, tiled and Winograd, pool fused",
  async () => {
    await withAllocator(async (allocator) => {
      const random = rng(604);
      // 40 input channels: partial steps of 16 and 8; 9x11: partial tiles.
      const xr = half(randomRef(random, [2, 40, 9, 11]));
      const wr = half({
        data: randomRef(random, [24, 40, 3, 3]).data.map((v) => v / Math.sqrt(360)),
        shape: [24, 40, 3, 3],
      });
      const br = half(randomRef(random, [24]));
      const conv = conv2dRef(xr, wr, br, { padding: 1, relu: true });
      const x = tensor(allocator, xr.data, xr.shape, { dtype: "f16" });
      const w = tensor(allocator, wr.data, wr.shape, { dtype: "f16" });
      const b = tensor(allocator, br.data, br.shape, { dtype: "f16" });
      const tiles = { tileM: 64, tileN: 16, tileK: 16, threadM: 4, threadN: 4, half: true };
      const y = conv2d(x, w, b, { padding: 1, relu: true, algorithm: "tiled", tiles });
      assertClose(await y.read(), conv.data, 1e-2, "tiled, f16 products");
      y.dispose();
      for (const pool of ["max", "avg"] as const) {
        const ref = pool2x2Ref(conv, pool);
        for (
          const winogradTiles of [
            { tiles: 32, tileN: 32, tileK: 8, threadM: 8, threadN: 8, half: true },
            { tiles: 32, tileN: 32, tileK: 8, threadM: 8, threadN: 8 },
          ]
        ) {
          const y = conv2d(x, w, b, {
            padding: 1,
            relu: true,
            pool,
            algorithm: "winograd",
            winogradTiles,
          });
          assert.equal(y.dtype, "f16");
          assertClose(
            await y.read(),
            ref.data,
            1e-2,
            `Winograd ${pool} ${JSON.stringify(winogradTiles)}`,
          );
          y.dispose();
        }
      }
    });
  },
);

f16Test(
  `conv2d() in f16 sums Winograd products in f16 up to ${WINOGRAD_HALF_MAX_CHANNELS} input channels, within 1e-2`,
  async () => {
    await withAllocator(async (allocator) => {
      const random = rng(611);
      for (const cIn of [WINOGRAD_HALF_MAX_CHANNELS, WINOGRAD_HALF_MAX_CHANNELS + 8]) {
        const xr = half(randomRef(random, [1, cIn, 10, 10]));
        const wr = half({
          data: randomRef(random, [40, cIn, 3, 3]).data.map((v) => v / Math.sqrt(cIn * 9)),
          shape: [40, cIn, 3, 3],
        });
        const br = half(randomRef(random, [40]));
        const ref = conv2dRef(xr, wr, br, { padding: 1, relu: true });
        const x = tensor(allocator, xr.data, xr.shape, { dtype: "f16" });
        const w = tensor(allocator, wr.data, wr.shape, { dtype: "f16" });
        const b = tensor(allocator, br.data, br.shape, { dtype: "f16" });
        // A software adapter's default is the tiled kernel: there the Winograd kernel is named,
        // with small tiles and f16 sums where the hardware default would take them.
        const software = allocator.device.adapterInfo?.isFallbackAdapter ?? false;
        const winogradTiles = { tiles: 16, tileN: 16, tileK: 4, threadM: 4, threadN: 4 };
        const options: Conv2dOptions = software
          ? {
            algorithm: "winograd",
            winogradTiles: cIn <= WINOGRAD_HALF_MAX_CHANNELS
              ? { ...winogradTiles, half: true }
              : winogradTiles,
          }
          : {};
        const [y, labels] = kernelsOf(
          () => conv2d(x, w, b, { padding: 1, relu: true, ...options }),
          true,
        );
        const conv = labels.find((label) => label.startsWith("conv2d_winograd,"));
        assert.ok(conv, `the Winograd kernel ran: ${labels.join(" | ")}`);
        assert.equal(conv.includes("half=true"), cIn <= WINOGRAD_HALF_MAX_CHANNELS, conv);
        assertClose(await y.read(), ref.data, 1e-2, `${cIn} input channels`);
        for (const t of [x, w, b, y]) t.dispose();
      }
    });
  },
);

Deno.test("conv2d() checks every parameter before recording the first dispatch", async () => {
  await withAllocator((allocator) => {
    const x = filled(allocator, [1, 4, 6, 6]);
    const w = filled(allocator, [8, 4, 3, 3]);
    // The tiled kernel records two dispatches (weight packing, then the
    // convolution); a stride too large for the kernel's i32 parameters
    // must stop it before the first.
    for (const algorithm of ["tiled", "naive", "auto"] as const) {
      assertRejected(
        allocator,
        RangeError,
        () => conv2d(x, w, null, { stride: 2 ** 40, algorithm }),
        "Cannot conv2d: parameter strideH = 1099511627776 does not fit an i32",
      );
      assertRejected(
        allocator,
        RangeError,
        () => conv2d(x, w, null, { padding: [0, 2 ** 31], algorithm }),
        // The output grows with the padding: its size overflows first.
        /^Cannot conv2d: parameter \w+ = \d+ does not fit an i32$/,
      );
    }
  });
});
