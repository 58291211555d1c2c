/**
 * The backend contract: the interface both backends implement (the ops, tensors, the backend),
 * the loss specification and the pure loss functions both compute, the optimizer's scalar layout
 * and the reduction chunking, and the token index of a batch. The model, the trainer and both
 * backends import from here; this room imports nothing above it.
 *
 * @module
 */

export * from "./ops.ts";
export * from "./op_args.ts";
export * from "./dropout.ts";
export * from "./loss_spec.ts";
export * from "./hyper.ts";
export * from "./tokens.ts";
export * from "./losses.ts";
export * from "./kto_loss.ts";
export * from "./pair_terms.ts";
