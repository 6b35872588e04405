"""Hugging Face models from tiny configs (no downloads): trace, show and record end to end.

Kwargs-only forwards, `ModelOutput` returns, tied embeddings and attention masks; recorded values
checked against numpy over the tensors the training loop itself saw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

import nbviz

transformers = pytest.importorskip("transformers")

VOCAB = 50


@dataclass
class Case:
    build: Callable[[], nn.Module]
    inputs: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]
    output: str  # a tensor of the ModelOutput, as capture names it
    tied: tuple[str, str]  # the embedding's layer, and a layer that shares its weight
    attention: str  # a module whose output shapes the probe should see
    embeds: str  # the name the embedding runs under (T5 calls `shared` as encoder.embed_tokens)


def _gpt2() -> nn.Module:
    config = transformers.GPT2Config(
        n_layer=2, n_head=2, n_embd=16, vocab_size=VOCAB, n_positions=16, bos_token_id=0,
        eos_token_id=0,
    )  # fmt: skip
    model: nn.Module = transformers.GPT2LMHeadModel(config)
    return model


def _bert() -> nn.Module:
    config = transformers.BertConfig(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        vocab_size=VOCAB, max_position_embeddings=16, tie_word_embeddings=True,
    )  # fmt: skip
    model: nn.Module = transformers.BertForMaskedLM(config)
    return model


def _t5() -> nn.Module:
    config = transformers.T5Config(
        d_model=16, d_ff=32, d_kv=8, num_layers=2, num_decoder_layers=2, num_heads=2,
        vocab_size=VOCAB, decoder_start_token_id=0, pad_token_id=0, tie_word_embeddings=True,
    )  # fmt: skip
    model: nn.Module = transformers.T5ForConditionalGeneration(config)
    return model


CASES = {
    "gpt2": Case(
        _gpt2,
        lambda ids, mask: {"input_ids": ids, "attention_mask": mask, "labels": ids},
        "['logits']",
        ("transformer.wte", "lm_head"),
        "transformer.h.0.attn",
        "transformer.wte",
    ),
    "bert": Case(
        _bert,
        lambda ids, mask: {
            "input_ids": ids,
            "attention_mask": mask,
            "token_type_ids": torch.zeros_like(ids),
            "labels": ids,
        },
        "['logits']",
        ("bert.embeddings.word_embeddings", "cls.predictions.decoder"),
        "bert.encoder.layer.0.attention",
        "bert.embeddings.word_embeddings",
    ),
    "t5": Case(
        _t5,
        lambda ids, mask: {"input_ids": ids, "attention_mask": mask, "labels": ids},
        "['logits']",
        ("shared", "lm_head"),
        "encoder.block.0.layer.0",
        "encoder.embed_tokens",
    ),
}


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1, VOCAB, (2, 8), generator=g)
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[1, 5:] = 0  # a padded sequence
    return ids, mask


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    torch.manual_seed(0)
    found: Case = CASES[request.param]
    return found


def _numpy_stats(t: torch.Tensor) -> dict[str, float]:
    a = t.detach().double().numpy()
    return {"min": a.min(), "max": a.max(), "mean": a.mean(), "std": a.std(), "numel": a.size}


def test_trace_sees_kwargs_inputs_and_every_run_module(case: Case) -> None:
    model = case.build().eval()
    ids, mask = _batch()
    graph = nbviz.trace(model, **case.inputs(ids, mask))
    text = graph.to_text()
    assert "input kwargs.input_ids" in text
    assert "input kwargs.attention_mask" in text
    assert f"module {case.embeds} (Embedding)" in text
    assert "loss" in text or "logits" in text


def test_show_probes_kwargs_forward_and_records_training(case: Case) -> None:
    model = case.build()
    ids, mask = _batch()
    inputs = case.inputs(ids, mask)
    viz = nbviz.show(model, (), forward_kwargs=inputs, every=1, activations_every=1)
    try:
        names = [name for name, _ in model.named_modules()]
        assert viz.layers == names  # the hierarchy, depth first
        assert viz.state.outputs[case.attention]  # the probe forward ran with the kwargs
        embedding = viz.state.layers[names.index(case.tied[0])]
        assert embedding["shared"]  # the tied embedding, marked as such
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        seen: list[dict[str, Any]] = []
        for _ in range(2):
            out = model(**inputs)
            out.loss.backward()
            weight = dict(model.named_parameters())[f"{case.tied[0]}.weight"]
            assert weight.grad is not None
            seen.append({"logits": out.logits.detach().clone(), "grad": weight.grad.clone()})
            opt.step()
            opt.zero_grad()
        run = viz.recorder.run if viz.recorder is not None else None
        assert run is not None
        assert run.steps.tolist() == [0, 1]
        # Tied weights are one tensor: recorded once, under the first module holding it, with
        # the gradient summed over both of its uses.
        assert run.series(layer=case.tied[1], kind="grad") == []
        grads = run.stats(case.tied[0], "grad", "weight")
        logits = run.stats("", "activation", case.output)
        for step, ref in enumerate(seen):
            for name, value in _numpy_stats(ref["grad"]).items():
                assert grads.values[name][step] == pytest.approx(value, rel=1e-5, abs=1e-12)
            for name, value in _numpy_stats(ref["logits"]).items():
                assert logits.values[name][step] == pytest.approx(value, rel=1e-5, abs=1e-12)
        assert run.stats("", "activation", "['loss']").values["numel"][0] == 1
    finally:
        viz.close()
