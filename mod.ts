/**
 * clocgpu: train CLIP and CLOC vision-language models on any WebGPU GPU.
 *
 * @example
 * ```ts
 * import { requestGpu, setGpu, tensor, matmul } from "./mod.ts";
 * setGpu(await requestGpu());
 * ```
 *
 * @module
 */

export * from "./src/gpu/device.ts";
export * from "./src/tensor/tensor.ts";
export * from "./src/tensor/autograd.ts";
export * from "./src/ops/unary.ts";
export * from "./src/ops/binary.ts";
export * from "./src/ops/reduce.ts";
export * from "./src/ops/reshape.ts";
export * from "./src/ops/permute.ts";
export * from "./src/ops/slice.ts";
export * from "./src/ops/gather.ts";
export * from "./src/ops/where.ts";
export * from "./src/ops/softmax.ts";
export * from "./src/ops/layer_norm.ts";
export * from "./src/ops/losses.ts";
export * from "./src/ops/matmul.ts";
export * from "./src/tensor/random.ts";
export * from "./src/nn/module.ts";
export * from "./src/nn/config.ts";
export * from "./src/nn/linear.ts";
export * from "./src/nn/layer_norm.ts";
export * from "./src/nn/model.ts";
export * from "./src/nn/losses.ts";
export * from "./src/optim/sgd.ts";
export * from "./src/optim/adamw.ts";
export * from "./src/io/safetensors.ts";
export * from "./src/io/files.ts";
export * from "./src/io/checkpoint.ts";
