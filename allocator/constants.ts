/**
 * Every size constant of the allocator, each with what it bounds and why.
 * Heap sizes follow PyTorch's MPS allocator.
 *
 * @module
 */

/** One kibibyte. */
export const KiB = 1024;
/** One mebibyte. */
export const MiB = 1024 * KiB;
/** One gibibyte. */
export const GiB = 1024 * MiB;

/** Largest request served from small heaps: keeps tiny tensors out of big heaps. */
export const MAX_SMALL_ALLOC = 1 * MiB;
/** Requests below this (and above {@linkcode MAX_SMALL_ALLOC}) are packed in large heaps. */
export const MIN_LARGE_ALLOC = 10 * MiB;
/** Dedicated (unsplit) heaps are rounded up to this, so a cached one fits nearby sizes. */
export const ROUND_LARGE = 2 * MiB;
/** Largest small heap: one GPUBuffer holding many requests of at most 1 MiB. */
export const SMALL_HEAP = 8 * MiB;
/**
 * Smallest small heap: the first one an allocator makes. Small heaps grow from
 * it with the allocator's reserved bytes (see {@linkcode HEAP_GROWTH}), so an
 * allocator holding little (a Worker's, under a shared budget) holds little.
 */
export const MIN_SMALL_HEAP = 128 * KiB;
/**
 * A new small heap is this fraction of the bytes the allocator holds (within
 * its smallest and largest heap): while it fills, its free tail is at most
 * this fraction of reserved bytes.
 */
export const HEAP_GROWTH = 1 / 8;
/** Size of a large heap: one GPUBuffer holding requests between 1 and 10 MiB. */
export const LARGE_HEAP = 32 * MiB;
/** Largest extra-large heap on a discrete GPU (made without memory pressure only). */
export const XLARGE_HEAP = 128 * MiB;
/** Largest extra-large heap when the adapter is the CPU (memory is the host's). */
export const XLARGE_HEAP_UNIFIED = 1 * GiB;
/**
 * Smallest extra-large heap. Extra-large heaps grow from it with the
 * allocator's reserved bytes (see {@linkcode XLARGE_GROWTH}): a fixed 128 MiB
 * heap holding one 25 MiB block left a sixth of a 0.5 GiB run unused.
 */
export const MIN_XLARGE_HEAP = 64 * MiB;
/**
 * A new extra-large heap is this fraction of the bytes the allocator holds:
 * the free tail of the one being filled stays within ~6% of reserved bytes,
 * which with the cache's {@linkcode MAX_RESERVED_RATIO} keeps peak reserved
 * within ~1.10 × peak live on real traces (bench/commands/fragmentation.ts).
 */
export const XLARGE_GROWTH = 1 / 16;
/** Largest uniform heap: uniforms may not share a GPUBuffer with storage a dispatch writes. */
export const UNIFORM_HEAP = 1 * MiB;
/** Smallest uniform heap: uniforms are few and small (parameters, constants). */
export const MIN_UNIFORM_HEAP = 16 * KiB;
/** Largest scalar heap: a GPUBuffer cut into uniform-aligned slots. */
export const SCALAR_HEAP = 64 * KiB;
/** Smallest scalar heap: 16 slots of 256 bytes. */
export const MIN_SCALAR_HEAP = 4 * KiB;
/** Largest scalar value in bytes (an f32, i32 or u32 today; 8 leaves room for 64-bit). */
export const MAX_SCALAR_SIZE = 8;
/** Staging buffers (one GPUBuffer each) are at least this large, so small reads share sizes. */
export const MIN_STAGING = 256;
/** Staging sizes are rounded to this many steps per power of two when no alloc conf says so. */
export const STAGING_DIVISIONS = 4;
/** A cached staging buffer serves requests down to 1/(1+this) of its size: staging is short-lived. */
export const STAGING_REUSE_SLACK = 1;
/**
 * Default `max_reserved_ratio` (0 would keep every cached heap, as MPS does).
 * With a ratio r, cached heaps are released (oldest first) before a heap is
 * made, so that reserved bytes stay within r times the peak of live bytes.
 * 1.04 leaves the cache 4% over the peak in use, and heaps being filled the
 * rest of a 10% margin (see {@linkcode XLARGE_GROWTH}); workloads whose shapes
 * change every step make more createBuffer calls for it
 * (see bench/commands/fragmentation.ts).
 */
export const MAX_RESERVED_RATIO = 1.04;
/**
 * While a loop makes again the heaps the cache bound released, the bound widens up to this
 * ratio of the peak in use (Note [a repeating loop widens the bound] in heaps.ts): the
 * ratio peak reserved ÷ peak live is kept within on real traces.
 */
export const LOOP_RESERVED_RATIO = 1.1;
/** Reusing a cached dedicated heap wastes at most this fraction of it (and at least 2 MiB). */
export const DEDICATED_REUSE_SLACK = 1 / 8;

/**
 * Freed blocks of one size the front cache keeps (Note [front cache] in
 * front_cache.ts): enough for a loop that frees a few blocks of a size and
 * asks for them again, few enough that TLSF still sees most free memory.
 */
export const FRONT_CACHE_DEPTH = 8;
/** Bytes the front cache of one pool keeps at most. */
export const FRONT_CACHE_BYTES = 4 * MiB;
/**
 * Largest block the front cache of the small pool keeps: what larger blocks
 * are used for dwarfs TLSF's cost, and merged back at once they keep large
 * free ranges whole.
 */
export const FRONT_CACHE_MAX_BLOCK = 64 * KiB;

/** TLSF second-level bits: 32 lists per power of two, so a list's sizes differ by < 3.2%. */
export const TLSF_SL_BITS = 5;
/** Ranges scanned in the exact size class when the constant-time search fails (keeps O(1)). */
export const TLSF_EXACT_SCAN = 16;
/**
 * Free ranges a large-pool request looks at to find the fullest heap that
 * holds it (Note [the fullest heap first] in tlsf.ts): a bound keeps
 * placement O(1). 8 is the least that places as an unbounded scan does on the
 * tune half and generated workloads; 4 took the random workload from 1.203 to 1.246.
 */
export const TLSF_FULLEST_SCAN = 8;

/** Sharers one shared budget has room for: slots are claimed by CAS, so their count is fixed. */
export const BUDGET_SLOTS = 64;
/** Bytes of a sharer's label in a shared budget (UTF-8, cut at a character boundary). */
export const BUDGET_LABEL_BYTES = 48;
/**
 * Under a shared budget with a limit, a new heap takes at most this share of
 * what the budget has left (or just its request): the first sharers to grow
 * leave room for the others' heaps, and a heap near the limit is no larger
 * than it must be.
 */
export const BUDGET_HEAP_SHARE = 1 / 4;
/**
 * With `submitWhenShort`, an allocator grows rather than submits while its
 * reserved bytes stay within this multiple of its peak of live bytes: the
 * bytes freed between two submits need room of their own (a loop that frees
 * ~0.1 MiB per iteration and submits every few iterations), and a submit per
 * iteration would bound the loop's speed.
 */
export const SHORT_RESERVED_RATIO = 2;
/**
 * Longest an allocator over a shared budget waits for other sharers to release
 * their caches before it reports out of memory: they release at their next
 * allocation, which a Worker waiting ~11 ms on a readback makes late.
 */
export const BUDGET_RELIEVE_MS = 200;
