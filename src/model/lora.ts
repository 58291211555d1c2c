/**
 * LoRA (Hu et al. 2021) as PEFT defines it: each target linear `y = x W^T + b` of the frozen base
 * gains `scaling * B(A(dropout(x)))` with A (r, in) drawn Kaiming-uniform (a = √5, PEFT's
 * `init_lora_weights=True`), B (out, r) zero and `scaling = lora_alpha / r`; the dropout acts on
 * the adapter's input only. Tensor names are PEFT's
 * (`base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`), so an adapter folder this
 * library writes loads with `PeftModel.from_pretrained(base, dir)`.
 *
 * The options type, the defaults, the target-module names and the adapter's parameter count live
 * here once: the flags, the model, the memory plan and the saved adapter_config.json read them.
 *
 * @module
 */

import { seededRandom } from "../data/sampler.ts";
import type { ModelConfig } from "./config.ts";
import { PARAM_ALIGN, type ParamLayout, type ParamSlot } from "./params.ts";

/** The linear layers of a Llama-family decoder layer, by PEFT's (HF's) module names. */
export const LORA_MODULES = [
  "q_proj",
  "k_proj",
  "v_proj",
  "o_proj",
  "gate_proj",
  "up_proj",
  "down_proj",
] as const;

/** A linear module LoRA can wrap. */
export type LoraModule = typeof LORA_MODULES[number];

/** LoRA options (PEFT's LoraConfig names in camelCase). */
export interface LoraOptions {
  /** Rank r of A (r, in) and B (out, r). @default 16 */
  r: number;
  /** `lora_alpha`; the update is scaled by alpha / r. @default 32 */
  alpha: number;
  /** `lora_dropout` on the adapter's input, seeded and deterministic. @default 0.05 */
  dropout: number;
  /** Wrapped modules; `all-linear` resolves to every linear but the LM head. @default q,k,v,o */
  targetModules: LoraModule[];
}

/** PEFT-style defaults of this library's `--use-peft` (TRL's ModelConfig defaults). */
export const LORA_DEFAULTS: Readonly<LoraOptions> = Object.freeze({
  r: 16,
  alpha: 32,
  dropout: 0.05,
  targetModules: ["q_proj", "k_proj", "v_proj", "o_proj"] as LoraModule[],
});

/**
 * Target modules from `--lora-target-modules` / adapter_config.json: `all-linear` (PEFT: every
 * linear except the output layer) or a list of module names; returned in layer order.
 * @throws RangeError naming the unknown module and the known ones.
 */
export function resolveTargetModules(spec: string | readonly string[]): LoraModule[] {
  const names = typeof spec === "string"
    ? spec.split(",").map((s) => s.trim()).filter(Boolean)
    : [...spec];
  if (names.length === 1 && names[0] === "all-linear") return [...LORA_MODULES];
  if (names.length === 0) {
    throw new RangeError(`no LoRA target modules: give some of ${LORA_MODULES.join(", ")}`);
  }
  for (const n of names) {
    if (n === "lm_head") {
      throw new RangeError("lm_head cannot be a LoRA target here (PEFT's all-linear skips it too)");
    }
    if (!(LORA_MODULES as readonly string[]).includes(n)) {
      throw new RangeError(
        `unknown LoRA target module "${n}": expected all-linear or some of ${
          LORA_MODULES.join(", ")
        }`,
      );
    }
  }
  return LORA_MODULES.filter((m) => names.includes(m));
}

/** Checks r, alpha and dropout; the message names PEFT's field. */
export function checkLoraOptions(o: LoraOptions): void {
  if (!(Number.isInteger(o.r) && o.r > 0)) {
    throw new RangeError(`lora r must be a positive integer, got ${o.r}`);
  }
  if (!(Number.isFinite(o.alpha) && o.alpha > 0)) {
    throw new RangeError(`lora_alpha must be > 0, got ${o.alpha}`);
  }
  if (!(o.dropout >= 0 && o.dropout < 1)) {
    throw new RangeError(`lora_dropout must be in [0, 1), got ${o.dropout}`);
  }
}

/** `{ in, out }` features of a module of `config` (HF weight `[out, in]`). */
export function moduleShape(config: ModelConfig, module: LoraModule): { in: number; out: number } {
  const { hiddenSize: C, intermediateSize: F, numHeads: H, numKvHeads: Hkv, headDim: D } = config;
  switch (module) {
    case "q_proj":
      return { in: C, out: H * D };
    case "k_proj":
    case "v_proj":
      return { in: C, out: Hkv * D };
    case "o_proj":
      return { in: H * D, out: C };
    case "gate_proj":
    case "up_proj":
      return { in: C, out: F };
    case "down_proj":
      return { in: F, out: C };
  }
}

/** The HF name of a module of layer `l`, e.g. `model.layers.0.self_attn.q_proj`. */
export function moduleName(l: number, module: LoraModule): string {
  const block = ["gate_proj", "up_proj", "down_proj"].includes(module) ? "mlp" : "self_attn";
  return `model.layers.${l}.${block}.${module}`;
}

/** PEFT's saved name of an adapter matrix: `base_model.model.<module>.lora_A.weight`. */
export function loraTensorName(l: number, module: LoraModule, which: "A" | "B"): string {
  return `base_model.model.${moduleName(l, module)}.lora_${which}.weight`;
}

/** Adapter parameters of one module: r × (in + out). */
export function moduleLoraParameters(config: ModelConfig, module: LoraModule, r: number): number {
  const s = moduleShape(config, module);
  return r * (s.in + s.out);
}

/** Adapter parameters of a whole model (every layer, every target module). */
export function loraParameterCount(
  config: ModelConfig,
  o: Pick<LoraOptions, "r" | "targetModules">,
): number {
  const perLayer = o.targetModules.reduce((n, m) => n + moduleLoraParameters(config, m, o.r), 0);
  return perLayer * config.numLayers;
}

/**
 * The adapter's arena layout: per layer and target module A (r, in) then B (out, r), under
 * PEFT's names, each slot aligned to {@link PARAM_ALIGN} like the base's parameters.
 */
export function loraLayout(config: ModelConfig, o: LoraOptions): ParamLayout {
  const slots: ParamSlot[] = [];
  let offset = 0;
  let count = 0;
  for (let l = 0; l < config.numLayers; l++) {
    for (const m of o.targetModules) {
      const s = moduleShape(config, m);
      for (const [which, shape] of [["A", [o.r, s.in]], ["B", [s.out, o.r]]] as const) {
        const size = shape[0] * shape[1];
        slots.push({ name: loraTensorName(l, m, which), shape: [...shape], offset, size });
        offset += Math.ceil(size / PARAM_ALIGN) * PARAM_ALIGN;
        count += size;
      }
    }
  }
  return { slots, byName: new Map(slots.map((s) => [s.name, s])), total: offset, count };
}

/**
 * Fresh adapter weights as PEFT initialises them: A ~ U(-1/√in, 1/√in) (torch's
 * `kaiming_uniform_(a=√5)`: gain √(2/(1+5)), bound √3·gain/√fan_in), B = 0. Seeded.
 */
export function initLoraWeights(
  layout: ParamLayout,
  seed: number,
): Map<string, { shape: number[]; data: Float32Array }> {
  const uniform = seededRandom(seed);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const slot of layout.slots) {
    const data = new Float32Array(slot.size);
    if (slot.name.endsWith("lora_A.weight")) {
      const bound = 1 / Math.sqrt(slot.shape[1]);
      for (let i = 0; i < data.length; i++) data[i] = (2 * uniform() - 1) * bound;
    }
    out.set(slot.name, { shape: slot.shape, data });
  }
  return out;
}
