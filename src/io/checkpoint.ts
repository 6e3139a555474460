/**
 * Model checkpoints: a safetensors file of every parameter under its OpenCLIP name, with the model config
 * (and anything else the caller adds, such as the tokenizer) as JSON strings in `__metadata__`.
 *
 * @module
 */

import { Rng } from "../tensor/random.ts";
import { Cloc } from "../nn/model.ts";
import { type ClocConfig, validateConfig } from "../nn/config.ts";
import type { HostTensor } from "../nn/module.ts";
import { toFloat32 } from "./safetensors.ts";
import { readSafetensorsFile, writeSafetensorsFile } from "./files.ts";

/**
 * Writes the model's parameters and config to `path` (atomically: a temporary file, then a rename).
 *
 * @param path The `.safetensors` file to write.
 * @param model The model.
 * @param metadata More `__metadata__` entries (strings), e.g. `{ tokenizer: JSON.stringify(...) }`.
 *
 * @example
 * ```ts ignore
 * await saveModel("runs/x/model.safetensors", model, { tokenizer: JSON.stringify(tokenizer.toJSON()) });
 * ```
 */
export async function saveModel(
  path: string,
  model: Cloc,
  metadata: Record<string, string> = {},
): Promise<void> {
  const tensors = new Map<string, { dtype: "F32"; shape: readonly number[]; data: Float32Array }>();
  for (const [name, t] of await model.stateDict()) {
    tensors.set(name, { dtype: "F32", shape: t.shape, data: t.data });
  }
  await writeSafetensorsFile(path, tensors, {
    format: "pt",
    config: JSON.stringify(model.config),
    ...metadata,
  });
}

/**
 * Reads a checkpoint written by {@link saveModel} (or any OpenCLIP-named file with a `config` in its metadata)
 * into a new model. A missing, extra or wrongly shaped tensor is reported by name.
 *
 * @param path The `.safetensors` file.
 * @returns The model and the file's metadata.
 *
 * @example
 * ```ts ignore
 * const { model, metadata } = await loadModel("runs/x/model.safetensors");
 * ```
 */
export async function loadModel(path: string): Promise<{ model: Cloc; metadata: Record<string, string> }> {
  const { tensors, metadata } = await readSafetensorsFile(path);
  if (!metadata.config) {
    throw new Error(`${path}: no "config" in the checkpoint's metadata: cannot rebuild the model`);
  }
  let config: ClocConfig;
  try {
    config = validateConfig(JSON.parse(metadata.config));
  } catch (e) {
    throw new Error(`${path}: the checkpoint's config is not valid: ${(e as Error).message}`);
  }
  const values = new Map<string, HostTensor>();
  for (const [name, t] of tensors) values.set(name, { shape: t.shape, data: toFloat32(t, name) });
  const model = new Cloc(config, new Rng(0));
  try {
    model.loadParameters(values, { source: path });
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, metadata };
}
