import { rmsnormBackward, rmsnormForward } from "../../src/cpu/rmsnorm.ts";
import { assertClose, randomArray } from "../helpers.ts";

const N = 3, C = 5, EPS = 1e-5;

Deno.test("rmsnormForward normalises by the root mean square and scales by w", () => {
  const x = Float64Array.of(1, 2, 3, 4, 5);
  const w = Float64Array.of(1, 1, 2, 1, 0.5);
  const out = new Float64Array(5), rstd = new Float64Array(1);
  rmsnormForward(out, rstd, x, w, 1, 5, 0);
  const r = 1 / Math.sqrt((1 + 4 + 9 + 16 + 25) / 5);
  assertClose(rstd, [r], { atol: 0, rtol: 1e-15, label: "rstd" });
  assertClose(out, [r, 2 * r, 6 * r, 4 * r, 2.5 * r], { atol: 0, rtol: 1e-15, label: "out" });
});

Deno.test("rmsnormForward adds eps to the mean square (a row small enough for eps to dominate)", () => {
  // mean(x^2) = 7.5e-6 and eps = 1e-5: rstd = 1/sqrt(1.75e-5), not 1/sqrt(7.5e-6).
  const x = Float64Array.of(1e-3, -2e-3, 3e-3, -4e-3);
  const w = Float64Array.of(1, 2, 1, 0.5);
  const out = new Float64Array(4), rstd = new Float64Array(1);
  rmsnormForward(out, rstd, x, w, 1, 4, 1e-5);
  const r = 1 / Math.sqrt(1.75e-5);
  assertClose(rstd, [r], { atol: 0, rtol: 1e-15, label: "rstd" });
  assertClose(out, [1e-3 * r, -4e-3 * r, 3e-3 * r, -2e-3 * r], {
    atol: 0,
    rtol: 1e-15,
    label: "out",
  });
});

Deno.test("rmsnormBackward matches finite differences (dx set and accumulated, dw accumulated)", () => {
  const x = Float64Array.from(randomArray(N * C, 11));
  const w = Float64Array.from(randomArray(C, 12, 2));
  const probe = Float64Array.from(randomArray(N * C, 13)); // loss = sum(out * probe)
  const loss = () => {
    const out = new Float64Array(N * C), rstd = new Float64Array(N);
    rmsnormForward(out, rstd, x, w, N, C, EPS);
    return out.reduce((s, o, i) => s + o * probe[i], 0);
  };
  const numeric = (p: Float64Array, i: number) => {
    const h = 1e-6, saved = p[i];
    p[i] = saved + h;
    const plus = loss();
    p[i] = saved - h;
    const minus = loss();
    p[i] = saved;
    return (plus - minus) / (2 * h);
  };
  const out = new Float64Array(N * C), rstd = new Float64Array(N);
  rmsnormForward(out, rstd, x, w, N, C, EPS);
  const priorDx = Float64Array.from(randomArray(N * C, 14));
  const priorDw = Float64Array.from(randomArray(C, 15));
  const dx = new Float64Array(N * C), dw = priorDw.slice();
  rmsnormBackward(dx, dw, probe, x, w, rstd, N, C, false);
  const dxAcc = priorDx.slice(), dwAgain = new Float64Array(C);
  rmsnormBackward(dxAcc, dwAgain, probe, x, w, rstd, N, C, true);

  const numericDx = x.map((_, i) => numeric(x, i));
  const numericDw = w.map((_, i) => numeric(w, i));
  const tol = { atol: 1e-8, rtol: 1e-6 };
  assertClose(dx, numericDx, { ...tol, label: "dx" });
  assertClose(dxAcc, numericDx.map((g, i) => g + priorDx[i]), { ...tol, label: "dx accumulated" });
  assertClose(dw, numericDw.map((g, i) => g + priorDw[i]), { ...tol, label: "dw" });
  assertClose(dwAgain, numericDw, { ...tol, label: "dw from zero" });
});
