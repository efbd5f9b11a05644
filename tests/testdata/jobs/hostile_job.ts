// A job module that misbehaves as its input says, for the pool's tests of
// untrusted Workers:
//   { act: "post", message, wait }  posts `message` to the pool, then waits `wait` ms
//                             (default 30 s) and answers "posted"
//   { act: "hang" }           never answers, and ignores its abort signal
//   { act: "block" }          blocks its event loop for good
//   { act: "wait" }           answers "aborted" once its signal aborts
//   a PipelineRun             returns a malformed stress report
import type { JobContext } from "../../../kernels/workers/mod.ts";

/** What the hostile job does. */
export type HostileInput =
  | { act: "post"; message: unknown; wait?: number }
  | { act: "hang" }
  | { act: "block" }
  | { act: "wait" }
  | { job: unknown };

const scope = globalThis as unknown as { postMessage(message: unknown): void };

export default async function hostileJob({ input, signal }: JobContext<HostileInput>) {
  if ("job" in input) return { iterations: "many", failed: 0 };
  if (input.act === "post") {
    scope.postMessage(input.message);
    await new Promise((resolve) => setTimeout(resolve, input.wait ?? 30_000));
    return "posted";
  }
  if (input.act === "hang") return await new Promise(() => {});
  if (input.act === "block") { for (;;) { /* blocked */ } }
  if (input.act === "wait") {
    await new Promise((resolve) => signal.addEventListener("abort", resolve));
    return "aborted";
  }
  throw new Error(`unknown act ${JSON.stringify(input)}`);
}
