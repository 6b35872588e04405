/**
 * Entry of the layout worker. esbuild bundles it (with elkjs) into one script whose text the
 * widget bundle carries; see worker-source.ts and js/build.mjs.
 */

import { createElkCompute } from "./elk-layout";
import type { WorkerRequest, WorkerResponse } from "./layout-types";

const compute = createElkCompute();
const scope = self as unknown as {
  onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(message: WorkerResponse): void;
};

// Assigned (not addEventListener): ELK's bundled fake worker installs its own self.onmessage
// when loaded in a worker, and this must replace it.
scope.onmessage = (event) => {
  const { id, request } = event.data;
  compute(request).then(
    (result) => scope.postMessage({ id, result }),
    (error: unknown) => scope.postMessage({ id, error: String(error) }),
  );
};
