// A training process for tests/train_test.ts to kill: trains into Deno.args[0] with overrides Deno.args[1].
import { requestGpu, setGpu } from "../mod.ts";
import { resolveConfig } from "../src/train/config.ts";
import { train } from "../src/train/trainer.ts";

setGpu(await requestGpu());
await train(resolveConfig("cpu-tiny", JSON.parse(Deno.args[1])), { out: Deno.args[0] });
