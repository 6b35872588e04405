"""Per-tensor statistics: nbviz's summaries side by side with what users reach for otherwise.

Run: `.venv/bin/python benchmarks/bench_stats.py`. Prints medians and ratios to nbviz.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from nbviz.stats import summarize


def tensorboard_edges() -> np.ndarray:
    """TensorBoard's default histogram buckets (1.1× apart, both signs): about 1,549 edges."""
    positive = [1e-12]
    while positive[-1] < 1e20:
        positive.append(positive[-1] * 1.1)
    return np.array([-x for x in reversed(positive)] + [0.0] + positive)


def median_ms(work: Callable[[], object], repeats: int = 7) -> float:
    work()  # warm up caches and lazy initialisation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def torch_stats(tensors: list[torch.Tensor]) -> object:
    return [(torch.std_mean(t), torch.histc(t, 64), t.min(), t.max()) for t in tensors]


def tensorboard_histograms(tensors: list[torch.Tensor], edges: np.ndarray) -> object:
    return [np.histogram(t.numpy(), bins=edges) for t in tensors]


def main() -> None:
    torch.manual_seed(0)
    cases = {
        "one 10M-element tensor": [torch.randn(10_000_000)],
        "ResNet-18-like parameters (62 tensors, 11.7M)": [
            torch.randn(n) for n in [9408] + [36864] * 16 + [73728, 147456] * 3 + [294912] * 7
            + [589824, 1179648, 2359296, 2359296, 2359296, 512_000] + [64] * 20 + [512] * 20
        ],
    }  # fmt: skip
    edges = tensorboard_edges()
    for name, tensors in cases.items():
        ours = median_ms(functools.partial(summarize, tensors))
        histc = median_ms(functools.partial(torch_stats, tensors))
        board = median_ms(functools.partial(tensorboard_histograms, tensors, edges), 3)
        print(f"{name}:")
        print(f"  nbviz summarize (exact stats, sampled histogram) {ours:8.1f} ms")
        print(f"  torch std_mean + histc + min + max      {histc:8.1f} ms  {histc / ours:5.1f}x")
        print(f"  numpy histogram, TensorBoard's edges    {board:8.1f} ms  {board / ours:5.1f}x")


if __name__ == "__main__":
    main()
