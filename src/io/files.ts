/**
 * File helpers (Deno only): read a safetensors file, and write files atomically, so that an interrupted
 * run leaves either the old file or the new one, never half of one.
 *
 * @module
 */

import { dirname } from "node:path";
import {
  parseSafetensors,
  type Safetensors,
  type SafetensorsTensorInput,
  serializeSafetensors,
} from "./safetensors.ts";

/**
 * Reads and parses a safetensors file; errors name the file (see `parseSafetensors`).
 *
 * @param path The file's path.
 * @returns The tensors and the metadata.
 * @throws {Deno.errors.NotFound} When the file does not exist (and Deno's other I/O errors).
 *
 * @example Read the tiny reference bundle
 * ```ts ignore
 * import { readSafetensorsFile } from "./files.ts";
 * const { tensors, metadata } = await readSafetensorsFile("golden/tiny.safetensors");
 * console.log(metadata.format, tensors.get("visual.proj")?.shape); // "pt" [32, 24]
 * ```
 */
export async function readSafetensorsFile(path: string): Promise<Safetensors> {
  return parseSafetensors(await Deno.readFile(path), path);
}

function randomSuffix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Writes `bytes` to `path` atomically: first to `path.tmp-<pid>-<random>` in the same directory, flushed to
 * disk, then renamed over `path`. On any failure the temporary file is removed and `path` is untouched.
 *
 * @param path The file to create or replace.
 * @param bytes The whole new content.
 * @throws {Error} `Cannot write "<path>": <reason>`, with the underlying error as `cause`.
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./files.ts";
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/a.txt`, new TextEncoder().encode("hello"));
 * if (await Deno.readTextFile(`${dir}/a.txt`) !== "hello") throw new Error("written");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}-${randomSuffix()}`;
  let file: Deno.FsFile | null = null;
  try {
    file = await Deno.open(tmp, { write: true, createNew: true });
    for (let at = 0; at < bytes.length;) at += await file.write(bytes.subarray(at));
    await syncIfPossible(file);
    file.close();
    file = null;
    await Deno.rename(tmp, path);
  } catch (e) {
    try {
      file?.close();
    } catch { /* already closed */ }
    await Deno.remove(tmp).catch(() => {}); // may never have been created
    throw new Error(`Cannot write "${path}": ${(e as Error).message}`, { cause: e });
  }
  // Make the rename itself durable. Opening a directory fails on Windows, where this does not apply.
  try {
    using dir = await Deno.open(dirname(path) || ".", { read: true });
    await dir.sync();
  } catch { /* best effort */ }
}

async function syncIfPossible(file: Deno.FsFile): Promise<void> {
  try {
    await file.sync();
  } catch (e) {
    // Some file systems cannot fsync; the write is still whole, just not yet known to be durable.
    if (!(e instanceof Deno.errors.NotSupported)) throw e;
  }
}

/**
 * Serialises tensors and metadata (see `serializeSafetensors`) and writes them to `path` atomically.
 *
 * @param path The file to create or replace.
 * @param tensors The tensors by name.
 * @param metadata String values for `__metadata__`, e.g. `{ format: "pt", config: JSON.stringify(config) }`.
 * @throws {Error} When the tensors are invalid or the file cannot be written.
 *
 * @example
 * ```ts
 * import { readSafetensorsFile, writeSafetensorsFile } from "./files.ts";
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/m.safetensors`;
 * await writeSafetensorsFile(path, { b: { dtype: "F32", shape: [1], data: new Float32Array([3]) } }, { format: "pt" });
 * if ((await readSafetensorsFile(path)).tensors.get("b")!.data[0] !== 3) throw new Error("round trip");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeSafetensorsFile(
  path: string,
  tensors: Record<string, SafetensorsTensorInput> | Map<string, SafetensorsTensorInput>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, serializeSafetensors(tensors, metadata));
}

/**
 * Whether a file or directory exists at `path`.
 *
 * @param path The path.
 * @returns True when `Deno.stat` succeeds.
 *
 * @example
 * ```ts
 * import { exists } from "./files.ts";
 * console.log(await exists("/definitely/not/here")); // false
 * ```
 */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
