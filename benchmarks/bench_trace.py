"""Time of `nbviz.trace` beside a plain eager forward, on a 48-block GPT and the 500-layer MLP.

Target: a trace in 0.5 s or less on each. The trace and the forward alternate, round by round,
so drift of the machine hits both alike; medians are printed, with node and edge counts.

Run: `.venv/bin/python benchmarks/bench_trace.py [--rounds N]`.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time
from collections.abc import Callable

import torch
from torch import nn

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))

from models import mlp  # the test zoo lives in tests/
from trace_models import GPT

import nbviz

TARGET_S = 0.5


def seconds(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def bench(name: str, model: nn.Module, example: torch.Tensor, rounds: int) -> bool:
    graph = nbviz.trace(model, example)  # warm-up, and the counts
    forward, traced = [], []
    for _ in range(rounds):
        with torch.no_grad():
            forward.append(seconds(lambda: model(example)))
        traced.append(seconds(lambda: nbviz.trace(model, example)))
    trace_s, forward_s = statistics.median(traced), statistics.median(forward)
    modules = sum(node.kind == "module" for node in graph.nodes)
    ok = trace_s <= TARGET_S
    print(
        f"{name:<22} trace {trace_s * 1000:7.1f} ms   eager forward {forward_s * 1000:7.1f} ms"
        f"   ratio {trace_s / forward_s:5.1f}×   nodes {len(graph.nodes):5d}"
        f" (modules {modules}, ops {sum(n.kind == 'op' for n in graph.nodes)})"
        f"   edges {len(graph.edges):5d}   {'ok' if ok else f'OVER {TARGET_S} s'}"
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {rounds}")
    gpt = GPT(blocks=48, width=64, heads=4, vocab=256, context=64).eval()
    results = [
        bench("GPT, 48 blocks", gpt, torch.randint(0, 256, (1, 64)), rounds),
        bench("MLP, 500 Linear", mlp(), torch.randn(16, 64), rounds),
    ]
    if not all(results):
        sys.exit(1)


if __name__ == "__main__":
    main()
