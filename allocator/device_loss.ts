/**
 * When a device is lost: noted once per device, from the very call that
 * destroyed it, for every allocator and kernel that uses it.
 *
 * Note [lost devices]
 * After a device is lost every call must fail with one typed error
 * (DeviceLostError), but a GPUDevice says so only through its `lost` promise,
 * which settles turns after `destroy()`: in between, Deno's createBuffer,
 * writeBuffer and submit succeed silently on the dead device, and a readback
 * fails later with an untyped OperationError. So the first time a device is
 * seen, its `destroy` is wrapped (on the instance: the method stays the same)
 * to note the loss at once, and a loss by the driver is noted when `lost`
 * settles. Whoever listens hears of it then; freeing and disposing keep
 * working, so cleanup code runs.
 *
 * @module
 */

/** Why a device was lost. */
export interface DeviceLoss {
  /** `"destroyed"`, or the reason the device gave. */
  readonly reason: string;
  /** What the device said. */
  readonly message: string;
}

/** @internal hears of a device's loss once (held weakly: a device outlives its listeners). */
export interface LossListener {
  deviceLost(loss: DeviceLoss): void;
}

const losses = new WeakMap<object, DeviceLoss>();
const listeners = new WeakMap<object, Set<WeakRef<LossListener>>>();

/**
 * @internal starts noting `device`'s loss (Note [lost devices]), and tells
 * `listener` of it: at once if the device is known lost already.
 */
export function watchLoss(device: object, listener?: LossListener): void {
  let heard = listeners.get(device);
  if (heard === undefined) {
    heard = new Set();
    listeners.set(device, heard);
    const gpu = device as Partial<GPUDevice>;
    const destroy = gpu.destroy;
    if (typeof destroy === "function") {
      Object.defineProperty(device, "destroy", {
        configurable: true,
        writable: true,
        value: function (this: GPUDevice) {
          noteLoss(device, { reason: "destroyed", message: "the device was destroyed" });
          return destroy.call(this);
        },
      });
    }
    gpu.lost?.then?.(
      (info) =>
        noteLoss(device, {
          reason: String(info?.reason ?? "unknown"),
          message: String(info?.message ?? ""),
        }),
      () => {},
    );
  }
  if (listener === undefined) return;
  const loss = losses.get(device);
  if (loss !== undefined) listener.deviceLost(loss);
  else heard.add(new WeakRef(listener));
}

/** @internal the loss of `device`, if it is known lost; undefined otherwise. */
export function deviceLoss(device: object): DeviceLoss | undefined {
  return losses.get(device);
}

function noteLoss(device: object, loss: DeviceLoss): void {
  if (losses.has(device)) return;
  losses.set(device, loss);
  const heard = listeners.get(device);
  listeners.set(device, new Set());
  for (const ref of heard ?? []) ref.deref()?.deviceLost(loss);
}
