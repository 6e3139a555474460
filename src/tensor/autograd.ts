/**
 * Reverse-mode autograd: {@link backward} walks the graph of {@link GradNode}s from a scalar loss in
 * reverse topological order and accumulates each leaf's gradient into its `grad`.
 *
 * @module
 */

import { formatShape, type GradNode, keep, noGrad, type Tensor, tensor, tidy } from "./tensor.ts";
import { add } from "../ops/binary.ts";

/** Every tensor that `root` depends on through nodes that require grad, inputs before outputs. */
function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // Iterative depth-first search: deep graphs must not overflow the call stack.
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length > 0) {
    const [t, expanded] = stack.pop()!;
    if (expanded) {
      order.push(t);
      continue;
    }
    if (seen.has(t) || !t.requiresGrad) continue;
    seen.add(t);
    stack.push([t, true]);
    for (const input of t.node?.inputs ?? []) stack.push([input, false]);
  }
  return order;
}

/**
 * Computes the gradient of `loss` with respect to every leaf tensor that requires grad, adding it to the
 * leaf's `grad` (so gradients accumulate across calls until the optimizer zeroes them). Intermediate
 * gradients are freed as soon as they have been passed on; leaf gradients are kept out of every `tidy`.
 *
 * @param loss A one-element f32 tensor (or pass `dloss` for a non-scalar root).
 * @param dloss The gradient to start from, of `loss`'s shape; ones by default.
 *
 * @example Gradient of a sum of squares
 * ```ts
 * import { backward, requestGpu, setGpu, square, sum, tensor } from "../../mod.ts";
 * setGpu(await requestGpu());
 * const x = tensor([1, 2, 3], [3], { requiresGrad: true });
 * backward(sum(square(x)));
 * console.log(await x.grad!.toArray()); // [2, 4, 6]
 * ```
 */
export function backward(loss: Tensor, dloss?: Tensor): void {
  if (!loss.requiresGrad) {
    throw new Error(`backward: ${loss} does not require grad: no parameter it depends on has requiresGrad`);
  }
  if (dloss === undefined && loss.size !== 1) {
    throw new RangeError(
      `backward: the loss must have one element, got ${formatShape(loss.shape)}; pass dloss`,
    );
  }
  noGrad(() => {
    const grads = new Map<Tensor, Tensor>();
    grads.set(loss, dloss ? dloss.view(loss.shape) : tensor(new Float32Array(loss.size).fill(1), loss.shape));
    const order = topologicalOrder(loss);
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const g = grads.get(t);
      if (g === undefined) continue;
      grads.delete(t);
      if (t.node === null) {
        // A leaf: accumulate into .grad, out of every scope.
        if (t.grad === null) t.grad = keep(g);
        else {
          t.grad = keep(accumulate(t.grad, g));
          g.dispose();
        }
        continue;
      }
      // tidy frees what a rule makes along the way; the gradients it returns survive.
      const node = t.node;
      const fused = fusedAddend(node, grads);
      const inputGrads = tidy(() => node.backward(g, fused?.addend));
      t.node.inputs.forEach((input, k) => {
        const gi = inputGrads[k];
        if (gi === null || gi === undefined || !input.requiresGrad) return;
        if (gi.size !== input.size) {
          throw new Error(
            `backward: the ${t.node!.op} rule gave a gradient of ${formatShape(gi.shape)} for an input of ${
              formatShape(input.shape)
            }`,
          );
        }
        const previous = grads.get(input);
        if (previous === undefined || k === fused?.input) {
          previous?.dispose(); // summed into gi by the rule
          grads.set(input, gi.view(input.shape));
        } else {
          grads.set(input, accumulate(previous, gi));
        }
      });
      // A rule may return one tensor for several inputs: each use above took its own view.
      for (const gi of new Set([...inputGrads, g])) gi?.dispose();
    }
  });
}

/**
 * The gradient gathered so far for the input a node's rule sums in itself (`addendInput`), if there is one
 * and that input is not also another of the node's inputs (whose gradient would then be summed twice).
 */
function fusedAddend(node: GradNode, grads: Map<Tensor, Tensor>): { input: number; addend: Tensor } | null {
  const k = node.addendInput;
  if (k === undefined) return null;
  const input = node.inputs[k];
  const addend = grads.get(input);
  if (addend === undefined || node.inputs.indexOf(input) !== node.inputs.lastIndexOf(input)) return null;
  return { input: k, addend };
}

/** `a + b` as a new tensor of `a`'s shape; disposes `a` (owned by the caller), not `b`. */
function accumulate(a: Tensor, b: Tensor): Tensor {
  const bView = b.view(a.shape);
  const total = add(a, bView);
  bView.dispose();
  a.dispose();
  return total;
}
