/**
 * The loader's worker: opens the data set described by the first message and answers batch requests
 * (see `serveLoader` in `loader.ts`). Started by `Loader.open`.
 * @module
 */

import { serveLoader } from "./loader.ts";

serveLoader(self as unknown as Parameters<typeof serveLoader>[0]);
