/**
 * Gradient flow (view kind "flow"): gradient norm per layer at `state.step` and a layer × step
 * heatmap of a metric, over the state model's run store. Clicks select the layer and the step.
 */

import { viewRoot } from "../draw/dom";
import { storeFor } from "../live/attach";
import { createGradientFlow } from "../panels";
import { type Cleanup, type Mounted, type StateModel, select, selectedOf, watch } from "./common";
import { requestLayer, setStep, stepOf } from "./stats";

export function mountFlow(state: StateModel, cleanup: Cleanup): Mounted {
  const store = storeFor(state);
  const flow = createGradientFlow(
    {
      source: store,
      step: stepOf(state),
      metric: "grad_norm",
      selected: selectedOf(state),
      layers: null,
    },
    {
      onSelect: (name) => {
        select(state, name);
        requestLayer(store, name);
      },
      onStep: (step) => setStep(state, step, store),
    },
  );
  const draw = (): void =>
    flow.update({ source: store, step: stepOf(state), selected: selectedOf(state) });
  cleanup.add(store.onChange(draw));
  watch(state, ["selected", "step"], draw, cleanup);
  cleanup.add(() => flow.destroy());
  return { el: viewRoot("flow", flow.el) };
}
