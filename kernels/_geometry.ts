/**
 * Argument checks and output shapes of the NCHW ops, shared by the GPU ops
 * and the float64 references so both accept and reject exactly the same
 * calls, with the same messages.
 *
 * @module
 */

/** A size given once for both spatial dimensions, or as `[height, width]`. */
export type Pair = number | readonly [number, number];

/** Everything a conv2d kernel needs to know about one call. */
export interface ConvGeometry {
  n: number;
  cIn: number;
  h: number;
  w: number;
  cOut: number;
  groups: number;
  /** Input channels per group. */
  cInG: number;
  /** Output channels per group. */
  cOutG: number;
  kH: number;
  kW: number;
  strideH: number;
  strideW: number;
  /** Padding before the first row and column (after is implied by hOut, wOut). */
  padH: number;
  padW: number;
  dilH: number;
  dilW: number;
  hOut: number;
  wOut: number;
}

/** Everything a pooling kernel needs to know about one call. */
export interface PoolGeometry {
  n: number;
  c: number;
  h: number;
  w: number;
  kH: number;
  kW: number;
  strideH: number;
  strideW: number;
  padH: number;
  padW: number;
  dilH: number;
  dilW: number;
  hOut: number;
  wOut: number;
}

/** Options of conv2d that set its geometry. */
export interface ConvGeometryOptions {
  stride?: Pair;
  padding?: Pair | "same" | "valid";
  dilation?: Pair;
  groups?: number;
}

/** Options of the pooling ops that set their geometry. */
export interface PoolGeometryOptions {
  kernelSize: Pair;
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  ceilMode?: boolean;
}

/** Formats a shape the way error messages show it: `[1,3,8,8]`. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.map((d) => (typeof d === "number" ? String(d) : show(d))).join(",")}]`;
}

/** Names the kind of a value that is not what was expected: `a Float32Array`, `Object`, `null`. */
export function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  if (typeof v === "object") {
    return String((v as { constructor?: { name?: string } }).constructor?.name ?? "an object");
  }
  if (typeof v === "string") return "a string";
  return typeof v === "bigint" || typeof v === "symbol" ? `a ${typeof v}` : String(v);
}

/** Shows a bad value in a message: strings quoted, objects by kind. */
export function show(v: unknown): string {
  return typeof v === "string" ? JSON.stringify(v) : describe(v);
}

/** Checks an optional boolean option and returns it, `fallback` when absent. */
export function flag(op: string, name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") {
    throw new TypeError(`Cannot ${op}: ${name} must be true or false, got ${show(value)}`);
  }
  return value;
}

/**
 * Checks the values given for a tensor of `shape`: an array of numbers or a
 * typed array of numbers (not BigInt), `count` of them.
 */
export function checkValues(
  op: string,
  what: string,
  data: unknown,
  shape: readonly number[],
  count: number,
): void {
  const typed = ArrayBuffer.isView(data) && !(data instanceof DataView) &&
    !(data instanceof BigInt64Array) && !(data instanceof BigUint64Array);
  if (!typed && !Array.isArray(data)) {
    throw new TypeError(
      `Cannot ${op}: ${what} must be an array or typed array of numbers, got ${describe(data)}`,
    );
  }
  const values = data as ArrayLike<unknown>;
  if (values.length !== count) {
    throw new RangeError(
      `Cannot ${op}: ${what} has ${values.length} values but shape ${
        formatShape(shape)
      } needs ${count}`,
    );
  }
  if (typed) return;
  for (let i = 0; i < count; i++) {
    if (typeof values[i] !== "number") {
      throw new TypeError(`Cannot ${op}: ${what}[${i}] must be a number, got ${show(values[i])}`);
    }
  }
}

/** Checks a shape given by the caller and returns its element count. */
export function checkShape(op: string, shape: readonly number[], what = "shape"): number {
  if (!Array.isArray(shape) || shape.length === 0) {
    throw new TypeError(
      `Cannot ${op}: ${what} must be a non-empty array of sizes, got ${show(shape)}`,
    );
  }
  let count = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d <= 0) {
      throw new RangeError(
        `Cannot ${op}: ${what} must have positive integer sizes, got ${formatShape(shape)}`,
      );
    }
    count *= d;
  }
  if (!Number.isSafeInteger(count)) {
    throw new RangeError(`Cannot ${op}: ${what} ${formatShape(shape)} has too many elements`);
  }
  return count;
}

function check4d(op: string, what: string, shape: readonly number[]): void {
  checkShape(op, shape, what);
  if (shape.length !== 4) {
    throw new RangeError(
      `Cannot ${op}: ${what} must be 4-D [N, C, H, W], got ${formatShape(shape)}`,
    );
  }
}

function pair(op: string, name: string, value: Pair | undefined, fallback: Pair, min: number) {
  const v = value ?? fallback;
  const hw = typeof v === "number" ? [v, v] : Array.isArray(v) && v.length === 2 ? v : null;
  const minWord = min === 0 ? "non-negative" : "positive";
  if (hw === null || !hw.every((x) => Number.isSafeInteger(x) && x >= min)) {
    const shown = Array.isArray(v) ? formatShape(v) : show(v);
    throw new RangeError(
      `Cannot ${op}: ${name} must be a ${minWord} integer or a pair of them, got ${shown}`,
    );
  }
  return hw as readonly [number, number];
}

/**
 * Checks a conv2d call and returns its geometry. PyTorch's rules: weight is
 * `[Cout, Cin/groups, kH, kW]`, groups divides both channel counts, bias is
 * `[Cout]`, the padded input holds at least one dilated kernel, `"same"` pads
 * unevenly for even kernels (extra on the bottom/right) and needs stride 1.
 */
export function convGeometry(
  op: string,
  input: readonly number[],
  weight: readonly number[],
  bias: readonly number[] | null,
  options: ConvGeometryOptions,
): ConvGeometry {
  check4d(op, "input", input);
  check4d(op, "weight", weight);
  const both = `(input ${formatShape(input)}, weight ${formatShape(weight)})`;
  const groups = options.groups ?? 1;
  if (!Number.isSafeInteger(groups) || groups <= 0) {
    throw new RangeError(`Cannot ${op}: groups must be a positive integer, got ${show(groups)}`);
  }
  const [n, cIn, h, w] = input;
  const [cOut, cInG, kH, kW] = weight;
  if (cOut % groups !== 0) {
    throw new RangeError(
      `Cannot ${op}: weight has ${cOut} output channels, not divisible by groups ${groups} ${both}`,
    );
  }
  if (cIn !== cInG * groups) {
    throw new RangeError(
      `Cannot ${op}: input has ${cIn} channels but weight expects ${cInG * groups}` +
        (groups > 1 ? ` (${cInG} per group, groups ${groups})` : "") + ` ${both}`,
    );
  }
  if (bias !== null) {
    checkShape(op, bias, "bias");
    if (bias.length !== 1 || bias[0] !== cOut) {
      throw new RangeError(
        `Cannot ${op}: bias must be [${cOut}] for weight ${formatShape(weight)}, got ${
          formatShape(bias)
        }`,
      );
    }
  }
  const [strideH, strideW] = pair(op, "stride", options.stride, 1, 1);
  const [dilH, dilW] = pair(op, "dilation", options.dilation, 1, 1);
  const effH = dilH * (kH - 1) + 1;
  const effW = dilW * (kW - 1) + 1;
  let padH: number, padW: number, hOut: number, wOut: number;
  if (options.padding === "same") {
    if (strideH !== 1 || strideW !== 1) {
      throw new RangeError(
        `Cannot ${op}: padding "same" needs stride 1, got stride [${strideH},${strideW}]`,
      );
    }
    padH = Math.floor((effH - 1) / 2);
    padW = Math.floor((effW - 1) / 2);
    hOut = h;
    wOut = w;
  } else {
    const padding = options.padding === "valid" ? 0 : options.padding;
    [padH, padW] = pair(op, "padding", padding, 0, 0);
    const ph = h + 2 * padH;
    const pw = w + 2 * padW;
    if (ph < effH || pw < effW) {
      throw new RangeError(
        `Cannot ${op}: padded input ${ph}x${pw} is smaller than the dilated kernel ${effH}x${effW} ${both}`,
      );
    }
    hOut = Math.floor((ph - effH) / strideH) + 1;
    wOut = Math.floor((pw - effW) / strideW) + 1;
  }
  return {
    n,
    cIn,
    h,
    w,
    cOut,
    groups,
    cInG,
    cOutG: cOut / groups,
    kH,
    kW,
    strideH,
    strideW,
    padH,
    padW,
    dilH,
    dilW,
    hOut,
    wOut,
  };
}

/** One spatial axis of a pooling window: kernel, padding, stride and dilation. */
interface PoolAxis {
  k: number;
  pad: number;
  stride: number;
  dil: number;
}

function poolOutputSize(size: number, { k, pad, stride, dil }: PoolAxis, ceil: boolean): number {
  // PyTorch's pooling_output_shape: with ceil mode the last window must
  // still start inside the input or its left padding.
  const span = size + 2 * pad - dil * (k - 1) - 1 + (ceil ? stride - 1 : 0);
  let out = Math.floor(span / stride) + 1;
  if (ceil && (out - 1) * stride >= size + pad) out--;
  return out;
}

/**
 * Checks a pooling call and returns its geometry, with PyTorch's rules:
 * stride defaults to the kernel size, padding is at most half the kernel
 * size, and the output must have at least one element.
 */
export function poolGeometry(
  op: string,
  input: readonly number[],
  options: PoolGeometryOptions,
): PoolGeometry {
  check4d(op, "input", input);
  if (options === undefined || options === null || options.kernelSize === undefined) {
    throw new TypeError(`Cannot ${op}: options.kernelSize is required`);
  }
  const [kH, kW] = pair(op, "kernelSize", options.kernelSize, 1, 1);
  const [strideH, strideW] = pair(op, "stride", options.stride, [kH, kW], 1);
  const [padH, padW] = pair(op, "padding", options.padding, 0, 0);
  const [dilH, dilW] = pair(op, "dilation", options.dilation, 1, 1);
  if (padH > Math.floor(kH / 2) || padW > Math.floor(kW / 2)) {
    throw new RangeError(
      `Cannot ${op}: padding must be at most half the kernel size, got padding [${padH},${padW}] for kernel [${kH},${kW}]`,
    );
  }
  const [n, c, h, w] = input;
  const ceil = flag(op, "ceilMode", options.ceilMode, false);
  const hOut = poolOutputSize(h, { k: kH, pad: padH, stride: strideH, dil: dilH }, ceil);
  const wOut = poolOutputSize(w, { k: kW, pad: padW, stride: strideW, dil: dilW }, ceil);
  if (hOut < 1 || wOut < 1) {
    throw new RangeError(
      `Cannot ${op}: output would be ${hOut}x${wOut} for input ${
        formatShape(input)
      } with kernel [${kH},${kW}], stride [${strideH},${strideW}], padding [${padH},${padW}], dilation [${dilH},${dilW}]`,
    );
  }
  return { n, c, h, w, kH, kW, strideH, strideW, padH, padW, dilH, dilW, hOut, wOut };
}
