/**
 * The training loader: batches of images (f32 NCHW), caption tokens and up to M region slots per image
 * (normalised boxes, region-caption tokens, a valid mask), in the shapes of the spec's bundles
 * (`input.images`, `input.text`, `input.region_boxes`, `input.region_text`, `input.region_valid`).
 *
 * Everything a batch holds is a pure function of `(seed, epoch, step)`: the epoch's order is a seeded
 * shuffle, and each image's region slots are a seeded draw from its regions, made anew each epoch. So the
 * loader's whole state is `{seed, epoch, step}`, a resumed run sees the same batches, and prefetching
 * (in a Worker, off the main thread) cannot change what comes out.
 * @module
 */

import { Rng } from "../tensor/random.ts";
import { mixSeed } from "./_seed.ts";
import { type Dataset, type DataSpec, openDataset, type Sample } from "./dataset.ts";
import { CLIP_MEAN, CLIP_STD, preprocessInto, transformBoxes } from "./preprocess.ts";
import { type BadRecord, BadRecordError, formatBadRecord } from "./records.ts";
import { type Tokenizer, tokenizerFromJson, type TokenizerJson } from "./tokenizer.ts";

/**
 * What a caption says at detail level `detail` in [0, 1): `levels[floor(detail * n)]` of its `n` levels
 * (coarsest first; see `Sample.captions` and `Region.phrases`), or `text` when it has none.
 */
function atDetail(text: string, levels: readonly string[] | undefined, detail: number): string {
  return levels?.length ? levels[Math.floor(detail * levels.length)] : text;
}

/** Options of a loader. */
export interface LoaderOptions {
  /** Images a batch (B). @default 32 */
  batchSize?: number;
  /** The model's square image size (S). @default 64 */
  imageSize?: number;
  /** Tokens a caption (the text tower's context length). @default 32 */
  contextLength?: number;
  /** Region slots an image (M). @default 4 */
  maxRegions?: number;
  /** Seed of the order and of the region draws. @default 0 */
  seed?: number;
  /** Per-channel mean for normalisation. @default CLIP_MEAN */
  mean?: readonly number[];
  /** Per-channel std for normalisation. @default CLIP_STD */
  std?: readonly number[];
  /** Letterbox placement (see `preprocess.ts`). @default "corner" */
  pad?: "corner" | "center";
  /** Shuffle each epoch (else data set order). @default true */
  shuffle?: boolean;
  /** Drop the last, short batch of an epoch (keeps every batch B images). @default true */
  dropLast?: boolean;
  /** Decode and batch in a Worker. @default true */
  worker?: boolean;
  /** Batches requested ahead of the one being consumed (worker only). @default 3 */
  prefetch?: number;
  /** Throw when an image fails to load during training, rather than skip it. @default false */
  strict?: boolean;
  /** Continue from a saved {@link LoaderState}. */
  resume?: LoaderState;
}

/**
 * Where a loader is: the next batch it returns is step `step` of epoch `epoch`.
 *
 * @example
 * ```ts
 * import type { LoaderState } from "./loader.ts";
 * const s: LoaderState = { seed: 0, epoch: 2, step: 17 };
 * if (JSON.parse(JSON.stringify(s)).step !== 17) throw new Error("plain JSON, saved in checkpoints");
 * ```
 */
export interface LoaderState {
  /** The loader's seed (a resumed loader must use the same). */
  seed: number;
  /** Epoch of the next batch. */
  epoch: number;
  /** Step within the epoch of the next batch. */
  step: number;
}

/**
 * One batch. Region slots beyond an image's regions have `regionValid` 0, the box `[0, 0, 1, 1]` and the
 * tokens of the empty text (SOT, EOT, padding), so every slot is safe to compute on.
 *
 * @example
 * ```ts
 * import type { Batch } from "./loader.ts";
 * const rows = (b: Batch) => b.images.length / (3 * b.imageSize * b.imageSize);
 * ```
 */
export interface Batch {
  /** f32 [B, 3, S, S], normalised. */
  images: Float32Array;
  /** i32 [B, ctx] caption tokens. */
  text: Int32Array;
  /** f32 [B, M, 4] boxes `(x0, y0, x1, y1)` normalised to [0, 1] of the S x S input. */
  regionBoxes: Float32Array;
  /** i32 [B, M, ctx] region-caption tokens. */
  regionText: Int32Array;
  /** f32 [B, M], 1 for a real region, 0 for an empty slot. */
  regionValid: Float32Array;
  /** i32 [B]: the data set index of each row. */
  indices: Int32Array;
  /** B (smaller for a last short batch when `dropLast` is off). */
  batchSize: number;
  /** S. */
  imageSize: number;
  /** ctx. */
  contextLength: number;
  /** M. */
  maxRegions: number;
  /** The epoch this batch belongs to. */
  epoch: number;
  /** Its step within the epoch. */
  step: number;
}

/** {@link LoaderOptions} with every default filled in (and no `resume`). */
export type ResolvedLoaderOptions = Required<Omit<LoaderOptions, "resume">>;

function withDefaults(o: LoaderOptions): ResolvedLoaderOptions {
  const f: ResolvedLoaderOptions = {
    batchSize: o.batchSize ?? 32,
    imageSize: o.imageSize ?? 64,
    contextLength: o.contextLength ?? 32,
    maxRegions: o.maxRegions ?? 4,
    seed: o.seed ?? 0,
    mean: o.mean ?? CLIP_MEAN,
    std: o.std ?? CLIP_STD,
    pad: o.pad ?? "corner",
    shuffle: o.shuffle ?? true,
    dropLast: o.dropLast ?? true,
    worker: o.worker ?? true,
    prefetch: o.prefetch ?? 3,
    strict: o.strict ?? false,
  };
  for (const k of ["batchSize", "imageSize", "contextLength", "prefetch"] as const) {
    if (!(Number.isInteger(f[k]) && f[k] >= 1)) {
      throw new RangeError(`loader: ${k} must be an integer >= 1: got ${f[k]}`);
    }
  }
  if (!(Number.isInteger(f.maxRegions) && f.maxRegions >= 0)) {
    throw new RangeError(`loader: maxRegions must be an integer >= 0: got ${f.maxRegions}`);
  }
  if (f.contextLength < 2) {
    throw new RangeError(`loader: contextLength must be >= 2 (SOT and EOT): got ${f.contextLength}`);
  }
  return f;
}

/**
 * Makes batches from a data set: the batch at `(epoch, step)` is always the same. Use it directly for a
 * synchronous, in-process path (tests, evaluation); {@link Loader} wraps it with a worker and prefetch.
 *
 * @example
 * ```ts
 * import { MosaicDataset } from "./mosaic.ts";
 * import { BatchMaker } from "./loader.ts";
 * import { MOSAIC_WORDS } from "./mosaic.ts";
 * import { WordTokenizer } from "./tokenizer.ts";
 * const set = await MosaicDataset.open("digits", "test", 64, { canvas: 32 });
 * const maker = new BatchMaker(set, WordTokenizer.fromTexts(MOSAIC_WORDS), { batchSize: 8, imageSize: 32 });
 * const b = maker.makeSync(0, 0);
 * if (b.images.length !== 8 * 3 * 32 * 32 || b.regionValid.length !== 8 * 4) throw new Error("shapes");
 * ```
 */
export class BatchMaker {
  /** The options with defaults filled in. */
  readonly options: Readonly<ResolvedLoaderOptions>;
  /** Batches an epoch. */
  readonly stepsPerEpoch: number;
  /** Samples that failed to load (skipped and replaced by a neighbour), in the order found. */
  readonly bad: BadRecord[] = [];
  #failed = new Set<number>();
  #orderEpoch = -1;
  #order: Int32Array = new Int32Array(0);
  #emptyText: Int32Array;

  /**
   * Makes a batch maker over a data set.
   *
   * @param dataset The samples.
   * @param tokenizer Tokenizes captions and region texts.
   * @param options Batch shape, seed, normalisation, policy.
   */
  constructor(readonly dataset: Dataset, readonly tokenizer: Tokenizer, options: LoaderOptions = {}) {
    this.options = withDefaults(options);
    const { batchSize: B, dropLast } = this.options;
    const n = dataset.length;
    this.stepsPerEpoch = dropLast ? Math.floor(n / B) : Math.ceil(n / B);
    if (this.stepsPerEpoch === 0) {
      throw new RangeError(
        `loader: the data set has ${n} samples, fewer than one batch of ${B}: use a smaller batchSize or dropLast: false`,
      );
    }
    this.#emptyText = tokenizer.encode("", this.options.contextLength);
  }

  /**
   * The data set order of an epoch (a seeded shuffle, or identity with `shuffle: false`).
   *
   * @param epoch The epoch.
   * @returns Data set indices, one per sample.
   */
  order(epoch: number): Int32Array {
    if (epoch !== this.#orderEpoch) {
      const n = this.dataset.length;
      const order = new Int32Array(n);
      for (let i = 0; i < n; i++) order[i] = i;
      if (this.options.shuffle) {
        const rng = new Rng(mixSeed(this.options.seed, epoch));
        for (let i = n - 1; i > 0; i--) {
          const j = rng.int(i + 1);
          const t = order[i];
          order[i] = order[j];
          order[j] = t;
        }
      }
      this.#order = order;
      this.#orderEpoch = epoch;
    }
    return this.#order;
  }

  /**
   * The data set indices of one batch.
   *
   * @param epoch The epoch.
   * @param step The step within the epoch, 0 <= step < stepsPerEpoch.
   * @returns The indices (B of them, fewer for a last short batch).
   */
  indices(epoch: number, step: number): Int32Array {
    if (!(Number.isInteger(step) && step >= 0 && step < this.stepsPerEpoch)) {
      throw new RangeError(`loader: step ${step} out of range [0, ${this.stepsPerEpoch})`);
    }
    if (!(Number.isInteger(epoch) && epoch >= 0)) {
      throw new RangeError(`loader: epoch must be an integer >= 0: got ${epoch}`);
    }
    const B = this.options.batchSize;
    const order = this.order(epoch);
    return order.slice(step * B, Math.min(order.length, (step + 1) * B));
  }

  #alloc(epoch: number, step: number, rows: number): Batch {
    const { imageSize: S, contextLength: ctx, maxRegions: M } = this.options;
    return {
      images: new Float32Array(rows * 3 * S * S),
      text: new Int32Array(rows * ctx),
      regionBoxes: new Float32Array(rows * M * 4),
      regionText: new Int32Array(rows * M * ctx),
      regionValid: new Float32Array(rows * M),
      indices: new Int32Array(rows),
      batchSize: rows,
      imageSize: S,
      contextLength: ctx,
      maxRegions: M,
      epoch,
      step,
    };
  }

  /** The detail level of a batch (see {@link atDetail}): one a batch, drawn from (seed, epoch, step). */
  #detail(epoch: number, step: number): number {
    return new Rng(mixSeed(mixSeed(this.options.seed, epoch) ^ 0x6a09e667, step)).uniform();
  }

  /** Writes one sample into row `row` of a batch, drawing its region slots for this epoch. */
  #fill(batch: Batch, row: number, index: number, sample: Sample, detail: number): void {
    const { imageSize: S, contextLength: ctx, maxRegions: M, mean, std, pad, seed } = this.options;
    const lb = preprocessInto(sample.image, S, batch.images, row * 3 * S * S, { mean, std, pad });
    batch.indices[row] = index;
    this.tokenizer.encodeInto(atDetail(sample.caption, sample.captions, detail), ctx, batch.text, row * ctx);
    // Choose min(R, M) of the R regions without replacement, in a random slot order.
    const R = sample.regions.length;
    const pick = Array.from({ length: R }, (_, i) => i);
    const rng = new Rng(mixSeed(mixSeed(seed, batch.epoch) ^ 0x2545f491, index));
    const take = Math.min(R, M);
    for (let i = 0; i < take; i++) {
      const j = i + rng.int(R - i);
      [pick[i], pick[j]] = [pick[j], pick[i]];
    }
    const chosen = pick.slice(0, take).map((i) => sample.regions[i]);
    const boxes = transformBoxes(chosen.map((r) => r.box), lb, S);
    for (let m = 0; m < M; m++) {
      const slot = row * M + m;
      if (m < take) {
        batch.regionBoxes.set(boxes[m], slot * 4);
        const { text, phrases } = chosen[m];
        this.tokenizer.encodeInto(atDetail(text, phrases, detail), ctx, batch.regionText, slot * ctx);
        batch.regionValid[slot] = 1;
      } else {
        batch.regionBoxes.set([0, 0, 1, 1], slot * 4);
        batch.regionText.set(this.#emptyText, slot * ctx);
        batch.regionValid[slot] = 0;
      }
    }
  }

  /** Records a load failure (once per index) or rethrows it in strict mode. */
  #onError(index: number, e: unknown): void {
    if (!(e instanceof BadRecordError) || this.options.strict) throw e;
    if (!this.#failed.has(index)) {
      this.#failed.add(index);
      this.bad.push(e.toRecord());
    }
  }

  /** The index to try instead of a failed one: the next index of the data set. */
  #substitute(index: number, tries: number): number {
    const n = this.dataset.length;
    if (tries >= Math.min(n, 64)) {
      throw new Error(
        `loader: ${tries} samples in a row failed to load near index ${index}: ${
          formatBadRecord(this.bad.at(-1)!)
        }`,
      );
    }
    return (index + 1) % n;
  }

  /**
   * Makes the batch at `(epoch, step)`, awaiting samples that load asynchronously. A sample that fails to
   * load is recorded in {@link BatchMaker.bad} and replaced by the next index of the data set.
   *
   * @param epoch The epoch.
   * @param step The step.
   * @returns The batch.
   */
  async make(epoch: number, step: number): Promise<Batch> {
    const idx = this.indices(epoch, step);
    const batch = this.#alloc(epoch, step, idx.length);
    const samples = await Promise.all(Array.from(idx, (i) => this.#load(i)));
    const detail = this.#detail(epoch, step);
    samples.forEach(([i, s], row) => this.#fill(batch, row, i, s, detail));
    return batch;
  }

  async #load(index: number): Promise<[number, Sample]> {
    for (let tries = 0;; tries++) {
      try {
        return [index, await this.dataset.get(index)];
      } catch (e) {
        this.#onError(index, e);
        index = this.#substitute(index, tries + 1);
      }
    }
  }

  /**
   * Makes the batch at `(epoch, step)` synchronously; only for data sets whose `get` is synchronous
   * (mosaic scenes, in-memory samples).
   *
   * @param epoch The epoch.
   * @param step The step.
   * @returns The batch.
   * @throws {TypeError} When the data set returns promises.
   */
  makeSync(epoch: number, step: number): Batch {
    const idx = this.indices(epoch, step);
    const batch = this.#alloc(epoch, step, idx.length);
    const detail = this.#detail(epoch, step);
    for (let row = 0; row < idx.length; row++) {
      let index = idx[row];
      for (let tries = 0;; tries++) {
        let sample: Sample | Promise<Sample>;
        try {
          sample = this.dataset.get(index);
        } catch (e) {
          this.#onError(index, e);
          index = this.#substitute(index, tries + 1);
          continue;
        }
        if (sample instanceof Promise) {
          sample.catch(() => {});
          throw new TypeError(`BatchMaker.makeSync: the data set loads samples asynchronously: use make()`);
        }
        this.#fill(batch, row, index, sample, detail);
        break;
      }
    }
    return batch;
  }
}

/**
 * The position after `state` (the next step, or the first step of the next epoch).
 *
 * @param state A position.
 * @param stepsPerEpoch Batches an epoch.
 * @returns The following position.
 *
 * @example
 * ```ts
 * import { advance } from "./loader.ts";
 * const s = advance({ seed: 0, epoch: 0, step: 9 }, 10);
 * if (s.epoch !== 1 || s.step !== 0) throw new Error("wraps to the next epoch");
 * ```
 */
export function advance(state: LoaderState, stepsPerEpoch: number): LoaderState {
  return state.step + 1 >= stepsPerEpoch
    ? { seed: state.seed, epoch: state.epoch + 1, step: 0 }
    : { seed: state.seed, epoch: state.epoch, step: state.step + 1 };
}

/** Messages from the loader to its worker. */
export type ToWorker =
  | { type: "open"; spec: DataSpec; tokenizer: TokenizerJson; options: LoaderOptions }
  | { type: "make"; id: number; epoch: number; step: number };

/** Messages from the worker to its loader. */
export type FromWorker =
  | { type: "ready"; length: number; stepsPerEpoch: number; bad: BadRecord[] }
  | { type: "batch"; id: number; batch: Batch; bad: BadRecord[] }
  | { type: "error"; id: number; error: { name: string; message: string; bad?: BadRecord } };

/** Rebuilds an error sent by the worker (a `BadRecordError` stays one). */
function reviveError(e: { name: string; message: string; bad?: BadRecord }): Error {
  if (e.bad) return new BadRecordError(e.bad);
  const ctor = ({ RangeError, TypeError, SyntaxError } as Record<string, ErrorConstructor>)[e.name] ?? Error;
  const err = new ctor(e.message);
  return err;
}

/**
 * Batches for training: a seeded, resumable stream over a data set, decoded and batched in a Worker with
 * a few batches prefetched (or in process with `worker: false`). Call `close()` when done (or declare the
 * loader with `using`): a live worker keeps the process running.
 *
 * @example
 * ```ts
 * import { Loader } from "./loader.ts";
 * import { MOSAIC_WORDS } from "./mosaic.ts";
 * import { WordTokenizer } from "./tokenizer.ts";
 * const tok = WordTokenizer.fromTexts(MOSAIC_WORDS, { vocabSize: 64 });
 * const spec = { kind: "mosaic", set: "digits", split: "test", count: 64, canvas: 32 } as const;
 * const loader = await Loader.open(spec, tok, { batchSize: 16, imageSize: 32, worker: false });
 * const first = await loader.next();
 * const saved = loader.state;
 * const second = await loader.next();
 * loader.close();
 * const resumed = await Loader.open(spec, tok, { batchSize: 16, imageSize: 32, worker: false, resume: saved });
 * if ((await resumed.next()).indices.join() !== second.indices.join()) throw new Error("resume");
 * resumed.close();
 * ```
 */
export class Loader {
  #state: LoaderState;
  #maker: BatchMaker | null;
  #worker: Worker | null;
  #queue: { epoch: number; step: number; batch: Promise<Batch> }[] = [];
  #fetchPos: LoaderState | null = null;
  #pending = new Map<number, { resolve: (b: Batch) => void; reject: (e: Error) => void }>();
  #nextId = 0;
  #bad: BadRecord[];
  #badKeys = new Set<string>();
  #closed = false;
  readonly #prefetch: number;

  private constructor(
    readonly length: number,
    readonly stepsPerEpoch: number,
    state: LoaderState,
    maker: BatchMaker | null,
    worker: Worker | null,
    bad: BadRecord[],
    prefetch: number,
  ) {
    this.#state = state;
    this.#maker = maker;
    this.#worker = worker;
    this.#bad = [];
    this.#prefetch = prefetch;
    this.#addBad(bad);
    if (worker) {
      worker.onmessage = (e: MessageEvent<FromWorker>) => this.#onMessage(e.data);
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        this.#failAll(new Error(`loader worker failed: ${e.message}`));
      };
    }
  }

  /**
   * Opens a data set and starts a loader on it.
   *
   * @param spec The data set (opened again inside the worker).
   * @param tokenizer The tokenizer (sent to the worker as JSON).
   * @param options Batch shape, seed, normalisation, worker and prefetch, resume state.
   * @returns The loader, positioned at `options.resume` or at epoch 0, step 0.
   * @throws {BadRecordError} With a strict spec, at the first bad record while reading.
   */
  static async open(spec: DataSpec, tokenizer: Tokenizer, options: LoaderOptions = {}): Promise<Loader> {
    const o = withDefaults(options);
    if (!o.worker) {
      const { dataset, bad } = await openDataset(spec);
      return Loader.fromDataset(dataset, tokenizer, options, bad?.list ?? []);
    }
    const worker = new Worker(new URL("./_loader_worker.ts", import.meta.url), { type: "module" });
    const ready = await new Promise<FromWorker>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<FromWorker>) => resolve(e.data);
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        reject(new Error(`loader worker failed to start: ${e.message}`));
      };
      const { resume: _, ...rest } = options;
      worker.postMessage(
        { type: "open", spec, tokenizer: tokenizer.toJSON(), options: rest } satisfies ToWorker,
      );
    }).catch((e) => {
      worker.terminate();
      throw e;
    });
    if (ready.type === "error") {
      worker.terminate();
      throw reviveError(ready.error);
    }
    if (ready.type !== "ready") {
      worker.terminate();
      throw new Error(`loader worker: wanted a "ready" message, got "${ready.type}"`);
    }
    const state = Loader.#startState(o.seed, options.resume, ready.stepsPerEpoch);
    return new Loader(ready.length, ready.stepsPerEpoch, state, null, worker, ready.bad, o.prefetch);
  }

  /**
   * A loader over an in-memory data set, in process (no worker).
   *
   * @param dataset The samples.
   * @param tokenizer The tokenizer.
   * @param options Batch shape, seed, normalisation, resume state (`worker` is ignored).
   * @param bad Records already skipped while reading, for the report.
   * @returns The loader.
   */
  static fromDataset(
    dataset: Dataset,
    tokenizer: Tokenizer,
    options: LoaderOptions = {},
    bad: BadRecord[] = [],
  ): Loader {
    const maker = new BatchMaker(dataset, tokenizer, options);
    const state = Loader.#startState(maker.options.seed, options.resume, maker.stepsPerEpoch);
    return new Loader(dataset.length, maker.stepsPerEpoch, state, maker, null, bad, 1);
  }

  static #startState(seed: number, resume: LoaderState | undefined, stepsPerEpoch: number): LoaderState {
    if (!resume) return { seed, epoch: 0, step: 0 };
    if (resume.seed !== seed) {
      throw new RangeError(
        `loader: resume state has seed ${resume.seed} but the loader's seed is ${seed}: they must match`,
      );
    }
    if (!(resume.step >= 0 && resume.step < stepsPerEpoch && resume.epoch >= 0)) {
      throw new RangeError(
        `loader: resume state epoch ${resume.epoch}, step ${resume.step} is outside an epoch of ${stepsPerEpoch} steps`,
      );
    }
    return { ...resume };
  }

  /** The position of the next batch; save it to resume later. */
  get state(): LoaderState {
    return { ...this.#state };
  }

  /** Every record skipped so far: while reading the data file and while loading images. */
  get bad(): readonly BadRecord[] {
    if (this.#maker) this.#addBad(this.#maker.bad);
    return this.#bad;
  }

  /**
   * A short report of skipped records.
   *
   * @param max How many messages to list.
   * @returns `"no bad records"` or the count and the first messages.
   */
  report(max = 5): string {
    const bad = this.bad;
    if (bad.length === 0) return "no bad records";
    const head = bad.slice(0, max).map((b) => "  " + formatBadRecord(b)).join("\n");
    return `skipped ${bad.length} bad record${bad.length === 1 ? "" : "s"}:\n${head}${
      bad.length > max ? `\n  ... and ${bad.length - max} more` : ""
    }`;
  }

  #addBad(list: readonly BadRecord[]): void {
    for (const b of list) {
      const key = `${b.file}:${b.line}`;
      if (this.#badKeys.has(key)) continue;
      this.#badKeys.add(key);
      this.#bad.push(b);
    }
  }

  /**
   * The next batch; the loader then points at the one after it.
   *
   * @returns The batch at the current state.
   */
  next(): Promise<Batch> {
    if (this.#closed) return Promise.reject(new Error("loader: next() after close()"));
    const { epoch, step } = this.#state;
    this.#state = advance(this.#state, this.stepsPerEpoch);
    if (this.#maker) return this.#maker.make(epoch, step);
    // Keep `prefetch` batches requested beyond the current one; the queue head is the current position.
    this.#fetchPos ??= { seed: this.#state.seed, epoch, step };
    while (this.#queue.length < this.#prefetch + 1) {
      const pos = this.#fetchPos;
      this.#queue.push({ epoch: pos.epoch, step: pos.step, batch: this.#request(pos.epoch, pos.step) });
      this.#fetchPos = advance(pos, this.stepsPerEpoch);
    }
    const head = this.#queue.shift()!;
    if (head.epoch !== epoch || head.step !== step) {
      throw new Error(
        `loader: prefetch queue out of order: wanted ${epoch}/${step}, found ${head.epoch}/${head.step}`,
      );
    }
    return head.batch;
  }

  #request(epoch: number, step: number): Promise<Batch> {
    const id = this.#nextId++;
    const p = new Promise<Batch>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    p.catch(() => {}); // a prefetched batch may fail before anyone awaits it; next() still rejects
    this.#worker!.postMessage({ type: "make", id, epoch, step } satisfies ToWorker);
    return p;
  }

  #onMessage(msg: FromWorker): void {
    if (msg.type === "ready") return;
    const pending = this.#pending.get(msg.id);
    this.#pending.delete(msg.id);
    if (msg.type === "batch") {
      this.#addBad(msg.bad);
      pending?.resolve(msg.batch);
    } else pending?.reject(reviveError(msg.error));
  }

  #failAll(e: Error): void {
    for (const p of this.#pending.values()) p.reject(e);
    this.#pending.clear();
  }

  /** Stops the worker (pending batches reject). Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#worker?.terminate();
    this.#failAll(new Error("loader: closed"));
    this.#queue = [];
  }

  /** Same as {@link Loader.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * The worker side: answers "open" and "make" messages with a {@link BatchMaker}. Exported for the worker
 * module; not for direct use.
 *
 * @param scope The worker's global scope (`self`).
 *
 * @example
 * ```ts
 * // In a worker module (this is all of `_loader_worker.ts`):
 * import { serveLoader } from "./loader.ts";
 * if (false) serveLoader(self as unknown as Parameters<typeof serveLoader>[0]);
 * ```
 */
export function serveLoader(scope: {
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
  postMessage(message: FromWorker, transfer?: Transferable[]): void;
}): void {
  let maker: BatchMaker | null = null;
  let sent = 0;
  const errorOf = (e: unknown) => ({
    name: e instanceof Error ? e.name : "Error",
    message: e instanceof Error ? e.message : String(e),
    bad: e instanceof BadRecordError ? e.toRecord() : undefined,
  });
  scope.onmessage = async (e: MessageEvent<ToWorker>) => {
    const msg = e.data;
    if (msg.type === "open") {
      try {
        const { dataset, bad } = await openDataset(msg.spec);
        maker = new BatchMaker(dataset, tokenizerFromJson(msg.tokenizer), msg.options);
        scope.postMessage({
          type: "ready",
          length: dataset.length,
          stepsPerEpoch: maker.stepsPerEpoch,
          bad: bad?.list ?? [],
        });
      } catch (err) {
        scope.postMessage({ type: "error", id: -1, error: errorOf(err) });
      }
      return;
    }
    if (msg.type === "make") {
      try {
        if (!maker) throw new Error("loader worker: make before open");
        const batch = await maker.make(msg.epoch, msg.step);
        const bad = maker.bad.slice(sent);
        sent = maker.bad.length;
        const { images, text, regionBoxes, regionText, regionValid, indices } = batch;
        const buffers = [images, text, regionBoxes, regionText, regionValid, indices].map((a) =>
          a.buffer as ArrayBuffer
        );
        scope.postMessage({ type: "batch", id: msg.id, batch, bad }, buffers);
      } catch (err) {
        scope.postMessage({ type: "error", id: msg.id, error: errorOf(err) });
      }
    }
  };
}
