"""nbviz: see inside a PyTorch model without leaving the notebook."""

from __future__ import annotations

from .hierarchy import Hierarchy, module_hierarchy
from .probe import ProbeError
from .viz import Viz, show
from .widgets import (
    HistogramView,
    LayerPicker,
    StepSlider,
    StructureView,
    UnknownLayerError,
    VizState,
)

__version__ = "0.1.0"

__all__ = [
    "Hierarchy",
    "HistogramView",
    "LayerPicker",
    "ProbeError",
    "StepSlider",
    "StructureView",
    "UnknownLayerError",
    "Viz",
    "VizState",
    "__version__",
    "module_hierarchy",
    "show",
]
