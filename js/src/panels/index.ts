/** The statistics panels (issue 5): pure views over a `StatsSource` (the browser run store). */

export { type AnomalyBannerData, type AnomalyBannerOptions, createAnomalyBanner } from "./banner";
export {
  createDistribution,
  type DistributionData,
  type DistributionOptions,
} from "./distribution";
export { createGradientFlow, type GradientFlowData, type GradientFlowOptions } from "./gradflow";
export { createHistogramPanel, type HistogramPanelData } from "./histpanel";
export { percentilesFromHistogram } from "./percentiles";
export {
  type ColorScale,
  createLegend,
  NO_DATA_COLOR,
  overlayColors,
  scaleForRun,
} from "./scale";
export type { AnomalyRow, Kind, Metric, SeriesInfo, StatsSource, View } from "./source";
export { createStepSlider, type StepSliderData, type StepSliderOptions } from "./stepslider";
