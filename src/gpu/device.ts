/**
 * The GPU runtime: one adapter and device, a buffer pool, cached pipelines and bind groups, and a command
 * recorder that batches every dispatch of a step into as few submits as possible.
 *
 * Ops never touch the WebGPU API directly: they hand {@link Gpu.dispatch} a kernel, its buffers and its
 * parameters. Only this file encodes passes and submits. The one sync point is {@link Gpu.read}.
 *
 * @module
 */

import { BufferPool } from "./buffer_pool.ts";

/** A compute kernel: one entry point of one WGSL file, specialised by `override` constants. */
export interface Kernel {
  /**
   * The shader file's name, for errors (`"matmul.wgsl"`). Pipelines are cached by file, entry and
   * constants, so two texts built from one file need two names (`"matmul.wgsl (A f16, B f32)"`).
   */
  file: string;
  /** The WGSL source. */
  code: string;
  /** The entry point (`"matmul_forward"`). */
  entry: string;
  /** Values for the shader's `override` constants. */
  constants?: Record<string, number>;
}

/**
 * One recorded dispatch, kept as data: the binding order is inputs (read-only storage), then outputs
 * (read-write storage), then one uniform of parameters when `params` is given.
 */
export interface Dispatch {
  /** What to run. */
  kernel: Kernel;
  /** Buffers bound read-only, in binding order from 0. */
  inputs: GPUBuffer[];
  /** Buffers bound read-write, right after the inputs. */
  outputs: GPUBuffer[];
  /** The uniform's 32-bit words (see {@link params}), bound after the outputs. */
  params?: Uint32Array;
  /** Workgroup counts in x, y, z (each at most the adapter's `maxComputeWorkgroupsPerDimension`). */
  workgroups: [number, number?, number?];
}

/** Counters a test or a benchmark can read to see how the runtime is used. */
export interface GpuCounters {
  /** `queue.submit` calls. */
  submits: number;
  /** Compute dispatches recorded. */
  dispatches: number;
  /** GPU → CPU readbacks (each one waits for the device). */
  readbacks: number;
  /** Bind groups created (cache misses). */
  bindGroups: number;
  /** Pipelines created (cache misses). */
  pipelines: number;
}

/** Options for {@link requestGpu}. */
export interface RequestGpuOptions {
  /**
   * Ask for a low-power or high-performance adapter.
   * @default {undefined}
   */
  powerPreference?: GPUPowerPreference;
  /**
   * Dispatches recorded before the recorder submits on its own, to bound the command buffer's size.
   * @default {4096}
   */
  maxPendingDispatches?: number;
}

/**
 * Packs a uniform's fields, unsigned integers first and then floats, into 32-bit words padded to 16 bytes.
 * A WGSL struct that declares its `u32` fields before its `f32` fields reads them in the same order.
 *
 * @param u32s The unsigned integer fields.
 * @param f32s The float fields.
 * @returns The words to pass as {@link Dispatch.params}.
 *
 * @example Two sizes and an epsilon
 * ```ts
 * import { params } from "./device.ts";
 * const p = params([3, 4], [1e-5]);
 * if (p.length !== 4 || p[1] !== 4) throw new Error("unexpected packing");
 * ```
 */
export function params(u32s: readonly number[], f32s: readonly number[] = []): Uint32Array {
  const words = new Uint32Array(Math.max(4, Math.ceil((u32s.length + f32s.length) / 4) * 4));
  for (let i = 0; i < u32s.length; i++) {
    if (!Number.isInteger(u32s[i]) || u32s[i] < 0 || u32s[i] > 0xffffffff) {
      throw new RangeError(`Cannot pass a kernel parameter as u32: ${u32s[i]} at position ${i}`);
    }
    words[i] = u32s[i];
  }
  new Float32Array(words.buffer).set(f32s, u32s.length);
  return words;
}

const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/**
 * The device and everything that must live as long as it: pool, caches, recorder and counters.
 * Make one with {@link requestGpu}.
 *
 * @example Run a kernel that doubles a buffer and read the result
 * ```ts
 * import { params, requestGpu } from "./device.ts";
 * const gpu = await requestGpu();
 * const x = gpu.upload(new Float32Array([1, 2, 3]));
 * const y = gpu.alloc(12);
 * const code = `
 *   struct Params { n: u32 }
 *   @group(0) @binding(0) var<storage, read> x: array<f32>;
 *   @group(0) @binding(1) var<storage, read_write> y: array<f32>;
 *   @group(0) @binding(2) var<uniform> p: Params;
 *   @compute @workgroup_size(64) fn double(@builtin(global_invocation_id) id: vec3u) {
 *     if (id.x < p.n) { y[id.x] = 2.0 * x[id.x]; }
 *   }`;
 * const kernel = { file: "double.wgsl", code, entry: "double" };
 * gpu.dispatch({ kernel, inputs: [x], outputs: [y], params: params([3]), workgroups: [1] });
 * const out = new Float32Array(await gpu.read(y, 12));
 * if (out[2] !== 6) throw new Error("wrong result");
 * gpu.release(x);
 * gpu.release(y);
 * gpu.destroy();
 * ```
 */
export class Gpu {
  /** The WebGPU device. */
  readonly device: GPUDevice;
  /** What the adapter says about itself (vendor, architecture, description). */
  readonly info: GPUAdapterInfo;
  /** Whether the adapter is a fallback (software) adapter. */
  readonly isFallbackAdapter: boolean;
  /** Whether `shader-f16` was enabled on the device. */
  readonly hasF16: boolean;
  /** Whether `timestamp-query` was enabled on the device. */
  readonly hasTimestamps: boolean;
  /** Usage counters since the device was made (or since {@link Gpu.resetCounters}). */
  readonly counters: GpuCounters = { submits: 0, dispatches: 0, readbacks: 0, bindGroups: 0, pipelines: 0 };

  #pool: BufferPool;
  #modules = new Map<string, GPUShaderModule>();
  #pipelines = new Map<string, { pipeline: GPUComputePipeline; id: number }>();
  #layouts = new Map<string, GPUBindGroupLayout>();
  #bindGroups = new Map<string, GPUBindGroup>();
  #uniforms = new Map<string, GPUBuffer>();
  #bufferIds = new WeakMap<GPUBuffer, number>();
  #nextBufferId = 1;
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #pending = 0;
  #maxPending: number;
  #errors: string[] = [];
  #scopes: Promise<void>[] = [];
  #lost: string | null = null;
  #destroyed = false;

  /** Use {@link requestGpu}. */
  constructor(adapter: GPUAdapter, device: GPUDevice, options: RequestGpuOptions = {}) {
    this.device = device;
    this.info = adapter.info;
    this.isFallbackAdapter = (adapter.info as { isFallbackAdapter?: boolean }).isFallbackAdapter ??
      (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false;
    this.hasF16 = device.features.has("shader-f16");
    this.hasTimestamps = device.features.has("timestamp-query");
    this.#maxPending = options.maxPendingDispatches ?? 4096;
    this.#pool = new BufferPool(device, STORAGE);
    device.lost.then((info) => {
      if (!this.#destroyed) this.#lost = `The GPU device was lost (${info.reason}): ${info.message}`;
    });
    device.addEventListener("uncapturederror", (event) => {
      this.#errors.push((event as GPUUncapturedErrorEvent).error.message);
    });
  }

  /** The device's limits (the adapter's own, requested in full). */
  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  /** Live pool buffers and their bytes (in use or free in the pool). */
  get memory(): { liveBuffers: number; liveBytes: number; inUseBuffers: number; inUseBytes: number } {
    return this.#pool.stats();
  }

  /** Sets every counter to zero. */
  resetCounters(): void {
    for (const key of Object.keys(this.counters) as (keyof GpuCounters)[]) this.counters[key] = 0;
  }

  /** A storage buffer of at least `bytes` bytes from the pool; its contents are undefined. */
  alloc(bytes: number): GPUBuffer {
    this.#checkAlive();
    return this.#pool.acquire(bytes, false);
  }

  /**
   * A storage buffer holding `data`. The write lands before any later dispatch and after every dispatch
   * already recorded, since the buffer is never one that a recorded dispatch still uses.
   */
  upload(data: ArrayBufferView): GPUBuffer {
    this.#checkAlive();
    const buffer = this.#pool.acquire(Math.max(4, data.byteLength), true);
    // Deno 2.9 panics on a zero-byte writeBuffer.
    if (data.byteLength > 0) {
      this.device.queue.writeBuffer(buffer, 0, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
    }
    return buffer;
  }

  /**
   * Overwrites the start of an existing buffer with `data`, after every dispatch recorded so far (they are
   * submitted first, since `queue.writeBuffer` lands before unsubmitted work).
   */
  write(buffer: GPUBuffer, data: ArrayBufferView): void {
    this.#checkAlive();
    if (this.#encoder !== null) this.flush();
    if (data.byteLength > 0) {
      this.device.queue.writeBuffer(buffer, 0, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
    }
  }

  /** Returns a buffer to the pool. Dispatches already recorded may still use it; the pool knows. */
  release(buffer: GPUBuffer): void {
    this.#pool.release(buffer);
  }

  /** Records one dispatch. Nothing runs until {@link Gpu.flush} or {@link Gpu.read}. */
  dispatch(d: Dispatch): void {
    this.#checkAlive();
    const [x, y = 1, z = 1] = d.workgroups;
    if (x === 0 || y === 0 || z === 0) return;
    const max = this.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max) {
      throw new RangeError(
        `Cannot dispatch ${d.kernel.entry} (${d.kernel.file}): grid [${x}, ${y}, ${z}] exceeds ${max} workgroups per dimension`,
      );
    }
    const { pipeline, id } = this.#pipeline(d);
    const bindGroup = this.#bindGroup(d, pipeline, id);
    if (this.#pass === null) {
      this.#encoder ??= this.device.createCommandEncoder();
      this.#pass = this.#encoder.beginComputePass();
    }
    this.#pass.setPipeline(pipeline);
    this.#pass.setBindGroup(0, bindGroup);
    this.#pass.dispatchWorkgroups(x, y, z);
    this.counters.dispatches++;
    if (++this.#pending >= this.#maxPending) this.flush();
  }

  /** Records a buffer-to-buffer copy in order with the dispatches. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.#checkAlive();
    if (bytes === 0) return;
    this.#endPass();
    this.#encoder ??= this.device.createCommandEncoder();
    this.#encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  /** Submits everything recorded so far in one `queue.submit`. */
  flush(): void {
    this.#endPass();
    if (this.#encoder === null) return;
    this.device.pushErrorScope("validation");
    this.device.queue.submit([this.#encoder.finish()]);
    this.#scopes.push(
      this.device.popErrorScope().then((e) => {
        if (e) this.#errors.push(e.message);
      }),
    );
    this.#encoder = null;
    this.#pending = 0;
    this.counters.submits++;
    this.#pool.submitted();
    // Uniforms are cached by content; values that change every step (a schedule's) would grow the cache
    // without end. Nothing recorded refers to them right after a submit, so this is the moment to drop them.
    if (this.#uniforms.size > 4096) {
      for (const u of this.#uniforms.values()) u.destroy();
      this.#uniforms.clear();
      this.#bindGroups.clear();
    }
  }

  /**
   * Reads `bytes` bytes of `buffer` back to the CPU: the only sync point. Submits what is recorded, copies
   * into a staging buffer and waits. Throws any validation error or device loss seen since the last read.
   */
  async read(buffer: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
    this.#checkAlive();
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const staging = this.device.createBuffer({
      size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.copy(buffer, offset, staging, 0, size);
    this.flush();
    this.counters.readbacks++;
    try {
      await staging.mapAsync(GPUMapMode.READ);
      const out = staging.getMappedRange(0, size).slice(0, bytes);
      staging.unmap();
      return out;
    } finally {
      staging.destroy();
      await this.#throwErrors();
    }
  }

  /** Waits for the queue to finish and throws any error seen so far (a test's or a benchmark's sync). */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    await this.#throwErrors();
  }

  /** Destroys the pool's free buffers (and the bind groups that name them); returns the bytes freed. */
  trim(): number {
    this.flush();
    this.#bindGroups.clear();
    return this.#pool.trim();
  }

  /** Frees every buffer and the device. The object is unusable afterwards. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#encoder = null;
    this.#pass = null;
    this.#pool.destroy();
    for (const u of this.#uniforms.values()) u.destroy();
    this.#uniforms.clear();
    this.#bindGroups.clear();
    this.device.destroy();
  }

  async #throwErrors(): Promise<void> {
    const scopes = this.#scopes;
    this.#scopes = [];
    await Promise.all(scopes);
    if (this.#lost) throw new Error(this.#lost);
    if (this.#errors.length > 0) {
      const messages = this.#errors.splice(0);
      throw new Error(`WebGPU reported ${messages.length} error(s):\n${messages.join("\n")}`);
    }
  }

  #checkAlive(): void {
    if (this.#destroyed) throw new Error("Cannot use the GPU: it was destroyed");
    if (this.#lost) throw new Error(this.#lost);
  }

  #endPass(): void {
    if (this.#pass !== null) {
      this.#pass.end();
      this.#pass = null;
    }
  }

  #bufferId(buffer: GPUBuffer): number {
    let id = this.#bufferIds.get(buffer);
    if (id === undefined) this.#bufferIds.set(buffer, id = this.#nextBufferId++);
    return id;
  }

  #layout(inputs: number, outputs: number, uniform: boolean): GPUBindGroupLayout {
    const key = `${inputs}/${outputs}/${uniform}`;
    let layout = this.#layouts.get(key);
    if (layout === undefined) {
      const entries: GPUBindGroupLayoutEntry[] = [];
      for (let i = 0; i < inputs + outputs; i++) {
        const type: GPUBufferBindingType = i < inputs ? "read-only-storage" : "storage";
        entries.push({ binding: i, visibility: GPUShaderStage.COMPUTE, buffer: { type } });
      }
      if (uniform) {
        entries.push({
          binding: inputs + outputs,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: "uniform" },
        });
      }
      layout = this.device.createBindGroupLayout({ entries });
      this.#layouts.set(key, layout);
    }
    return layout;
  }

  #pipeline(d: Dispatch): { pipeline: GPUComputePipeline; id: number } {
    const { kernel } = d;
    const constants = kernel.constants ?? {};
    const constantKey = Object.keys(constants).sort().map((k) => `${k}=${constants[k]}`).join(",");
    const key = `${kernel.file}:${kernel.entry}:${constantKey}:${d.inputs.length}/${d.outputs.length}/${!!d
      .params}`;
    let cached = this.#pipelines.get(key);
    if (cached !== undefined) return cached;

    let module = this.#modules.get(kernel.code);
    if (module === undefined) {
      module = this.device.createShaderModule({ label: kernel.file, code: kernel.code });
      this.#modules.set(kernel.code, module);
      this.#scopes.push(
        module.getCompilationInfo().then((info) => {
          const errors = info.messages.filter((m) => m.type === "error");
          if (errors.length > 0) {
            this.#errors.push(
              `Shader ${kernel.file} does not compile:\n` +
                errors.map((m) => `  ${kernel.file}:${m.lineNum}:${m.linePos}: ${m.message}`).join("\n"),
            );
          }
        }),
      );
    }
    const layout = this.#layout(d.inputs.length, d.outputs.length, !!d.params);
    this.device.pushErrorScope("validation");
    const pipeline = this.device.createComputePipeline({
      label: `${kernel.file}:${kernel.entry}`,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: kernel.entry, constants },
    });
    this.#scopes.push(
      this.device.popErrorScope().then((e) => {
        if (e) this.#errors.push(`Pipeline ${kernel.file}:${kernel.entry} is invalid: ${e.message}`);
      }),
    );
    this.counters.pipelines++;
    cached = { pipeline, id: this.#pipelines.size + 1 };
    this.#pipelines.set(key, cached);
    return cached;
  }

  #uniform(words: Uint32Array): GPUBuffer {
    const key = words.join(",");
    let buffer = this.#uniforms.get(key);
    if (buffer === undefined) {
      buffer = this.device.createBuffer({
        size: words.byteLength,
        usage: GPUBufferUsage.UNIFORM,
        mappedAtCreation: true,
      });
      new Uint32Array(buffer.getMappedRange()).set(words);
      buffer.unmap();
      this.#uniforms.set(key, buffer);
    }
    return buffer;
  }

  #bindGroup(d: Dispatch, pipeline: GPUComputePipeline, pipelineId: number): GPUBindGroup {
    const buffers = [...d.inputs, ...d.outputs];
    const uniform = d.params ? this.#uniform(d.params) : null;
    let key = `${pipelineId}`;
    for (const b of buffers) key += `,${this.#bufferId(b)}`;
    if (uniform) key += `,u${this.#bufferId(uniform)}`;
    let group = this.#bindGroups.get(key);
    if (group === undefined) {
      const entries: GPUBindGroupEntry[] = buffers.map((buffer, binding) => ({
        binding,
        resource: { buffer },
      }));
      if (uniform) entries.push({ binding: buffers.length, resource: { buffer: uniform } });
      group = this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
      // Pool buffers recur, so this cache stays small in a training loop; bound it for odd workloads.
      if (this.#bindGroups.size >= 16384) this.#bindGroups.clear();
      this.#bindGroups.set(key, group);
      this.counters.bindGroups++;
    }
    return group;
  }
}

/**
 * Requests an adapter and a device with the adapter's own limits and the useful optional features
 * (`shader-f16`, `timestamp-query`) when the adapter has them.
 *
 * @param options See {@link RequestGpuOptions}.
 * @returns A ready {@link Gpu}.
 * @throws {Error} When there is no WebGPU adapter, with what to install.
 *
 * @example
 * ```ts
 * import { requestGpu } from "./device.ts";
 * const gpu = await requestGpu();
 * console.log(gpu.info.description, gpu.isFallbackAdapter);
 * gpu.destroy();
 * ```
 */
export async function requestGpu(options: RequestGpuOptions = {}): Promise<Gpu> {
  if (typeof navigator === "undefined" || !("gpu" in navigator)) {
    throw new Error("WebGPU is not available in this runtime: use Deno 2.9 or a browser with WebGPU");
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: options.powerPreference });
  if (adapter === null) {
    throw new Error(
      "No WebGPU adapter found. Without a GPU on Linux, install Mesa's software Vulkan driver: " +
        "'apt-get install -y mesa-vulkan-drivers libvulkan1' (and set DENO_WEBGPU_BACKEND=vulkan if needed)",
    );
  }
  const wanted: GPUFeatureName[] = ["shader-f16", "timestamp-query"];
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
  const requiredLimits: Record<string, number> = {};
  for (
    const name of [
      "maxStorageBufferBindingSize",
      "maxBufferSize",
      "maxStorageBuffersPerShaderStage",
      "maxComputeWorkgroupStorageSize",
      "maxComputeInvocationsPerWorkgroup",
      "maxComputeWorkgroupSizeX",
      "maxComputeWorkgroupSizeY",
      "maxComputeWorkgroupSizeZ",
      "maxComputeWorkgroupsPerDimension",
      "maxUniformBufferBindingSize",
    ] as const
  ) requiredLimits[name] = adapter.limits[name];
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  return new Gpu(adapter, device, options);
}
