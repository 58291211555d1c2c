/**
 * The attention kernels of two or more checkouts timed in one process, alternately (A B A B ...),
 * so that this machine's load falls on every side alike: per round each side records the forward
 * and the backward (`Ops.attentionForward`, `Ops.attentionBackward`) at one shape `--reps` times
 * and waits for the GPU. Prints each side's median milliseconds per forward + backward, its ratio
 * to the first, and a hash of each side's outputs (out, dq, dk, dv), which agree where the
 * kernels give the same bits. One argument object serves every version: older checkouts read
 * `probs` and `dScores` (B, H, T, T), newer ones `stats` and `rowDot`; each ignores the rest.
 *
 *   git worktree add /tmp/base b6fd1d3
 *   deno run -A --unstable-webgpu docs/bench/ab_attention.ts --rounds 11 /tmp/base .
 *
 * The default shape is the 3.4M bench row's (B 16, T 128, H 4, Hkv 4, D 64).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { sha256Hex } from "../../src/io/hash.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "11" },
    reps: { type: "string", default: "3" },
    shape: { type: "string", default: "16x128x4x4x64" },
  },
  allowPositionals: true,
});
if (positionals.length < 2) {
  console.error("usage: ab_attention.ts [--rounds N] [--reps N] [--shape BxTxHxHkvxD] DIR_A DIR_B ...");
  Deno.exit(2);
}
const [B, T, H, Hkv, D] = values.shape!.split("x").map(Number);

interface Side {
  dir: string;
  gpu: {
    alloc(role: string, n: number): unknown;
    write(t: unknown, data: Float32Array): void;
    read(t: unknown): Promise<Float32Array>;
    ops: Record<string, (args: unknown) => void>;
    ctx: { finish(): Promise<void> };
    destroy(): void;
  };
  args: Record<string, unknown>;
  ms: number[];
}

/** Seeded inputs (an LCG: tests/helpers.ts's randomArray would probe a GPU on import). */
function random(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

async function open(dir: string): Promise<Side> {
  const root = await Deno.realPath(dir);
  const { GpuBackend } = await import(`file://${root}/src/gpu/backend.ts`);
  const gpu = await GpuBackend.create();
  const f32 = (n: number, seed?: number) => {
    const t = gpu.alloc("activations", n);
    if (seed !== undefined) gpu.write(t, random(n, seed));
    return t;
  };
  const q = B * T * H * D, kv = B * T * Hkv * D;
  const args = {
    B,
    T,
    H,
    Hkv,
    D,
    q: f32(q, 1),
    k: f32(kv, 2),
    v: f32(kv, 3),
    dOut: f32(q, 4),
    out: f32(q),
    dq: f32(q),
    dk: f32(kv),
    dv: f32(kv),
    stats: f32(B * H * T * 2),
    rowDot: f32(B * H * T),
    probs: f32(B * H * T * T),
    dScores: f32(B * H * T * T),
  };
  return { dir, gpu, args, ms: [] };
}

async function round(side: Side, reps: number): Promise<void> {
  const start = performance.now();
  for (let r = 0; r < reps; r++) {
    side.gpu.ops.attentionForward(side.args);
    side.gpu.ops.attentionBackward(side.args);
  }
  await side.gpu.ctx.finish();
  side.ms.push((performance.now() - start) / reps);
}

/** The first 16 hex digits of the SHA-256 of out, dq, dk and dv, concatenated. */
async function hash(side: Side): Promise<string> {
  const parts = await Promise.all(
    ["out", "dq", "dk", "dv"].map(async (name) => await side.gpu.read(side.args[name])),
  );
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    bytes.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), at);
    at += p.byteLength;
  }
  return (await sha256Hex(bytes)).slice(0, 16);
}

const sides: Side[] = [];
for (const dir of positionals) sides.push(await open(dir));
for (const side of sides) await round(side, 1); // compiles every pipeline; not counted
for (const side of sides) side.ms.length = 0;
for (let r = 0; r < Number(values.rounds); r++) {
  for (const side of sides) await round(side, Number(values.reps));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const base = median(sides[0].ms);
const rows = [];
for (const side of sides) {
  const m = median(side.ms);
  rows.push({ dir: side.dir, median_ms: +m.toFixed(1), ratio: +(m / base).toFixed(3), hash: await hash(side) });
  side.gpu.destroy();
}
console.log(JSON.stringify({ shape: { B, T, H, Hkv, D }, rounds: Number(values.rounds), sides: rows }, null, 1));
