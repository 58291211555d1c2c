/**
 * Every WGSL text the engine can generate: each kernel, each tiling (hardware, software and
 * scalar-load matmuls; rows-per-invocation and flash attention), each head-dimension
 * class. The shader tests compile the whole catalog in Deno and in Chromium, so a difference
 * between their shader compilers (naga and Tint) cannot reach users unnoticed.
 *
 * @module
 */

import {
  ATTENTION_TILING_CPU,
  ATTENTION_TILING_GPU,
  attentionKernel,
  type AttentionKernelKind,
  MAX_HEAD_DIM,
} from "./kernels/attention.ts";
import { FLASH_CANDIDATES, flashKernel, type FlashKernelKind } from "./kernels/attention_flash.ts";
import { decodeAttentionWgsl, KV_CACHE_WRITE_WGSL, ROPE_AT_WGSL } from "./kernels/decode.ts";
import { SAMPLE_TOKENS_WGSL } from "./kernels/sample.ts";
import {
  ADD_INPLACE_WGSL,
  ADD_WGSL,
  COPY_WGSL,
  DOUBLE_INPLACE_WGSL,
  DOUBLE_WGSL,
  DROPOUT_KERNELS,
  FILL_WGSL,
} from "./kernels/elementwise.ts";
import {
  EMBEDDING_BACKWARD_WGSL,
  EMBEDDING_FORWARD_WGSL,
  embeddingForwardHalf,
} from "./kernels/embedding.ts";
import { KL_ROWS_SMALL_WGSL, KL_ROWS_WGSL } from "./kernels/kl.ts";
import { KTO_LOSS_WGSL } from "./kernels/kto_loss.ts";
import {
  BROADCAST_SEQUENCE_WGSL,
  LOGITS_BACKWARD_WGSL,
  LOGITS_FORWARD_WGSL,
  SEQUENCE_SUM_WGSL,
} from "./kernels/logits.ts";
import { PREFERENCE_LOSS_WGSL, WEIGHTED_SUM_WGSL } from "./kernels/loss.ts";
import {
  COL_SUM_WGSL,
  MATMUL_TILING,
  MATMUL_TILING_SCALAR,
  MATMUL_TILING_SOFTWARE,
  matmulKernelName,
  type MatmulVariant,
  matmulWgsl,
} from "./kernels/matmul.ts";
import { TILED_CANDIDATES, tiledKernelName, tiledMatmulWgsl } from "./kernels/matmul_tiled.ts";
import {
  SUBGROUP_CANDIDATES,
  subgroupKernelName,
  subgroupMatmulWgsl,
} from "./kernels/matmul_subgroup.ts";
import {
  ADAMW_WGSL,
  RMSPROP_WGSL,
  SGD_WGSL,
  SUM_SQUARES_PARTIAL_WGSL,
  SUM_SQUARES_TOTAL_WGSL,
} from "./kernels/optimizer.ts";
import {
  RMSNORM_BACKWARD_DW_PARTIAL_WGSL,
  RMSNORM_BACKWARD_DW_SUM_WGSL,
  RMSNORM_BACKWARD_DX_ROW_WGSL,
  RMSNORM_BACKWARD_DX_WGSL,
  RMSNORM_FORWARD_ROW_WGSL,
  RMSNORM_FORWARD_WGSL,
} from "./kernels/rmsnorm.ts";
import { COPY_BLOCK_WGSL, MATMUL_CONTINUE_KERNELS } from "./kernels/pieces.ts";
import { ROPE_WGSL } from "./kernels/rope.ts";
import { lmHeadKernels } from "./lm_head.ts";
import { SWIGLU_BACKWARD_WGSL, SWIGLU_FORWARD_WGSL } from "./kernels/swiglu.ts";

/** One shader the engine can compile: its pipeline name and source. */
export interface CatalogShader {
  name: string;
  /** Which family it belongs to (matmul, attention, ...), for reports. */
  family: string;
  wgsl: string;
}

const FIXED: Record<string, Record<string, string>> = {
  elementwise: {
    add: ADD_WGSL,
    add_inplace: ADD_INPLACE_WGSL,
    add_double: DOUBLE_WGSL,
    add_double_inplace: DOUBLE_INPLACE_WGSL,
    copy: COPY_WGSL,
    fill: FILL_WGSL,
    ...DROPOUT_KERNELS,
  },
  embedding: {
    embedding_forward: EMBEDDING_FORWARD_WGSL,
    embedding_backward: EMBEDDING_BACKWARD_WGSL,
  },
  rmsnorm: {
    rmsnorm_forward: RMSNORM_FORWARD_WGSL,
    rmsnorm_forward_row: RMSNORM_FORWARD_ROW_WGSL,
    rmsnorm_backward_dx: RMSNORM_BACKWARD_DX_WGSL,
    rmsnorm_backward_dx_row: RMSNORM_BACKWARD_DX_ROW_WGSL,
    rmsnorm_backward_dw_partial: RMSNORM_BACKWARD_DW_PARTIAL_WGSL,
    rmsnorm_backward_dw_sum: RMSNORM_BACKWARD_DW_SUM_WGSL,
  },
  rope: { rope: ROPE_WGSL },
  swiglu: { swiglu_forward: SWIGLU_FORWARD_WGSL, swiglu_backward: SWIGLU_BACKWARD_WGSL },
  logits: {
    logitsForward: LOGITS_FORWARD_WGSL,
    logitsBackward: LOGITS_BACKWARD_WGSL,
    sequenceSum: SEQUENCE_SUM_WGSL,
    broadcastSequence: BROADCAST_SEQUENCE_WGSL,
  },
  lm_head: lmHeadKernels(),
  loss: {
    weighted_sum: WEIGHTED_SUM_WGSL,
    preference_loss: PREFERENCE_LOSS_WGSL,
    kto_loss: KTO_LOSS_WGSL,
  },
  kl: { klRowsSmall: KL_ROWS_SMALL_WGSL, klRows: KL_ROWS_WGSL },
  matmul: { col_sum: COL_SUM_WGSL },
  optimizer: {
    sumSquaresPartial: SUM_SQUARES_PARTIAL_WGSL,
    sumSquaresTotal: SUM_SQUARES_TOTAL_WGSL,
    optimizerAdamw: ADAMW_WGSL,
    optimizerRmsprop: RMSPROP_WGSL,
    optimizerSgd: SGD_WGSL,
  },
  pieces: { copy_block: COPY_BLOCK_WGSL, ...MATMUL_CONTINUE_KERNELS },
  decode: {
    decode_rope_at: ROPE_AT_WGSL,
    decode_kv_cache_write: KV_CACHE_WRITE_WGSL,
    decode_sample_tokens: SAMPLE_TOKENS_WGSL,
  },
};

/**
 * Every matmul variant `matmul` can pick: both vec4 operands take the hardware or the software
 * tiling, any scalar-load operand the scalar tiling; each with or without transposes, a vec4
 * output and a bias; and each variant in every workgroup-tiled candidate (kernels/matmul_tiled.ts).
 */
function matmulShaders(): CatalogShader[] {
  const out: CatalogShader[] = [];
  const bools = [false, true];
  for (const transA of bools) {
    for (const transB of bools) {
      for (const vecA of bools) {
        for (const vecB of bools) {
          for (const vecOut of bools) {
            for (const bias of bools) {
              const v: MatmulVariant = { transA, transB, vecA, vecB, vecOut, bias };
              const tilings = vecA && vecB
                ? [MATMUL_TILING, MATMUL_TILING_SOFTWARE]
                : [MATMUL_TILING_SCALAR];
              for (const t of tilings) {
                out.push({
                  name: matmulKernelName(v, t),
                  family: "matmul",
                  wgsl: matmulWgsl(v, t),
                });
              }
              // The hardware layouts: every candidate takes every variant.
              for (const t of TILED_CANDIDATES) {
                out.push({
                  name: tiledKernelName(v, t),
                  family: "matmul",
                  wgsl: tiledMatmulWgsl(v, t),
                });
              }
              // The subgroup candidates (compiled where the adapter has `subgroups`).
              for (const t of SUBGROUP_CANDIDATES) {
                out.push({
                  name: subgroupKernelName(v, t),
                  family: "matmul",
                  wgsl: subgroupMatmulWgsl(v, t),
                });
              }
            }
          }
        }
      }
    }
  }
  return out;
}

/** The weight loads of frozen half-precision weights: bf16, f16 with shader-f16, f16 unpacked. */
const HALF_LOADS = [
  { bDtype: "bf16", f16Mode: undefined },
  { bDtype: "f16", f16Mode: "native" },
  { bDtype: "f16", f16Mode: "unpack" },
] as const;

/**
 * The variants that read a frozen weight in half precision (src/gpu/kernels/weight_load.ts): the
 * projections and LM head (NT, vec4, with and without bias; the scalar form of odd shapes), their
 * input-gradient products (NN), and the embedding gather.
 */
function halfWeightShaders(): CatalogShader[] {
  const out: CatalogShader[] = [];
  for (const load of HALF_LOADS) {
    const forms: [Partial<MatmulVariant>, boolean][] = [
      [{ transB: true, bias: false }, true],
      [{ transB: true, bias: true }, true],
      [{ transB: false, bias: false }, true],
      [{ transB: true, bias: false }, false],
      [{ transB: false, bias: false }, false],
    ];
    for (const [form, vec] of forms) {
      for (const vecOut of [false, true]) {
        const v: MatmulVariant = {
          transA: false,
          transB: form.transB!,
          vecA: vec,
          vecB: vec,
          vecOut,
          bias: form.bias!,
          ...load,
        };
        const tilings = vec ? [MATMUL_TILING, MATMUL_TILING_SOFTWARE] : [MATMUL_TILING_SCALAR];
        for (const t of tilings) {
          out.push({ name: matmulKernelName(v, t), family: "matmul", wgsl: matmulWgsl(v, t) });
        }
      }
    }
    const [name, wgsl] = embeddingForwardHalf(load.bDtype, load.f16Mode ?? "unpack");
    if (!out.some((s) => s.name === name)) out.push({ name, family: "embedding", wgsl });
  }
  return out;
}

/** The attention kernels of both layouts, per head-dimension class and tiling. */
function attentionShaders(): CatalogShader[] {
  const out = new Map<string, CatalogShader>();
  const kinds: [AttentionKernelKind, "rows" | "keys"][] = [
    ["Forward", "rows"],
    ["BackwardRows", "rows"],
    ["BackwardKv", "keys"],
  ];
  for (let D = 32; D <= MAX_HEAD_DIM; D *= 2) {
    for (const tiling of [ATTENTION_TILING_CPU, ATTENTION_TILING_GPU]) {
      for (const [kind, axis] of kinds) {
        const { name, wgsl } = attentionKernel(kind, D, tiling[axis]);
        out.set(name, { name, family: "attention", wgsl });
      }
    }
    for (const tiling of FLASH_CANDIDATES) {
      for (const kind of ["Forward", "BackwardQ", "BackwardKv"] as FlashKernelKind[]) {
        const { name, wgsl } = flashKernel(kind, D, tiling);
        out.set(name, { name, family: "attention", wgsl });
      }
    }
  }
  return [...out.values()];
}

/** Decode attention for vec4 and scalar head dimensions. */
function decodeShaders(): CatalogShader[] {
  return [64, 30].map((D) => ({
    name: `decode_attention_d${D}`,
    family: "decode",
    wgsl: decodeAttentionWgsl(D),
  }));
}

/** The whole catalog, each name once. */
export function shaderCatalog(): CatalogShader[] {
  const fixed = Object.entries(FIXED).flatMap(([family, shaders]) =>
    Object.entries(shaders).map(([name, wgsl]) => ({ name, family, wgsl }))
  );
  return [
    ...fixed,
    ...matmulShaders(),
    ...halfWeightShaders(),
    ...attentionShaders(),
    ...decodeShaders(),
  ];
}
