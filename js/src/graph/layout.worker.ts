/**
 * Entry of the layout worker. esbuild bundles it (with elkjs) into one script whose text the
 * widget bundle carries; see worker-source.ts and js/build.mjs.
 */

import { createElkCompute } from "./elk-layout";
import type { LayoutRequest, WorkerRequest, WorkerResponse } from "./layout-types";

const compute = createElkCompute();
const scope = self as unknown as {
  onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(message: WorkerResponse): void;
};

/**
 * ELK is compiled Java that V8 runs slowly until it has optimised it: a fresh worker's layouts
 * take several times longer than the same layouts later. So once the first view is answered,
 * the worker lays out a sample level (a chain with skips, entered and left through anchors, as
 * an open block's level is) WARMUP_RUNS times, only while no request waits: a request waits
 * for one sample layout at most.
 */
const WARMUP_RUNS = 12;
const SAMPLE: LayoutRequest = {
  children: [
    ...Array.from({ length: 24 }, (_, i) => ({ w: 60 + 10 * (i % 5), h: 36 + 14 * (i % 2) })),
    { w: 8, h: 8, c: "first" as const },
    { w: 8, h: 8, c: "last" as const },
  ],
  edges: [
    { s: 24, t: 0, lw: 0, lh: 0 },
    ...Array.from({ length: 23 }, (_, i) => ({ s: i, t: i + 1, lw: 0, lh: 0 })),
    ...Array.from({ length: 7 }, (_, i) => ({ s: 3 * i, t: 3 * i + 3, lw: 0, lh: 0 })),
    { s: 23, t: 25, lw: 0, lh: 0 },
  ],
};
let waiting = 0;
let warmups = 0;
/** A sample layout is running or scheduled. */
let warming = false;

function warmUp(): void {
  if (warmups >= WARMUP_RUNS || waiting > 0) {
    warming = false; // resumed when the requests are answered
    return;
  }
  warmups += 1;
  compute(SAMPLE).then(
    () => setTimeout(warmUp, 0),
    () => {
      warming = false;
    },
  );
}

// Assigned (not addEventListener): ELK's bundled fake worker installs its own self.onmessage
// when loaded in a worker, and this must replace it.
scope.onmessage = (event) => {
  const { id, request } = event.data;
  waiting += 1;
  compute(request)
    .then(
      (result) => scope.postMessage({ id, result }),
      (error: unknown) => scope.postMessage({ id, error: String(error) }),
    )
    .finally(() => {
      waiting -= 1;
      if (!warming && waiting === 0 && warmups < WARMUP_RUNS) {
        warming = true;
        setTimeout(warmUp, 0);
      }
    });
};
