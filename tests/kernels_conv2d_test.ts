// conv2d on the real adapter, every kernel, against the float64 reference:
// strides, paddings, dilation, groups, depthwise, odd sizes, batches, the
// fused 2x2 pool.
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
  tensor,
} from "../kernels/mod.ts";
import { assertClose, randomRef, rng, withHeap } from "./_kernels_util.ts";

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

/** Whether the Winograd kernel takes the case: 3x3 filters, stride 1, dilation 1. */
function winograd(c: Case): boolean {
  const o = c.options ?? {};
  return c.w[2] === 3 && c.w[3] === 3 && (o.stride ?? 1) === 1 && (o.dilation ?? 1) === 1;
}

for (const [i, c] of CASES.entries()) {
  Deno.test(`conv2d matches the float64 reference: ${c.name}`, async () => {
    await withHeap(async (heap) => {
      const random = rng(1000 + i);
      const xr = randomRef(random, c.x);
      const wr = randomRef(random, c.w);
      const br = c.bias === false ? null : randomRef(random, [c.w[0]]);
      const ref = conv2dRef(xr, wr, br, { ...c.options, relu: c.relu });
      const x = tensor(heap, xr.data, c.x);
      const w = tensor(heap, wr.data, c.w);
      const b = br ? tensor(heap, br.data, br.shape) : null;
      for (const algorithm of [...ALGORITHMS, ...(winograd(c) ? ["winograd" as const] : [])]) {
        const y = c.relu
          ? conv2dRelu(x, w, b, { ...c.options, algorithm })
          : conv2d(x, w, b, { ...c.options, algorithm });
        assert.deepEqual(y.shape, ref.shape);
        assertClose(await y.read(), ref.data, 1e-5, `${algorithm} ${c.name}`);
        y.dispose();
      }
    });
  });
}

Deno.test("conv2d tiled kernel with non-default tiles matches the reference", async () => {
  await withHeap(async (heap) => {
    const random = rng(77);
    const xr = randomRef(random, [2, 10, 9, 7]);
    const wr = randomRef(random, [40, 10, 3, 3]);
    const br = randomRef(random, [40]);
    const ref = conv2dRef(xr, wr, br, { padding: 1, relu: true });
    const x = tensor(heap, xr.data, xr.shape);
    const w = tensor(heap, wr.data, wr.shape);
    const b = tensor(heap, br.data, br.shape);
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

Deno.test("conv2d with algorithm auto matches the reference, depthwise and dense", async () => {
  await withHeap(async (heap) => {
    const random = rng(5);
    for (
      const [xs, ws, groups] of [[[1, 4, 6, 6], [4, 1, 3, 3], 4], [[1, 4, 6, 6], [8, 4, 3, 3], 1]]
    ) {
      const xr = randomRef(random, xs as number[]);
      const wr = randomRef(random, ws as number[]);
      const ref = conv2dRef(xr, wr, null, { groups: groups as number, padding: 1 });
      const y = conv2d(tensor(heap, xr.data, xr.shape), tensor(heap, wr.data, wr.shape), null, {
        groups: groups as number,
        padding: 1,
      });
      assertClose(await y.read(), ref.data, 1e-5, `groups ${groups}`);
    }
  });
});

Deno.test("conv2d with pool matches conv, ReLU, then a 2x2 pool, every kernel", async () => {
  await withHeap(async (heap) => {
    const random = rng(91);
    // Odd sizes: the pool drops the last row and column, and the Winograd
    // kernel computes only the tiles the pool covers.
    for (
      const [xs, ws, padding] of [[[2, 12, 9, 11], [20, 12, 3, 3], 1], [
        [1, 8, 8, 8],
        [4, 8, 3, 3],
        0,
      ]]
    ) {
      const xr = randomRef(random, xs as number[]);
      const wr = randomRef(random, ws as number[]);
      const br = randomRef(random, [(ws as number[])[0]]);
      const conv = conv2dRef(xr, wr, br, { padding: padding as number, relu: true });
      const x = tensor(heap, xr.data, xr.shape);
      const w = tensor(heap, wr.data, wr.shape);
      const b = tensor(heap, br.data, br.shape);
      for (const pool of ["max", "avg"] as const) {
        const ref = pool === "max"
          ? maxPool2dRef(conv, { kernelSize: 2 })
          : avgPool2dRef(conv, { kernelSize: 2 });
        for (const algorithm of ["naive", "tiled", "winograd"] as const) {
          const y = conv2dRelu(x, w, b, { padding: padding as number, pool, algorithm });
          assert.deepEqual(y.shape, ref.shape);
          assertClose(await y.read(), ref.data, 1e-5, `${pool} pool, ${algorithm}, ${xs}`);
          y.dispose();
        }
      }
    }
  });
});

Deno.test("conv2d Winograd kernel with other tiles matches the reference", async () => {
  await withHeap(async (heap) => {
    const random = rng(92);
    // 21 input channels: steps of 2 and 4 leave a partial last step; 40
    // outputs leave a partial channel block; 7x9 leaves partial tiles.
    const xr = randomRef(random, [2, 21, 7, 9]);
    const wr = randomRef(random, [40, 21, 3, 3]);
    const br = randomRef(random, [40]);
    const ref = conv2dRef(xr, wr, br, { padding: 1, relu: true });
    const x = tensor(heap, xr.data, xr.shape);
    const w = tensor(heap, wr.data, wr.shape);
    const b = tensor(heap, br.data, br.shape);
    const configs: Conv2dWinogradTiles[] = [
      // Several epilogue passes of 4 channels each.
      { tiles: 8, tileN: 32, tileK: 4, threadM: 2, threadN: 8 },
      { tiles: 16, tileN: 16, tileK: 4, threadM: 2, threadN: 8 },
      { tiles: 16, tileN: 16, tileK: 2, threadM: 4, threadN: 4 },
    ];
    for (const winogradTiles of configs) {
      const y = conv2dRelu(x, w, b, { padding: 1, algorithm: "winograd", winogradTiles });
      assertClose(await y.read(), ref.data, 1e-5, JSON.stringify(winogradTiles));
      y.dispose();
    }
  });
});
