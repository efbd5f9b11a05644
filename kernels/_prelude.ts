/**
 * The WGSL every kernel shares, written in one place: the `enable` line for
 * f16, the `Params` struct and its binding, the tensor bindings, the entry
 * point with its linear index rebuilt from the 2-D grid of workgroups, and
 * the bounds check. A kernel file writes only its body; each program
 * computes its own cache key.
 *
 * @module
 */

/** Element types of tensors. */
export type DType = "f32" | "f16";

/**
 * The storage access mode of every tensor binding. Inputs are `read_write`
 * too: tensors share heap GPUBuffers, and WebGPU forbids binding one buffer
 * as both read-only storage and writable storage in the same dispatch.
 */
export const TENSOR_ACCESS = "read_write";

/**
 * Where a kernel reads its parameters from. `uniform` is the fast path;
 * `storage` is for allocators whose uniform blocks share GPUBuffers with
 * tensors, since WebGPU forbids a buffer as uniform and writable storage in
 * the same dispatch.
 */
export type ParamsSpace = "uniform" | "storage";

/**
 * What every kernel's program says first: the element type of its tensors
 * and where its parameters live. Each `*Program` extends it with what its
 * own WGSL is built from.
 */
export interface KernelProgram {
  /** Element type of the tensors the kernel reads and writes. */
  dtype: DType;
  /** Where the parameters live (default uniform). */
  params?: ParamsSpace;
}

/** A {@linkcode KernelProgram} whose threads per workgroup are chosen, not derived from tiles. */
export interface WorkgroupProgram extends KernelProgram {
  /** Threads per workgroup. */
  workgroupSize: number;
}

/** Most workgroups along one dimension of a dispatch (the WebGPU default limit). */
export const MAX_WORKGROUPS_PER_DIMENSION = 65535;

/**
 * A shader the cache can hold: its key and the WGSL it stands for. Equal
 * keys must mean equal WGSL.
 */
export interface ShaderProgram {
  /** The cache key (see {@linkcode shaderKey}). */
  readonly shaderKey: string;
  /** Builds the WGSL; called only when the key is not cached yet. */
  wgsl(): string;
}

/**
 * The key of the shader `name` builds from `description`: the name and the
 * description's fields sorted by name, so the order a caller wrote them in
 * does not matter; fields set to `undefined` count as absent.
 *
 * @example
 * ```ts
 * import { shaderKey } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * assert.equal(shaderKey("relu", { width: 4, dtype: "f32" }), 'relu,dtype="f32",width=4');
 * assert.equal(shaderKey("relu", { dtype: "f32", width: 4 }), shaderKey("relu", { width: 4, dtype: "f32" }));
 * ```
 *
 * @param name the kernel's name
 * @param description everything the WGSL is built from
 * @returns the key
 */
export function shaderKey(name: string, description: object): string {
  // Made at every op call: string building, no intermediate objects.
  const fields = description as Record<string, unknown>;
  let key = name;
  for (const k of Object.keys(fields).sort()) {
    const v = fields[k];
    if (v === undefined) continue;
    key += `,${k}=${typeof v === "number" || typeof v === "boolean" ? v : JSON.stringify(v)}`;
  }
  return key;
}

/**
 * Turns a WGSL builder into a program maker: the program's key is
 * {@linkcode shaderKey} of the kernel name and the description the builder
 * takes, so whatever changes the WGSL changes the key.
 *
 * @example
 * ```ts
 * import { shaderProgram } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * const double = shaderProgram("double", (p: { size: number }) => `// ${p.size}`);
 * const program = double({ size: 8 });
 * assert.equal(program.shaderKey, "double,size=8");
 * assert.equal(program.wgsl(), "// 8");
 * ```
 *
 * @param name the kernel's name
 * @param build the WGSL builder
 * @returns a function from a description to its program
 */
export function shaderProgram<P extends object>(
  name: string,
  build: (description: P) => string,
): (description: P) => ShaderProgram {
  // Ops make a description at every call: remember each one's key by its
  // plain JSON (field order as written), which is cheaper to make.
  const keys = new Map<string, string>();
  return (description) => {
    const json = JSON.stringify(description);
    let key = keys.get(json);
    if (key === undefined) {
      key = shaderKey(name, description);
      keys.set(json, key);
    }
    return { shaderKey: key, wgsl: () => build(description) };
  };
}

/** A storage binding after the parameters: a name, and its element type if not the dtype. */
export type TensorBinding = string | { readonly name: string; readonly type: string };

/**
 * What {@linkcode makeShader} needs of a kernel besides its body: its
 * program's head (`f16` adds `enable f16;`) and its bindings.
 */
export interface KernelShader extends KernelProgram {
  /** The kernel's name, for error messages. */
  kernel: string;
  /** The `i32` fields of `Params`, in order. */
  fields: readonly string[];
  /** `f32` fields after them. */
  f32Fields?: readonly string[];
  /** Storage bindings 1, 2, … in order, each `array<type>` (type default: the dtype). */
  tensors: readonly TensorBinding[];
  /** Threads per workgroup. */
  workgroupSize: number;
  /**
   * `"thread"`: the body runs once per `i: i32` in `[0, bound)`, one thread
   * each. `"workgroup"`: once per workgroup `tile: i32` in `[0, bound)`, with
   * `tid: i32` the thread in it; `wid` (workgroup id) is in scope.
   */
  index: "thread" | "workgroup";
  /** An `i32` expression the index must stay below, e.g. `p.total`. */
  bound: string;
  /** Module-scope WGSL after the bindings (workgroup memory, functions). */
  declarations?: string;
  /** The body of `main`, after the bounds check. */
  body: string;
}

/**
 * Writes a whole compute shader around a kernel's body: the prelude
 * (enable line, `Params` struct bound at 0 as `p`, tensor bindings from 1),
 * entry point `main`, the linear index rebuilt as `wid.y * nwg.x + wid.x`
 * workgroups (see {@linkcode grid2d}) and the bounds check. The index is
 * compared as `u32` before it becomes an `i32`, so the few threads past a
 * grid near 2^31 cannot wrap to a negative index.
 *
 * @example
 * ```ts
 * import { makeShader } from "@gpuheap/gpuheap/kernels";
 * import assert from "node:assert/strict";
 *
 * const code = makeShader({
 *   kernel: "negate",
 *   dtype: "f16",
 *   fields: ["total"],
 *   tensors: ["x", "y"],
 *   workgroupSize: 64,
 *   index: "thread",
 *   bound: "p.total",
 *   body: "y[i] = -x[i];",
 * });
 * assert.match(code, /^enable f16;/);
 * assert.match(code, /var<storage, read_write> y: array<f16>/);
 * ```
 *
 * @param shader the kernel's layout and body
 * @returns the WGSL source
 */
export function makeShader(shader: KernelShader): string {
  checkWorkgroupSize(shader.kernel, shader.workgroupSize);
  const where = shader.params === "storage" ? "storage, read_write" : "uniform";
  const fields = [
    ...shader.fields.map((f) => `  ${f}: i32,`),
    ...(shader.f32Fields ?? []).map((f) => `  ${f}: f32,`),
  ];
  const bindings = shader.tensors.map((b, i) => {
    const { name, type } = typeof b === "string" ? { name: b, type: shader.dtype } : b;
    return `@group(0) @binding(${i + 1}) var<storage, ${TENSOR_ACCESS}> ${name}: array<${type}>;`;
  });
  const index = shader.index === "thread"
    ? `  let index = (wid.y * nwg.x + wid.x) * ${shader.workgroupSize}u + lidx;
  if (index >= u32(${shader.bound})) { return; }
  let i = i32(index);`
    : `  let index = wid.y * nwg.x + wid.x;
  if (index >= u32(${shader.bound})) { return; }
  let tile = i32(index);
  let tid = i32(lidx);`;
  return `${shader.dtype === "f16" ? "enable f16;\n" : ""}struct Params {
${fields.join("\n")}
}

@group(0) @binding(0) var<${where}> p: Params;
${bindings.join("\n")}
${shader.declarations ? `\n${shader.declarations}\n` : ""}
@compute @workgroup_size(${shader.workgroupSize})
fn main(@builtin(local_invocation_index) lidx: u32,
        @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
${index}
${shader.body}
}
`;
}

/**
 * Splits `count` workgroups over x and y, since one dimension holds at most
 * 65535; {@linkcode makeShader} rebuilds the linear index.
 *
 * @example
 * ```ts
 * import { grid2d } from "./_prelude.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(grid2d(70000), [65535, 2, 1]);
 * ```
 *
 * @param count workgroups wanted
 * @param z workgroups along z
 * @returns the grid
 * @throws {RangeError} more than 65535 x 65535 workgroups
 */
export function grid2d(count: number, z = 1): [number, number, number] {
  const x = Math.min(Math.max(count, 1), MAX_WORKGROUPS_PER_DIMENSION);
  const y = Math.ceil(count / x);
  if (!(y <= MAX_WORKGROUPS_PER_DIMENSION)) {
    throw new RangeError(`Cannot dispatch: ${count} workgroups exceed a 65535x65535 grid`);
  }
  return [x, y, z];
}

/** Checks a workgroup size a program description asks for. */
export function checkWorkgroupSize(kernel: string, size: number): void {
  if (!Number.isInteger(size) || size < 1 || size > 1024) {
    throw new RangeError(`Cannot build ${kernel}: workgroup size must be 1..1024, got ${size}`);
  }
}
