// f16 tensors (storage in f16, accumulation in f32) against the float64
// references, with tolerance 1e-2. These need an adapter with shader-f16;
// elsewhere they are registered as ignored, with the reason in their names.
import assert from "node:assert/strict";
import {
  avgPool2d,
  avgPool2dRef,
  conv2d,
  conv2dRef,
  maxPool2d,
  maxPool2dRef,
  pipeline,
  pipelineRef,
  type RefTensor,
  relu,
  reluRef,
  tensor,
} from "../kernels/mod.ts";
import { adapterHasF16, assertClose, randomRef, rng, withHeap } from "./_kernels_util.ts";

const hasF16 = await adapterHasF16();
const TOL = 1e-2;

/** The tensor's values rounded to f16, as the GPU sees them. */
function half(t: RefTensor & { data: Float32Array }): RefTensor & { data: Float32Array } {
  return { data: Float32Array.from(Float16Array.from(t.data)), shape: t.shape };
}

function f16Test(name: string, fn: () => Promise<void>): void {
  Deno.test({ name: `f16: ${name} (needs shader-f16)`, ignore: !hasF16, fn });
}

f16Test("conv2d, both kernels, bias and relu, odd sizes and groups", async () => {
  await withHeap(async (heap) => {
    const random = rng(601);
    const cases: [number[], number[], object][] = [
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
      const x = tensor(heap, xr.data, xs, { dtype: "f16" });
      const w = tensor(heap, wr.data, ws, { dtype: "f16" });
      const b = tensor(heap, br.data, br.shape, { dtype: "f16" });
      const algorithms = ws[2] === 3 && !("stride" in options) && !("dilation" in options)
        ? ["naive", "tiled", "winograd"] as const
        : ["naive", "tiled"] as const;
      for (const algorithm of algorithms) {
        const y = conv2d(x, w, b, { ...options, algorithm });
        assert.equal(y.dtype, "f16");
        const out = await y.read();
        assert.ok(out instanceof Float16Array);
        assertClose(out, ref.data, TOL, `f16 conv2d ${algorithm} ${xs} ${ws}`);
      }
    }
  });
});

f16Test("relu, maxPool2d, avgPool2d", async () => {
  await withHeap(async (heap) => {
    const random = rng(602);
    for (const shape of [[2, 3, 5, 7], [4, 4, 4, 4]]) {
      const xr = half(randomRef(random, shape));
      const x = tensor(heap, xr.data, shape, { dtype: "f16" });
      assertClose(await relu(x).read(), reluRef(xr).data, TOL, `relu ${shape}`);
      const pool = { kernelSize: 3, stride: 2, padding: 1, ceilMode: true };
      assertClose(
        await maxPool2d(x, pool).read(),
        maxPool2dRef(xr, pool).data,
        TOL,
        `maxPool2d ${shape}`,
      );
      for (const countIncludePad of [true, false]) {
        assertClose(
          await avgPool2d(x, { ...pool, countIncludePad }).read(),
          avgPool2dRef(xr, { ...pool, countIncludePad }).data,
          TOL,
          `avgPool2d ${shape} countIncludePad ${countIncludePad}`,
        );
      }
    }
  });
});

f16Test("pipeline [1,16,32,32] -> 32 channels", async () => {
  await withHeap(async (heap) => {
    const random = rng(603);
    const xr = half(randomRef(random, [1, 16, 32, 32]));
    const wr = [16, 32, 32].map((cin) => ({
      weight: half({
        data: randomRef(random, [32, cin, 3, 3]).data.map((v) => v / Math.sqrt(cin * 9)),
        shape: [32, cin, 3, 3],
      }),
      bias: half(randomRef(random, [32])),
    }));
    const ref = pipelineRef(xr, wr);
    const weights = wr.map((w) => ({
      weight: tensor(heap, w.weight.data, w.weight.shape, { dtype: "f16" }),
      bias: tensor(heap, w.bias.data, w.bias.shape, { dtype: "f16" }),
    }));
    const y = pipeline(tensor(heap, xr.data, xr.shape, { dtype: "f16" }), weights);
    assertClose(await y.read(), ref.data, TOL, "f16 pipeline");
  });
});

f16Test("conv2d with f16 products, tiled and Winograd, pool fused", async () => {
  await withHeap(async (heap) => {
    const random = rng(604);
    // 40 input channels: partial steps of 16 and 8; 9x11: partial tiles.
    const xr = half(randomRef(random, [2, 40, 9, 11]));
    const wr = half({
      data: randomRef(random, [24, 40, 3, 3]).data.map((v) => v / Math.sqrt(360)),
      shape: [24, 40, 3, 3],
    });
    const br = half(randomRef(random, [24]));
    const conv = conv2dRef(xr, wr, br, { padding: 1, relu: true });
    const x = tensor(heap, xr.data, xr.shape, { dtype: "f16" });
    const w = tensor(heap, wr.data, wr.shape, { dtype: "f16" });
    const b = tensor(heap, br.data, br.shape, { dtype: "f16" });
    const tiles = { tileM: 64, tileN: 16, tileK: 16, threadM: 4, threadN: 4, half: true };
    assertClose(
      await conv2d(x, w, b, { padding: 1, relu: true, algorithm: "tiled", tiles }).read(),
      conv.data,
      TOL,
      "tiled, f16 products",
    );
    for (const pool of ["max", "avg"] as const) {
      const ref = pool === "max"
        ? maxPool2dRef(conv, { kernelSize: 2 })
        : avgPool2dRef(conv, { kernelSize: 2 });
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
        assertClose(
          await y.read(),
          ref.data,
          TOL,
          `Winograd ${pool} ${JSON.stringify(winogradTiles)}`,
        );
      }
    }
  });
});
