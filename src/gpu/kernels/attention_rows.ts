/**
 * WGSL of the software-adapter (rows-per-invocation) attention kernels; the layout, its cost
 * model and its determinism are described in attention.ts, which launches them.
 *
 * @module
 */

import { F32_LOWEST } from "../context.ts";

/** Invocations per workgroup of these kernels. */
export const WG = 64;
/** Private floats per invocation for cached scores (and, in the backward, per array). */
export const SCORE_FLOATS = 256;

/** `f(r)` for r in 0..n, joined by newlines: the per-row statements, unrolled. */
const each = (n: number, f: (r: number) => string) =>
  Array.from({ length: n }, (_, r) => f(r)).join("\n");

// Shared prologue: invocation -> (b, kvh, first row), and per row r its t, head, bases, validity.
function prologue(R: number, bindings: string[]): string {
  return /* wgsl */ `struct Params { B: u32, T: u32, H: u32, Hkv: u32, blocks: u32, scale: f32, D: u32 }
@group(0) @binding(0) var<uniform> u: Params;
${
    bindings.map((b, i) =>
      `@group(0) @binding(${i + 1}) var<storage, read_write> ${b}: array<f32>;`
    )
      .join("\n")
  }

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * ${WG}u;
  let pairs = u.B * u.Hkv;
  if (i >= pairs * u.blocks) { return; }
  let T = u.T;
  let H = u.H;
  let Hkv = u.Hkv;
  let G = H / Hkv;
  let D = u.D;
  let b = (i % pairs) / Hkv;
  let kvh = i % Hkv;
  let first = (i / pairs) * ${R}u;`;
}

// Per query row r of the block: t, head, q row base, stats row, whether it exists.
function queryRows(R: number): string {
  return `  let last = min(first + ${R}u, T * G) - 1u;
  let sEnd = last / G + 1u;
${
    each(R, (r) =>
      `  let qi${r} = min(first + ${r}u, last);
  let t${r} = qi${r} / G;
  let h${r} = kvh * G + qi${r} % G;
  let ok${r} = first + ${r}u <= last;
  let q${r} = ((b * T + t${r}) * H + h${r}) * D;
  let row${r} = (b * H + h${r}) * T + t${r};`)
  }`;
}

// Per row r: dot{r} = q_r . k[s] (and, with `withV`, dv{r} = dOut_r . v[s]), d ascending.
function dots(R: number, cap: number, withV: boolean, keepK: boolean): string {
  return `    let kb = ((b * T + s) * Hkv + kvh) * D;
${each(R, (r) => `    var dot${r} = 0.0;${withV ? `\n    var dv${r} = 0.0;` : ""}`)}
    for (var d = 0u; d < D; d++) {
      let kd = k[kb + d];${keepK ? "\n      kr[d] = kd;" : ""}${
    withV ? "\n      let vd = v[kb + d];" : ""
  }
${
    each(R, (r) =>
      `      dot${r} += qv[${r * cap}u + d] * kd;${
        withV ? `\n      dv${r} += go[${r * cap}u + d] * vd;` : ""
      }`)
  }
    }`;
}

/**
 * Forward; invocation i -> (b, kvh) = i % (B*Hkv), query rows from (i / (B*Hkv)) * rows.
 * out, q: (B,T,H,D); k, v: (B,T,Hkv,D); stats: (B,H,T,2). Three passes over s (no (T, T)
 * buffer): the row max, keeping each score x = q . k * scale of keys s < SCORE_FLOATS / rows in
 * a private array; the sum of exp(x - max); then probs = exp(x - max) / sum and out += probs * v.
 * Keys past the private array get their scores computed afresh, by the same operations in the
 * same order, so every value is the same bits as when the scores were stored in a buffer.
 */
export function attentionForwardWgsl(cap: number, R: number): string {
  const SC = scoreSlots(R);
  const sumExp = (r: number) => `    if (ok${r} && s <= t${r}) { l${r} += exp(x${r} - m${r}); }`;
  const probs = (r: number) =>
    `    var pr${r} = 0.0;
    if (ok${r} && s <= t${r}) { pr${r} = exp(x${r} - m${r}) / l${r}; }`;
  const addPv = `    let vb = ((b * T + s) * Hkv + kvh) * D;
    for (var d = 0u; d < D; d++) {
      let vd = v[vb + d];
${each(R, (r) => `      acc[${r * cap}u + d] += pr${r} * vd;`)}
    }`;
  return `${prologue(R, ["out", "stats", "q", "k", "v"])}
${queryRows(R)}
  var qv: array<f32, ${R * cap}>;
  var acc: array<f32, ${R * cap}>;
  var sc: array<f32, ${R * SC}>;
  for (var d = 0u; d < D; d++) {
${each(R, (r) => `    qv[${r * cap}u + d] = q[q${r} + d];`)}
  }
${each(R, (r) => `  var m${r} = ${F32_LOWEST};\n  var l${r} = 0.0;`)}
  let sA = min(sEnd, ${SC}u);
  for (var s = 0u; s < sEnd; s++) {
${dots(R, cap, false, false)}
${
    each(R, (r) =>
      `    let x${r} = dot${r} * u.scale;
    if (s < ${SC}u) { sc[${r * SC}u + s] = x${r}; }
    if (ok${r} && s <= t${r}) { m${r} = max(m${r}, x${r}); }`)
  }
  }
${scorePasses(R, cap, SC, sumExp)}
${scorePasses(R, cap, SC, probs, addPv)}
${
    each(R, (r) =>
      `  if (ok${r}) {
    for (var d = 0u; d < D; d++) { out[q${r} + d] = acc[${r * cap}u + d]; }
    stats[row${r} * 2u] = m${r};
    stats[row${r} * 2u + 1u] = l${r};
  }`)
  }
}
`;
}

/** Scores each row keeps in a private array: SCORE_FLOATS shared by the block's rows. */
export function scoreSlots(R: number): number {
  return Math.floor(SCORE_FLOATS / R);
}

// Two loops over s in ascending order, x{r} = score of row r at key s: read from sc for
// s < sA, computed afresh for s in [sA, sEnd); then perRow(r) for each row, then tail.
function scorePasses(
  R: number,
  cap: number,
  SC: number,
  perRow: (r: number) => string,
  tail = "",
): string {
  const body = `${each(R, perRow)}${tail ? `\n${tail}` : ""}`;
  return `  for (var s = 0u; s < sA; s++) {
${each(R, (r) => `    let x${r} = sc[${r * SC}u + s];`)}
${body}
  }
  for (var s = sA; s < sEnd; s++) {
${dots(R, cap, false, false)}
${each(R, (r) => `    let x${r} = dot${r} * u.scale;`)}
${body}
  }`;
}

// probs pr{r} of row r at key s from dot{r} and the saved stats; 0 where masked.
function recomputeProbs(R: number): string {
  return each(R, (r) =>
    `    var pr${r} = 0.0;
    if (ok${r} && s <= t${r}) { pr${r} = exp(dot${r} * u.scale - m${r}) / l${r}; }`);
}

/**
 * Backward, part 1: dq, and rowDot = probs . dProbs per row; rows as in the forward.
 * dq, dOut, q: (B,T,H,D); k, v: (B,T,Hkv,D); stats: (B,H,T,2); rowDot: (B,H,T). Pass 1
 * recomputes probs from the scores and stats and sums rowDot = probs . (dOut . v), keeping probs
 * and dProbs of keys s < SCORE_FLOATS / rows in private arrays; pass 2 forms
 * dScores = probs * (dProbs - rowDot) * scale and adds dScores * k into dq, recomputing probs and
 * dProbs (same operations, same order, same bits) for keys past the private arrays.
 */
export function attentionBackwardRowsWgsl(cap: number, R: number): string {
  const SC = scoreSlots(R);
  const dScores = each(R, (r) =>
    `    var ds${r} = 0.0;
    if (ok${r} && s <= t${r}) { ds${r} = pr${r} * (dv${r} - rd${r}) * u.scale; }`);
  return `${prologue(R, ["dq", "rowDot", "dOut", "q", "k", "v", "stats"])}
${queryRows(R)}
  var qv: array<f32, ${R * cap}>;
  var go: array<f32, ${R * cap}>;
  var acc: array<f32, ${R * cap}>;
  var kr: array<f32, ${cap}>;
  var ps: array<f32, ${R * SC}>;
  var pv: array<f32, ${R * SC}>;
  for (var d = 0u; d < D; d++) {
${
    each(R, (r) =>
      `    qv[${r * cap}u + d] = q[q${r} + d];\n    go[${r * cap}u + d] = dOut[q${r} + d];`)
  }
  }
${
    each(R, (r) =>
      `  let m${r} = stats[row${r} * 2u];\n  let l${r} = stats[row${r} * 2u + 1u];\n  var rd${r} = 0.0;`)
  }
  let sA = min(sEnd, ${SC}u);
  for (var s = 0u; s < sEnd; s++) {
${dots(R, cap, true, false)}
${recomputeProbs(R)}
${
    each(R, (r) =>
      `    if (s < ${SC}u) { ps[${r * SC}u + s] = pr${r}; pv[${r * SC}u + s] = dv${r}; }
    if (ok${r} && s <= t${r}) { rd${r} += pr${r} * dv${r}; }`)
  }
  }
  for (var s = 0u; s < sA; s++) {
${each(R, (r) => `    let pr${r} = ps[${r * SC}u + s];\n    let dv${r} = pv[${r * SC}u + s];`)}
${dScores}
    let kb = ((b * T + s) * Hkv + kvh) * D;
    for (var d = 0u; d < D; d++) {
      let kd = k[kb + d];
${each(R, (r) => `      acc[${r * cap}u + d] += ds${r} * kd;`)}
    }
  }
  for (var s = sA; s < sEnd; s++) {
${dots(R, cap, true, true)}
${recomputeProbs(R)}
${dScores}
    for (var d = 0u; d < D; d++) {
      let kd = kr[d];
${each(R, (r) => `      acc[${r * cap}u + d] += ds${r} * kd;`)}
    }
  }
${
    each(R, (r) =>
      `  if (ok${r}) {
    for (var d = 0u; d < D; d++) { dq[q${r} + d] = acc[${r * cap}u + d]; }
    rowDot[row${r}] = rd${r};
  }`)
  }
}
`;
}

/**
 * Backward, part 2: dk and dv; invocation i -> (b, kvh), key rows s from (i / (B*Hkv)) * keys,
 * each summed over the group's heads, then t >= s, in that fixed order; probs and dScores are
 * recomputed per (t, s) from q, k, v, dOut, stats and rowDot.
 * dk, dv, k, v: (B,T,Hkv,D); q, dOut: (B,T,H,D); stats: (B,H,T,2); rowDot: (B,H,T)
 */
export function attentionBackwardKvWgsl(cap: number, R: number): string {
  return `${prologue(R, ["dk", "dv", "rowDot", "stats", "q", "dOut", "k", "v"])}
  let last = min(first + ${R}u, T) - 1u;
${
    each(R, (r) =>
      `  let s${r} = min(first + ${r}u, last);
  let ok${r} = first + ${r}u <= last;
  let kb${r} = ((b * T + s${r}) * Hkv + kvh) * D;`)
  }
  var kr: array<f32, ${R * cap}>;
  var vr: array<f32, ${R * cap}>;
  var gk: array<f32, ${R * cap}>;
  var gv: array<f32, ${R * cap}>;
  var qt: array<f32, ${cap}>;
  var ot: array<f32, ${cap}>;
  for (var d = 0u; d < D; d++) {
${
    each(R, (r) =>
      `    kr[${r * cap}u + d] = k[kb${r} + d];\n    vr[${r * cap}u + d] = v[kb${r} + d];`)
  }
  }
  for (var h = kvh * G; h < (kvh + 1u) * G; h++) {
    for (var t = first; t < T; t++) {
      let row = (b * H + h) * T + t;
      let qb = ((b * T + t) * H + h) * D;
${each(R, (r) => `      var dot${r} = 0.0;\n      var dp${r} = 0.0;`)}
      for (var d = 0u; d < D; d++) {
        let qd = q[qb + d];
        let od = dOut[qb + d];
        qt[d] = qd;
        ot[d] = od;
${
    each(R, (r) =>
      `        dot${r} += qd * kr[${r * cap}u + d];\n        dp${r} += od * vr[${r * cap}u + d];`)
  }
      }
      let m = stats[row * 2u];
      let l = stats[row * 2u + 1u];
      let rd = rowDot[row];
${
    each(R, (r) =>
      `      var ds${r} = 0.0;
      var pr${r} = 0.0;
      if (s${r} <= t) {
        pr${r} = exp(dot${r} * u.scale - m) / l;
        ds${r} = pr${r} * (dp${r} - rd) * u.scale;
      }`)
  }
      for (var d = 0u; d < D; d++) {
        let qd = qt[d];
        let od = ot[d];
${
    each(R, (r) =>
      `        gk[${r * cap}u + d] += ds${r} * qd;\n        gv[${r * cap}u + d] += pr${r} * od;`)
  }
      }
    }
  }
${
    each(R, (r) =>
      `  if (ok${r}) {
    for (var d = 0u; d < D; d++) { dk[kb${r} + d] = gk[${r * cap}u + d]; dv[kb${r} + d] = gv[${
        r * cap
      }u + d]; }
  }`)
  }
}
`;
}
