/**
 * Pieces every WGSL builder shares: the element type, the `enable` line and
 * how a 1-D index space is spread over a 2-D grid of workgroups.
 *
 * @module
 */

/** Element types of tensors. */
export type DType = "f32" | "f16";

/** The `enable` directive a shader over `dtype` needs. */
export function enableLine(dtype: DType): string {
  return dtype === "f16" ? "enable f16;\n" : "";
}

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

/** The declaration of the parameter struct `p` at binding 0. */
export function paramsDeclaration(space: ParamsSpace | undefined): string {
  const where = space === "storage" ? "storage, read_write" : "uniform";
  return `@group(0) @binding(0) var<${where}> p: Params;`;
}

/** Most workgroups along one dimension of a dispatch (the WebGPU default limit). */
export const MAX_WORKGROUPS_PER_DIMENSION = 65535;

/**
 * Splits `count` workgroups over x and y, since one dimension holds at most
 * 65535. Shaders rebuild the linear index as `wid.y * nwg.x + wid.x`.
 */
export function grid2d(count: number, z = 1): [number, number, number] {
  const x = Math.min(Math.max(count, 1), MAX_WORKGROUPS_PER_DIMENSION);
  const y = Math.ceil(count / x);
  if (y > MAX_WORKGROUPS_PER_DIMENSION) {
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
