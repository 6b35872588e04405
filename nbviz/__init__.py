"""nbviz: see inside a PyTorch model without leaving the notebook."""

from __future__ import annotations

from .dataflow import Graph, GraphvizMissingError, autograd_svg, trace
from .hierarchy import Hierarchy, module_hierarchy
from .probe import ProbeError
from .recorder import Recorder, open, watch
from .records import Anomaly, SeriesKey
from .run import Run
from .store import Retention
from .viz import Viz, show
from .widgets import (
    GradientFlowView,
    HistogramView,
    LayerPicker,
    StepSlider,
    StructureView,
    UnknownLayerError,
    VizState,
)

__version__ = "0.1.0"

__all__ = [
    "Anomaly",
    "GradientFlowView",
    "Graph",
    "GraphvizMissingError",
    "Hierarchy",
    "HistogramView",
    "LayerPicker",
    "ProbeError",
    "Recorder",
    "Retention",
    "Run",
    "SeriesKey",
    "StepSlider",
    "StructureView",
    "UnknownLayerError",
    "Viz",
    "VizState",
    "__version__",
    "autograd_svg",
    "module_hierarchy",
    "open",
    "show",
    "trace",
    "watch",
]
