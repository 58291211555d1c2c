/**
 * WGSL of the software-adapter (rows-per-invocation) attention kernels; the layout, its cost
 * model and its determinism are described in attention.ts, which launches them.
 *
 * Every loop over keys (forward, dq) or query rows (dk/dv) takes U of them per iteration, then
 * the rest one at a time: each private value (a q or dOut element, an accumulator) is read and
 * written once per U keys instead of once per key, while every sum still adds its terms one by
 * one in ascending order, so U never changes a bit of the result.
 *
 * @module
 */

import { F32_LOWEST } from "../context.ts";

/** Invocations per workgroup of these kernels. */
export const WG = 64;
/** Private floats per invocation for cached scores (and, in the backward, per array). */
export const SCORE_FLOATS = 256;
/** Keys (or, in dk/dv, query rows) per loop iteration. */
export const UNROLL = 2;

/** `f(r)` for r in 0..n, joined by newlines: the per-row statements, unrolled. */
const each = (n: number, f: (r: number) => string) =>
  Array.from({ length: n }, (_, r) => f(r)).join("\n");
/** `f(r, j)` for every row r < R and key j < U, rows outer. */
const eachRJ = (R: number, U: number, f: (r: number, j: number) => string) =>
  each(R, (r) => each(U, (j) => f(r, j)));

/** Scores each row keeps in a private array: SCORE_FLOATS shared by the block's rows. */
export function scoreSlots(R: number): number {
  return Math.floor(SCORE_FLOATS / R);
}

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

/**
 * A loop of `v` from `from` to `to`, U at a time and then one at a time; body(n) handles
 * v + j for j < n, named v0..v{n-1}.
 */
function unrolled(v: string, from: string, to: string, U: number, body: (n: number) => string) {
  const names = (n: number) => each(n, (j) => `    let ${v}${j} = ${v} + ${j}u;`);
  return `  {
  var ${v} = ${from};
  for (; ${v} + ${U}u <= ${to}; ${v} += ${U}u) {
${names(U)}
${body(U)}
  }
  for (; ${v} < ${to}; ${v}++) {
${names(1)}
${body(1)}
  }
  }`;
}

// Whether row r takes key s{j} (the row exists and the key is not in its future).
const live = (r: number, j: number) => `ok${r} && s${j} <= t${r}`;

// dot{r}_{j} = q_r . k[s{j}] (and, with `withV`, dv{r}_{j} = dOut_r . v[s{j}]), d ascending;
// with `keepK` the k rows are kept in kr for the dq pass.
function dots(R: number, U: number, cap: number, withV: boolean, keepK: boolean): string {
  return `${each(U, (j) => `    let kb${j} = ((b * T + s${j}) * Hkv + kvh) * D;`)}
${
    eachRJ(R, U, (r, j) =>
      `    var dot${r}_${j} = 0.0;${withV ? `\n    var dv${r}_${j} = 0.0;` : ""}`)
  }
    for (var d = 0u; d < D; d++) {
${
    each(U, (j) =>
      `      let kd${j} = k[kb${j} + d];${keepK ? `\n      kr[${j * cap}u + d] = kd${j};` : ""}${
        withV ? `\n      let vd${j} = v[kb${j} + d];` : ""
      }`)
  }
${
    each(R, (r) =>
      `      let qd${r} = qv[${r * cap}u + d];${
        withV ? `\n      let gd${r} = go[${r * cap}u + d];` : ""
      }
${
        each(U, (j) =>
          `      dot${r}_${j} += qd${r} * kd${j};${
            withV ? `\n      dv${r}_${j} += gd${r} * vd${j};` : ""
          }`)
      }`)
  }
    }`;
}

// acc[r] += w{r}_{j} * x[s{j}] for each key j in order, each accumulator read and written once.
function accumulate(R: number, U: number, cap: number, w: string, load: (j: number) => string) {
  return `    for (var d = 0u; d < D; d++) {
${each(U, (j) => `      let xd${j} = ${load(j)};`)}
${
    each(R, (r) =>
      `      var a${r} = acc[${r * cap}u + d];
${each(U, (j) => `      a${r} += ${w}${r}_${j} * xd${j};`)}
      acc[${r * cap}u + d] = a${r};`)
  }
    }`;
}

// Loads the block's q rows (and dOut rows into go) into private arrays.
function loadRows(R: number, cap: number, withGo: boolean): string {
  return `  for (var d = 0u; d < D; d++) {
${
    each(R, (r) =>
      `    qv[${r * cap}u + d] = q[q${r} + d];${
        withGo ? `\n    go[${r * cap}u + d] = dOut[q${r} + d];` : ""
      }`)
  }
  }`;
}

/**
 * Forward; invocation i -> (b, kvh) = i % (B*Hkv), query rows from (i / (B*Hkv)) * rows.
 * out, q: (B,T,H,D); k, v: (B,T,Hkv,D); stats: (B,H,T,2). Three passes over s (no (T, T)
 * buffer): the row max, keeping each score x = q . k * scale of keys s < SC in a private array;
 * e = exp(x - max), summed and kept in place of x; then probs = e / sum and out += probs * v.
 * Keys past the private array get their scores (and e) computed afresh, by the same operations in
 * the same order, so every value is the same bits as when the scores were stored in a buffer.
 */
export function attentionForwardWgsl(cap: number, R: number, U = UNROLL): string {
  const SC = scoreSlots(R);
  const pv = (n: number) => accumulate(R, n, cap, "pr", (j) => `v[kb${j} + d]`);
  const probs = (n: number, e: (r: number, j: number) => string) =>
    `${
      eachRJ(R, n, (r, j) =>
        `    var pr${r}_${j} = 0.0;\n    if (${live(r, j)}) { pr${r}_${j} = ${e(r, j)} / l${r}; }`)
    }
${pv(n)}`;
  const fresh = (r: number, j: number) => `exp(dot${r}_${j} * u.scale - m${r})`;
  return `${prologue(R, ["out", "stats", "q", "k", "v"])}
${queryRows(R)}
  var qv: array<f32, ${R * cap}>;
  var acc: array<f32, ${R * cap}>;
  var sc: array<f32, ${R * SC}>;
${loadRows(R, cap, false)}
${each(R, (r) => `  var m${r} = ${F32_LOWEST};\n  var l${r} = 0.0;`)}
  let sA = min(sEnd, ${SC}u);
${
    unrolled("s", "0u", "sEnd", U, (n) =>
      `${dots(R, n, cap, false, false)}
${
        eachRJ(R, n, (r, j) =>
          `    let x${r}_${j} = dot${r}_${j} * u.scale;
    if (s${j} < ${SC}u) { sc[${r * SC}u + s${j}] = x${r}_${j}; }
    if (${live(r, j)}) { m${r} = max(m${r}, x${r}_${j}); }`)
      }`)
  }
  for (var s0 = 0u; s0 < sA; s0++) {
${
    each(R, (r) =>
      `    if (${live(r, 0)}) { let e = exp(sc[${r * SC}u + s0] - m${r}); sc[${
        r * SC
      }u + s0] = e; l${r} += e; }`)
  }
  }
${
    unrolled("s", "sA", "sEnd", U, (n) =>
      `${dots(R, n, cap, false, false)}
${eachRJ(R, n, (r, j) => `    if (${live(r, j)}) { l${r} += ${fresh(r, j)}; }`)}`)
  }
${
    unrolled("s", "0u", "sA", U, (n) =>
      `${
        each(n, (j) => `    let kb${j} = ((b * T + s${j}) * Hkv + kvh) * D;`)
      }
${
        probs(n, (r, j) => `sc[${r * SC}u + s${j}]`)
      }`)
  }
${unrolled("s", "sA", "sEnd", U, (n) => `${dots(R, n, cap, false, false)}\n${probs(n, fresh)}`)}
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

/**
 * Backward, part 1: dq, and rowDot = probs . dProbs per row; rows as in the forward.
 * dq, dOut, q: (B,T,H,D); k, v: (B,T,Hkv,D); stats: (B,H,T,2); rowDot: (B,H,T). Pass 1
 * recomputes probs from the scores and stats and sums rowDot = probs . (dOut . v), keeping probs
 * and dProbs of keys s < SCORE_FLOATS / rows in private arrays; pass 2 forms
 * dScores = probs * (dProbs - rowDot) * scale and adds dScores * k into dq, recomputing probs and
 * dProbs (same operations, same order, same bits) for keys past the private arrays.
 */
export function attentionBackwardRowsWgsl(cap: number, R: number, U = UNROLL): string {
  const SC = scoreSlots(R);
  const probs = (n: number) =>
    eachRJ(R, n, (r, j) =>
      `    var pr${r}_${j} = 0.0;
    if (${live(r, j)}) { pr${r}_${j} = exp(dot${r}_${j} * u.scale - m${r}) / l${r}; }`);
  const dScores = (n: number) =>
    eachRJ(R, n, (r, j) =>
      `    var ds${r}_${j} = 0.0;
    if (${live(r, j)}) { ds${r}_${j} = pr${r}_${j} * (dv${r}_${j} - rd${r}) * u.scale; }`);
  const kb = (n: number) => each(n, (j) => `    let kb${j} = ((b * T + s${j}) * Hkv + kvh) * D;`);
  return `${prologue(R, ["dq", "rowDot", "dOut", "q", "k", "v", "stats"])}
${queryRows(R)}
  var qv: array<f32, ${R * cap}>;
  var go: array<f32, ${R * cap}>;
  var acc: array<f32, ${R * cap}>;
  var kr: array<f32, ${U * cap}>;
  var ps: array<f32, ${R * SC}>;
  var pv: array<f32, ${R * SC}>;
${loadRows(R, cap, true)}
${
    each(R, (r) =>
      `  let m${r} = stats[row${r} * 2u];\n  let l${r} = stats[row${r} * 2u + 1u];\n  var rd${r} = 0.0;`)
  }
  let sA = min(sEnd, ${SC}u);
${
    unrolled("s", "0u", "sEnd", U, (n) =>
      `${dots(R, n, cap, true, false)}
${probs(n)}
${
        eachRJ(R, n, (r, j) =>
          `    if (s${j} < ${SC}u) { ps[${r * SC}u + s${j}] = pr${r}_${j}; pv[${
            r * SC
          }u + s${j}] = dv${r}_${j}; }
    if (${live(r, j)}) { rd${r} += pr${r}_${j} * dv${r}_${j}; }`)
      }`)
  }
${
    unrolled("s", "0u", "sA", U, (n) =>
      `${
        eachRJ(R, n, (r, j) =>
          `    let pr${r}_${j} = ps[${r * SC}u + s${j}];\n    let dv${r}_${j} = pv[${
            r * SC
          }u + s${j}];`)
      }
${dScores(n)}
${kb(n)}
${
        accumulate(R, n, cap, "ds", (j) => `k[kb${j} + d]`)
      }`)
  }
${
    unrolled("s", "sA", "sEnd", U, (n) =>
      `${dots(R, n, cap, true, true)}
${probs(n)}
${dScores(n)}
${accumulate(R, n, cap, "ds", (j) => `kr[${j * cap}u + d]`)}`)
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
 * each summed over the group's heads, then t >= s, in that fixed order (U query rows t per
 * iteration); probs and dScores are recomputed per (t, s) from q, k, v, dOut, stats and rowDot.
 * dk, dv, k, v: (B,T,Hkv,D); q, dOut: (B,T,H,D); stats: (B,H,T,2); rowDot: (B,H,T)
 */
export function attentionBackwardKvWgsl(cap: number, R: number, U = UNROLL): string {
  const body = (n: number) =>
    `${
      each(n, (j) =>
        `    let row${j} = (b * H + h) * T + t${j};\n    let qb${j} = ((b * T + t${j}) * H + h) * D;`)
    }
${eachRJ(R, n, (r, j) => `    var dot${r}_${j} = 0.0;\n    var dp${r}_${j} = 0.0;`)}
    for (var d = 0u; d < D; d++) {
${
      each(n, (j) =>
        `      let qd${j} = q[qb${j} + d];
      let od${j} = dOut[qb${j} + d];
      qt[${j * cap}u + d] = qd${j};
      ot[${j * cap}u + d] = od${j};`)
    }
${
      each(R, (r) =>
        `      let kd${r} = kr[${r * cap}u + d];
      let vd${r} = vr[${r * cap}u + d];
${each(n, (j) => `      dot${r}_${j} += qd${j} * kd${r};\n      dp${r}_${j} += od${j} * vd${r};`)}`)
    }
    }
${
      each(n, (j) =>
        `    let m${j} = stats[row${j} * 2u];
    let l${j} = stats[row${j} * 2u + 1u];
    let rd${j} = rowDot[row${j}];`)
    }
${
      eachRJ(R, n, (r, j) =>
        `    var ds${r}_${j} = 0.0;
    var pr${r}_${j} = 0.0;
    if (s${r} <= t${j}) {
      pr${r}_${j} = exp(dot${r}_${j} * u.scale - m${j}) / l${j};
      ds${r}_${j} = pr${r}_${j} * (dp${r}_${j} - rd${j}) * u.scale;
    }`)
    }
    for (var d = 0u; d < D; d++) {
${
      each(n, (j) =>
        `      let qd${j} = qt[${j * cap}u + d];\n      let od${j} = ot[${j * cap}u + d];`)
    }
${
      each(R, (r) =>
        `      var gk${r} = gk[${r * cap}u + d];
      var gv${r} = gv[${r * cap}u + d];
${each(n, (j) => `      gk${r} += ds${r}_${j} * qd${j};\n      gv${r} += pr${r}_${j} * od${j};`)}
      gk[${r * cap}u + d] = gk${r};
      gv[${r * cap}u + d] = gv${r};`)
    }
    }`;
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
  var qt: array<f32, ${U * cap}>;
  var ot: array<f32, ${U * cap}>;
  for (var d = 0u; d < D; d++) {
${
    each(R, (r) =>
      `    kr[${r * cap}u + d] = k[kb${r} + d];\n    vr[${r * cap}u + d] = v[kb${r} + d];`)
  }
  }
  for (var h = kvh * G; h < (kvh + 1u) * G; h++) {
${unrolled("t", "first", "T", U, body)}
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
