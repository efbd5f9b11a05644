/**
 * Waiting for a Worker's thread to end, the one place that looks at threads.
 *
 * Note [Workers close one at a time]: a Worker's thread tears its device
 * down after its last message, and Deno gives no event when the thread has
 * ended. Workers that tore down at once have deadlocked in NVIDIA's driver
 * (4 runs in 30), and a process that exited meanwhile has crashed (heap
 * corruption in glibc, 1 to 4 runs in 100), so the pool closes Workers one
 * at a time, each once the last one's thread has ended. On Linux with
 * access to /proc/self/task (it takes --allow-all) the thread is watched by
 * its name (Deno names a Worker's thread worker-N, N counting up and never
 * reused); otherwise the pool waits a grace period per Worker.
 *
 * @module
 */

/** The grace period after a Worker ends, where threads cannot be seen (one teardown took ~100 ms on an H100). */
const EXIT_GRACE_MS = 250;
/** The same for a CPU (fallback) adapter, whose teardown took ~10 ms here: 0 of 100 runs crashed at 100 ms. */
const EXIT_GRACE_CPU_MS = 100;
/** Longest wait for one thread to end. */
const THREAD_WAIT_MS = 10_000;
/** How often the threads are looked at while waiting for them to end. */
export const THREAD_POLL_MS = 5;

/** A Worker's thread, as far as it can be seen. */
export interface WorkerThread {
  /** Its thread id and name, or null where threads cannot be seen. */
  id: { tid: string; name: string } | null;
  /** When the Worker ended (0: not yet). */
  endedAt: number;
  /** Whether its adapter is a CPU (fallback) one: its teardown is quick. */
  fallback: boolean;
}

/**
 * The live threads of this process named as Deno names Worker threads
 * (worker-N), by thread id, or null where they cannot be seen (not Linux,
 * or no access to /proc/self/task; never prompts).
 */
export function workerThreads(): Map<string, string> | null {
  if (Deno.build.os !== "linux") return null;
  try {
    const state = Deno.permissions.querySync({ name: "read", path: "/proc/self/task" }).state;
    if (state !== "granted") return null;
    const names = new Map<string, string>();
    for (const entry of Deno.readDirSync("/proc/self/task")) {
      try {
        const name = Deno.readTextFileSync(`/proc/self/task/${entry.name}/comm`).trim();
        if (name.startsWith("worker-")) names.set(entry.name, name);
      } catch {
        // The thread ended between the listing and the read.
      }
    }
    return names;
  } catch {
    return null;
  }
}

/**
 * The threads started since `before` (from {@linkcode workerThreads}), in
 * order of their names, if there are exactly `count`: one per new Worker.
 */
export function newThreads(
  before: Map<string, string> | null,
  count: number,
): ({ tid: string; name: string } | null)[] {
  const after = before && workerThreads();
  const none = new Array(count).fill(null);
  if (!before || !after) return none;
  const fresh = [...after].filter(([tid]) => !before.has(tid));
  if (fresh.length !== count) return none;
  fresh.sort((a, b) => Number(a[1].slice(7)) - Number(b[1].slice(7)));
  return fresh.map(([tid, name]) => ({ tid, name }));
}

/**
 * Whether an ended Worker's thread may still be tearing down its device:
 * its named thread is still listed, or, where threads cannot be seen, the
 * grace period since it ended has not passed. Gives up after 10 s.
 */
export function threadRuns(t: WorkerThread): boolean {
  if (t.endedAt === 0) return false;
  const since = performance.now() - t.endedAt;
  if (since > THREAD_WAIT_MS) return false;
  const now = t.id === null ? null : workerThreads();
  if (now === null) return since < (t.fallback ? EXIT_GRACE_CPU_MS : EXIT_GRACE_MS);
  // Threads the driver starts from the Worker's thread take its name and may
  // outlive it (a shared pool): only the Worker's own thread counts.
  return now.get(t.id!.tid) === t.id!.name;
}
