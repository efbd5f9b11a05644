// Arbitrary messages a hostile Worker could post, from a seeded generator:
// plain values, arrays, and objects shaped like the pool's replies (known
// and unknown types, ids of every kind, fields missing or of the wrong
// type, long strings), for the fuzzers of the pool's message checks.
import { mulberry32 } from "../../kernels/_random.ts";

const TYPES = ["ready", "result", "failed", "closed", "ending", "run", "", "__proto__", "RESULT"];

/** A generator of arbitrary messages: each call returns the next. */
export function arbitraryMessages(seed: number): () => unknown {
  const random = mulberry32(seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)];
  const value = (depth: number): unknown => {
    const kind = Math.floor(random() * (depth > 2 ? 7 : 10));
    switch (kind) {
      case 0:
        return null;
      case 1:
        return undefined;
      case 2:
        return pick([0, -1, 1.5, NaN, Infinity, 2 ** 53, -0, 7]);
      case 3:
        return pick(["", "x", "result", "a".repeat(10_000)]);
      case 4:
        return random() < 0.5;
      case 5:
        return BigInt(Math.floor(random() * 1000));
      case 6:
        return new Uint8Array(Math.floor(random() * 8));
      case 7:
        return Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1));
      default:
        return reply(depth + 1);
    }
  };
  const reply = (depth: number): Record<string, unknown> => {
    const m: Record<string, unknown> = {};
    if (random() < 0.9) m.type = pick(TYPES);
    if (random() < 0.7) m.id = random() < 0.5 ? Math.floor(random() * 4) : value(depth);
    for (const key of ["adapter", "fallback", "result", "error", "reason", "report"]) {
      if (random() < 0.3) m[key] = value(depth);
    }
    if (random() < 0.3) m.error = { name: value(depth), message: value(depth) };
    return m;
  };
  return () => (random() < 0.7 ? reply(0) : value(0));
}
