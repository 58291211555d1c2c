import { colSum, matmul } from "../../src/cpu/matmul.ts";
import { assertClose, randomArray } from "../helpers.ts";

/** A (m,n) from the definition: stored a (m,k) or (k,m), b (k,n) or (n,k). */
function naive(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let p = 0; p < k; p++) {
        sum += (transA ? a[p * m + i] : a[i * k + p]) * (transB ? b[j * k + p] : b[p * n + j]);
      }
      out[i * n + j] = sum;
    }
  }
  return out;
}

const COMBOS = [[false, false], [false, true], [true, false], [true, true]] as const;
const SHAPES = [[1, 1, 1], [3, 5, 7], [26, 9, 16], [4, 13, 1]] as const;

Deno.test("matmul matches the triple loop for every transpose combination (f64, exact order)", () => {
  for (const [m, n, k] of SHAPES) {
    for (const [transA, transB] of COMBOS) {
      const a = Float64Array.from(randomArray(m * k, m + 10 * k));
      const b = Float64Array.from(randomArray(k * n, n + 20 * k));
      const out = new Float64Array(m * n);
      matmul(out, a, b, m, n, k, { transA, transB });
      // Both sum over k in ascending order in float64: rounding is identical.
      assertClose(out, naive(a, b, m, n, k, transA, transB), {
        atol: 1e-14,
        rtol: 1e-14,
        label: `${m}x${n}x${k} transA=${transA} transB=${transB}`,
      });
    }
  }
});

Deno.test("matmul in f32 rounds the float64 sum once per element", () => {
  const [m, n, k] = [7, 6, 33];
  for (const [transA, transB] of COMBOS) {
    const a = randomArray(m * k, 1), b = randomArray(k * n, 2);
    const out = new Float32Array(m * n);
    matmul(out, a, b, m, n, k, { transA, transB });
    const expected = Float32Array.from(naive(a, b, m, n, k, transA, transB));
    assertClose(out, expected, { atol: 0, rtol: 0, label: `transA=${transA} transB=${transB}` });
  }
});

Deno.test("matmul adds the bias to every row and accumulates into out", () => {
  const [m, n, k] = [5, 4, 3];
  for (const [transA, transB] of COMBOS) {
    const a = Float64Array.from(randomArray(m * k, 3)),
      b = Float64Array.from(randomArray(k * n, 4));
    const bias = Float64Array.from(randomArray(n, 5));
    const prior = Float64Array.from(randomArray(m * n, 6));
    const product = naive(a, b, m, n, k, transA, transB);
    const label = `transA=${transA} transB=${transB}`;

    const withBias = new Float64Array(m * n);
    matmul(withBias, a, b, m, n, k, { transA, transB, bias });
    assertClose(withBias, product.map((v, i) => v + bias[i % n]), { atol: 1e-15, label });

    const accumulated = prior.slice();
    matmul(accumulated, a, b, m, n, k, { transA, transB, accumulate: true, bias });
    const expected = product.map((v, i) => prior[i] + (v + bias[i % n]));
    assertClose(accumulated, expected, { atol: 1e-15, label: `${label} accumulate` });
  }
});

Deno.test("matmul with k = 0 stores the bias (an empty sum)", () => {
  const out = Float64Array.of(9, 9, 9, 9);
  matmul(out, new Float64Array(0), new Float64Array(0), 2, 2, 0, { bias: Float64Array.of(1, 2) });
  assertClose(out, [1, 2, 1, 2], { atol: 0, rtol: 0 });
});

Deno.test("matmul rejects short operands and an output that aliases an input", () => {
  const a = new Float32Array(6), b = new Float32Array(6), out = new Float32Array(4);
  let message = "";
  try {
    matmul(out, a, b, 2, 2, 4);
  } catch (e) {
    message = (e as Error).message;
  }
  if (!message.includes("a has 6 elements")) throw new Error(`unexpected: ${message}`);
  try {
    matmul(a, a, b, 2, 3, 2);
    throw new Error("aliasing was accepted");
  } catch (e) {
    if (!(e as Error).message.includes("overlaps")) throw e;
  }
});

Deno.test("colSum sums the rows in order, set and accumulated", () => {
  const [rows, cols] = [6, 5];
  const x = Float64Array.from(randomArray(rows * cols, 7));
  const expected = new Float64Array(cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) expected[c] += x[r * cols + c];
  const out = new Float64Array(cols).fill(3);
  colSum(out, x, rows, cols, false);
  assertClose(out, expected, { atol: 0, rtol: 0, label: "set" });
  colSum(out, x, rows, cols, true);
  assertClose(out, expected.map((v) => 2 * v), { atol: 1e-15, label: "accumulated" });
});

Deno.test("NN, TN and colSum are the gradients of the NT forward (finite differences, f64)", () => {
  // y (T,O) = x (T,I) @ W^T + bias with W (O,I) in HF layout; loss = sum(y * probe).
  const [T, I, O] = [4, 3, 5];
  const x = Float64Array.from(randomArray(T * I, 8));
  const w = Float64Array.from(randomArray(O * I, 9));
  const bias = Float64Array.from(randomArray(O, 10));
  const probe = Float64Array.from(randomArray(T * O, 11)); // dL/dy
  const loss = () => {
    const y = new Float64Array(T * O);
    matmul(y, x, w, T, O, I, { transB: true, bias });
    return y.reduce((s, v, i) => s + v * probe[i], 0);
  };
  const numeric = (p: Float64Array) =>
    p.map((saved, i) => {
      const h = 1e-6;
      p[i] = saved + h;
      const plus = loss();
      p[i] = saved - h;
      const minus = loss();
      p[i] = saved;
      return (plus - minus) / (2 * h);
    });
  const dx = new Float64Array(T * I), dw = new Float64Array(O * I), db = new Float64Array(O);
  matmul(dx, probe, w, T, I, O); // dX (T,I) = dY (T,O) @ W (O,I)
  matmul(dw, probe, x, O, I, T, { transA: true }); // dW (O,I) = dY^T @ X
  colSum(db, probe, T, O, false); // dBias (O) = sum over rows of dY
  assertClose(dx, numeric(x), { atol: 1e-8, rtol: 1e-6, label: "dx" });
  assertClose(dw, numeric(w), { atol: 1e-8, rtol: 1e-6, label: "dw" });
  assertClose(db, numeric(bias), { atol: 1e-8, rtol: 1e-6, label: "dbias" });
});
