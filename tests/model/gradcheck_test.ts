/**
 * Finite-difference check of the whole model's backward on the CPU reference in float64:
 * GQA with tied embeddings, Qwen2 with q/k/v bias and an untied head, and multi-head untied.
 */

import { assertClose, cpu, randomArray } from "../helpers.ts";
import { fixtureModel, FIXTURES, forwardBackward, readFixture } from "./fixture.ts";
import type { LlamaModel } from "../../src/model/llama.ts";

async function lossAt(model: LlamaModel, weights: number[]): Promise<number> {
  model.forward();
  const logps = await model.backend.read(model.acts.seqLogps);
  return weights.reduce((sum, w, i) => sum + w * logps[i], 0);
}

for (const name of FIXTURES) {
  Deno.test(`model gradients match central finite differences in float64 (${name})`, async () => {
    const f = await readFixture(name);
    const backend = cpu("f64");
    const { model } = fixtureModel(backend, f);
    const { grads } = await forwardBackward(model, f.loss_weights);
    const h = 1e-6;
    let checked = 0;
    for (const slot of model.layout.slots) {
      const view = model.params.get(slot.name);
      const values = await backend.read(view);
      // Three entries per tensor, chosen by a fixed pseudo-random draw.
      const picks = Array.from(
        randomArray(3, slot.offset + 7),
        (u) => Math.floor((u + 1) / 2 * slot.size) % slot.size,
      );
      const numeric: number[] = [];
      const analytic: number[] = [];
      for (const i of picks) {
        const x = values[i];
        backend.write(view, [x + h], i);
        const plus = await lossAt(model, f.loss_weights);
        backend.write(view, [x - h], i);
        const minus = await lossAt(model, f.loss_weights);
        backend.write(view, [x], i);
        numeric.push((plus - minus) / (2 * h));
        analytic.push(grads.get(slot.name)!.data[i]);
        checked++;
      }
      assertClose(analytic, numeric, { atol: 1e-7, rtol: 1e-6, label: slot.name });
    }
    if (checked < 20) throw new Error(`only ${checked} entries checked`);
  });
}
