import { rope } from "../../src/cpu/rope.ts";
import { ropeTables } from "../../src/model/rope_tables.ts";
import { assertClose, randomArray } from "../helpers.ts";

const B = 2, T = 4, H = 2, D = 8, n = B * T * H * D;

function tables(): { cos: Float64Array; sin: Float64Array } {
  const { cos, sin } = ropeTables(T, D, 10000);
  return { cos: Float64Array.from(cos), sin: Float64Array.from(sin) };
}

Deno.test("rope rotates the two halves of a head (HF rotate_half)", () => {
  // One row at position 1 of T=2, D=4: pairs (x[0], x[2]) and (x[1], x[3]).
  const cos = Float64Array.of(1, 1, 0.6, 0.8), sin = Float64Array.of(0, 0, 0.8, 0.6);
  const x = Float64Array.of(0, 0, 0, 0, 1, 2, 3, 4); // rows 0 and 1, H = 1
  rope(x, cos, sin, 2, 2, 1, 4, false);
  const expected = [
    0,
    0,
    0,
    0,
    1 * 0.6 - 3 * 0.8,
    2 * 0.8 - 4 * 0.6,
    3 * 0.6 + 1 * 0.8,
    4 * 0.8 + 2 * 0.6,
  ];
  assertClose(x, expected, { atol: 1e-15, rtol: 0, label: "x" });
});

Deno.test("rope inverse undoes the forward", () => {
  const { cos, sin } = tables();
  const x0 = Float64Array.from(randomArray(n, 21));
  const x = x0.slice();
  rope(x, cos, sin, B * T, T, H, D, false);
  rope(x, cos, sin, B * T, T, H, D, true);
  // The f32-rounded tables satisfy cos^2 + sin^2 = 1 only to about 1e-7.
  assertClose(x, x0, { atol: 1e-6, rtol: 0, label: "x" });
});

Deno.test("rope inverse is the backward of rope (matches finite differences)", () => {
  // loss = sum(rope(x) * probe); d loss / dx = rope_inverse(probe).
  const { cos, sin } = tables();
  const x = Float64Array.from(randomArray(n, 22));
  const probe = Float64Array.from(randomArray(n, 23));
  const loss = () => {
    const y = x.slice();
    rope(y, cos, sin, B * T, T, H, D, false);
    return y.reduce((s, v, i) => s + v * probe[i], 0);
  };
  const dx = probe.slice();
  rope(dx, cos, sin, B * T, T, H, D, true);
  const h = 1e-6;
  const numeric = x.map((_, i) => {
    const saved = x[i];
    x[i] = saved + h;
    const plus = loss();
    x[i] = saved - h;
    const minus = loss();
    x[i] = saved;
    return (plus - minus) / (2 * h);
  });
  assertClose(dx, numeric, { atol: 1e-8, rtol: 1e-6, label: "dx" });
});
