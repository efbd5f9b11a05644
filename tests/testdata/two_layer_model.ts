// A user's model of two layers, each on a line of its own: call-site tests
// look for these lines in the labels of a recording.
import { relu, type Tensor } from "../../kernels/mod.ts";

/** Two ReLU layers; both outputs are returned, so both are live at the end. */
export function twoLayers(x: Tensor): [Tensor, Tensor] {
  const first = relu(x);
  const second = relu(first);
  return [first, second];
}
