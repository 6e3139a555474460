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
export * from "./src/ops/cast.ts";
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
export * from "./src/data/image.ts";
export * from "./src/data/preprocess.ts";
export * from "./src/data/records.ts";
export * from "./src/data/jsonl.ts";
export * from "./src/data/coco.ts";
export * from "./src/data/glyphs.ts";
export * from "./src/data/mosaic.ts";
export * from "./src/data/dataset.ts";
export * from "./src/data/tokenizer.ts";
export * from "./src/data/loader.ts";
export * from "./src/data/write.ts";
export * from "./src/train/schedule.ts";
export * from "./src/train/config.ts";
export * from "./src/train/trainer.ts";
export * from "./src/train/parity.ts";
export * from "./src/ops/roi_align.ts";
export * from "./src/eval/metrics.ts";
export * from "./src/eval/evaluate.ts";
export * from "./src/eval/report.ts";
export * from "./src/eval/run.ts";
export * from "./src/ops/attention.ts";
