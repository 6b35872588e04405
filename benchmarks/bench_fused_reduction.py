"""Would a torch.compile'd reduction pay for itself? nbviz's eager per-chunk sums against one
inductor kernel computing the same six numbers, on the ResNet-18-like model's large parameters.

Inductor fuses the eager path's ~8 ops per chunk (aminmax, sum, shifted copy, its sum, square,
sum, bool copy, zero count) into one C++ kernel with two parallel loops: min, max, sum and zeros,
then the shifted sums. Run: `.venv/bin/python benchmarks/bench_fused_reduction.py`; it prints the
compile time (cold unless inductor's cache already holds the kernel), the number of graphs
compiled (dynamic shapes: no recompile per size) and medians of interleaved rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from resnet import resnet18_like
from torch._dynamo.utils import counters

from nbviz import _reduce


@torch.compile(dynamic=True, fullgraph=True)
def fused_sums(x: torch.Tensor) -> torch.Tensor:
    """What `_reduce.chunk_sums` returns, in one compiled kernel."""
    shift = x.sum() / x.numel()
    deviation = x - shift
    zeros = (x == 0).sum().to(x.dtype)
    squares = (deviation * deviation).sum()
    return torch.stack([x.amin(), x.amax(), shift, deviation.sum(), squares, zeros])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    flats = [p.detach().reshape(-1) for p in resnet18_like().parameters() if p.numel() > 4096]
    scratch = torch.empty(_reduce.CPU_CHUNK)

    def eager() -> None:
        for flat in flats:
            if flat.numel() <= scratch.numel():
                _reduce.chunk_sums(flat, scratch[: flat.numel()])
            else:
                _reduce.chunked_moments(flat, scratch)

    def compiled() -> None:
        for flat in flats:
            for part in torch.split(flat, _reduce.CPU_CHUNK):
                fused_sums(part)

    start = time.perf_counter()
    compiled()
    compile_s = time.perf_counter() - start
    graphs = counters["stats"]["unique_graphs"]
    times: dict[str, list[float]] = {"eager (nbviz today)": [], "torch.compile, fused": []}
    runs: list[tuple[str, Callable[[], None]]] = [
        ("eager (nbviz today)", eager),
        ("torch.compile, fused", compiled),
    ]
    for _ in range(args.rounds):
        for name, run in runs:
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    numel = sum(f.numel() for f in flats)
    print(f"{len(flats)} parameters, {numel:,} elements, CPU (2 threads), {args.rounds} rounds")
    print(f"  first compiled call (compile included)  {compile_s:6.1f} s, {graphs} graphs")
    eager_ms = 1e3 * statistics.median(times["eager (nbviz today)"])
    for name, values in times.items():
        ms = 1e3 * statistics.median(values)
        print(f"  {name:38s} {ms:6.1f} ms median  {eager_ms / ms:4.2f}x eager's speed")


if __name__ == "__main__":
    main()
