/**
 * Storage buffers pooled by size class (powers of two from 256 bytes), so a training loop that asks for the
 * same sizes every step allocates nothing after its first step.
 *
 * A buffer released while recorded-but-unsubmitted dispatches may still read it can be handed at once to a
 * later dispatch (the GPU runs them in order), but not to an upload: `queue.writeBuffer` would land before
 * those dispatches run. Such buffers wait in `#releasedSinceSubmit` until the next submit.
 *
 * A free list hands out its oldest buffer first (the lowest creation number), not the last one released.
 * A training step that asks for the same sizes in the same order as the step before it then gets the very
 * same buffers, whatever order the previous step freed them in, so its bind groups are the cached ones:
 * the step builds no bind group after the first one.
 *
 * @module
 */

const MIN_CLASS = 256;

/** Rounds a byte count up to its size class. */
export function sizeClass(bytes: number): number {
  let size = MIN_CLASS;
  while (size < bytes) size *= 2;
  return size;
}

/** Buffers by size class; see the module comment for the release rule. */
export class BufferPool {
  #device: GPUDevice;
  #usage: GPUBufferUsageFlags;
  #free = new Map<number, GPUBuffer[]>();
  #releasedSinceSubmit = new Map<number, GPUBuffer[]>();
  #inUse = new Set<GPUBuffer>();
  // Creation numbers: free lists are kept sorted by them, newest first, so pop() gives the oldest.
  #born = new WeakMap<GPUBuffer, number>();
  #created = 0;
  #liveBuffers = 0;
  #liveBytes = 0;

  constructor(device: GPUDevice, usage: GPUBufferUsageFlags) {
    this.#device = device;
    this.#usage = usage;
  }

  /** A buffer of at least `bytes`; `forUpload` excludes buffers released since the last submit. */
  acquire(bytes: number, forUpload: boolean): GPUBuffer {
    const size = sizeClass(bytes);
    const max = this.#device.limits.maxBufferSize;
    if (size > max) {
      throw new RangeError(`Cannot allocate ${bytes} bytes: the device's maxBufferSize is ${max}`);
    }
    let buffer = (forUpload ? undefined : this.#releasedSinceSubmit.get(size)?.pop()) ??
      this.#free.get(size)?.pop();
    if (buffer === undefined) {
      buffer = this.#device.createBuffer({ size, usage: this.#usage });
      this.#born.set(buffer, this.#created++);
      this.#liveBuffers++;
      this.#liveBytes += size;
    }
    this.#inUse.add(buffer);
    return buffer;
  }

  /** Gives a buffer back; releasing one twice or one from elsewhere is an error. */
  release(buffer: GPUBuffer): void {
    if (!this.#inUse.delete(buffer)) {
      throw new Error(`Cannot release a buffer of ${buffer.size} bytes: it is not in use from this pool`);
    }
    this.#push(this.#releasedSinceSubmit, buffer);
  }

  /** Called after each submit: buffers released before it are safe for uploads now. */
  submitted(): void {
    for (const list of this.#releasedSinceSubmit.values()) {
      for (const buffer of list) this.#push(this.#free, buffer);
    }
    this.#releasedSinceSubmit.clear();
  }

  /** Destroys the free buffers (in-use ones stay), returning the bytes freed. */
  trim(): number {
    this.submitted();
    let freed = 0;
    for (const list of this.#free.values()) {
      for (const buffer of list) {
        freed += buffer.size;
        this.#liveBuffers--;
        this.#liveBytes -= buffer.size;
        buffer.destroy();
      }
    }
    this.#free.clear();
    return freed;
  }

  /** Live buffers (in use or free) and the bytes they hold, and those in use. */
  stats(): { liveBuffers: number; liveBytes: number; inUseBuffers: number; inUseBytes: number } {
    let inUseBytes = 0;
    for (const b of this.#inUse) inUseBytes += b.size;
    return {
      liveBuffers: this.#liveBuffers,
      liveBytes: this.#liveBytes,
      inUseBuffers: this.#inUse.size,
      inUseBytes,
    };
  }

  /** Adds a buffer to its size class's list in `map`, keeping the list sorted newest first. */
  #push(map: Map<number, GPUBuffer[]>, buffer: GPUBuffer): void {
    let list = map.get(buffer.size);
    if (list === undefined) map.set(buffer.size, list = []);
    const born = this.#born.get(buffer)!;
    let lo = 0, hi = list.length; // first index whose buffer is older than this one
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#born.get(list[mid])! > born) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, buffer);
  }

  /** Destroys every buffer. */
  destroy(): void {
    for (const b of this.#inUse) b.destroy();
    this.#inUse.clear();
    this.trim();
  }
}
