"""The client's encode as ONNX graphs: one graph per task and symbol budget.

A graph holds everything of the encode that is a fixed computation on tensors (the network):

* a token task (VQA, captions): inputs :meth:`~mtsc_sdr.model.split.ClientModel.encoder_inputs`
  (with ``context_ids``, the local knowledge snippets' tokens, for a task with a question in a
  model with retrieval inputs) plus ``snr_db`` float32 (B,) -> modality encoder -> LAM encoder -> JSC projection, rate choice,
  top-k and power (:meth:`~mtsc_sdr.model.jsc.JSCEncoder.assemble_reals`) -> outputs ``reals``
  float32 (B, budget, 2) (the complex symbols as (re, im)), ``rate_idx`` and ``n_tokens`` int64
  (B,);
* the dense image task with the analog code: inputs ``image`` float32 (B, 3, H, W) and
  ``snr_db`` -> the code's projection, rate choice, scale side information and power
  (:meth:`~mtsc_sdr.model.split.ClientModel.analog_reals`; its per-rate allocation and layout
  are constants of the graph) -> the same three outputs.

What stays outside, in the client's torch/Python: tokenising the question and the audio log-mel
front end (:meth:`~mtsc_sdr.model.encoders.AudioEncoder.features`; ONNX Runtime's STFT took
27x torch's time). The budget is a constant of the graph (it sets output shapes); the batch size,
the question length and the snippets' length (1..``context_tokens``) are dynamic.

Export uses torch's dynamo-based exporter (``torch.onnx.export(..., dynamo=True)``), the one
torch maintains; the TorchScript-based one cannot export the STFT and is deprecated.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mtsc_sdr import tasks
from mtsc_sdr.data import collate, examples
from mtsc_sdr.data.knowledge import Facts
from mtsc_sdr.model.analog import ItemCode

#: ONNX opset of exported graphs (what ONNX Runtime 1.32 and TensorRT 10 both take).
OPSET = 18
#: Dynamic dimension ranges used at export.
MAX_BATCH, MAX_QUESTION = 64, 128


@dataclass(frozen=True)
class Signature:
    """A task's graph interface: input and output names, in order, and which input dims are
    dynamic (``{name: {axis: dim name}}``)."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic: dict


def signature(client, task: str) -> Signature:
    """The graph interface of ``task`` for ``client`` (a ClientModel)."""
    spec = tasks.get(task)
    names = ["audio_mel", "audio_length"] if spec.modality == "audio" else [spec.modality]
    sequence = {"question_ids": "question"}
    if spec.question:
        names.append("question_ids")
        if client.cfg.context_tokens:
            names.append("context_ids")
            sequence["context_ids"] = "context"
    names.append("snr_db")
    dynamic = {n: {0: "batch", **({1: sequence[n]} if n in sequence else {})} for n in names}
    return Signature(tuple(names), ("reals", "rate_idx", "n_tokens"), dynamic)


def dim_ranges(cfg) -> dict[str, tuple[int, int, int]]:
    """(min, opt, max) of the graphs' dynamic dims that a model config bounds, by dim name, for an
    engine's optimization profile (:func:`mtsc_sdr.compress.tensorrt.derive_shape_ranges`): the
    snippets' tokens, 1..``context_tokens`` (a longer encoder input than the model's positions
    would not build)."""
    return {"context": (1, cfg.context_tokens, cfg.context_tokens)} if cfg.context_tokens else {}


def graph_inputs(client, batch: dict, task: str, snr_db: torch.Tensor) -> dict[str, torch.Tensor]:
    """The tensors a task's graph takes, by name, from a collated batch and the SNR float32 (B,)."""
    if client.sends_analog(task):
        return {"image": batch["image"].float(), "snr_db": snr_db.float()}
    return {**client.encoder_inputs(batch, task), "snr_db": snr_db.float()}


class EncodeGraph(nn.Module):
    """``client``'s encode of ``task`` at ``budget`` symbols as one module over plain tensors
    (see the module docstring); what is exported, and what the tests compare with the client."""

    def __init__(self, client, task: str, budget: int):
        super().__init__()
        self.client, self.task, self.budget = client, task, int(budget)
        self.sig = signature(client, task)
        self.analog = client.sends_analog(task)
        if self.analog:      # the code's per-rate table, constants of the graph
            table = client.analog.rate_code(self.budget, client.cfg.rate_table, client.cfg.rate_snr_thresholds_db)
            for f, t in zip(fields(ItemCode), table.tensors()):
                self.register_buffer(f"rate_code_{f.name}", t.clone(), persistent=False)

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        inputs = dict(zip(self.sig.inputs, tensors))
        snr = inputs.pop("snr_db")
        if self.analog:
            (coef,) = self.client.project(self.task, inputs, None, analog=True)
            table = ItemCode(*(getattr(self, f"rate_code_{f.name}") for f in fields(ItemCode)))
            return self.client.analog_reals(coef, snr, self.budget, table)
        score, *codes = self.client.project(self.task, inputs, snr)
        code = self.client.jsc_encoder.assemble_reals(score, codes, snr, self.budget)
        return code.reals, code.rate_idx, code.n_tokens


def example_inputs(client, task: str, n: int = 2, seed: int = 1) -> dict[str, torch.Tensor]:
    """Inputs of ``n`` validation items of ``task`` (SNRs spread over the rate classes; for a model
    with retrieval inputs, each item with a knowledge snippet): what the exporter traces with."""
    items = examples("val", [task], n_per_task=n, seed=seed)
    if client.cfg.context_tokens:
        facts = Facts(np.random.default_rng(seed)).facts()
        items = [replace(e, local_context=facts[i].text()) for i, e in enumerate(items)]
    batch = collate(items)
    snr = torch.linspace(-3.0, 18.0, n)
    return graph_inputs(client, batch, task, snr)


def export(client, task: str, budget: int, path: str | Path) -> Signature:
    """Write ``task``'s encode graph at ``budget`` symbols to ``path`` (ONNX, opset :data:`OPSET`).

    ``client`` must be in eval mode with adapters merged (:func:`prepare`)."""
    graph = EncodeGraph(client, task, budget).eval()
    inputs = example_inputs(client, task)
    dims = {"batch": torch.export.Dim("batch", min=1, max=MAX_BATCH),
            "question": torch.export.Dim("question", min=1, max=MAX_QUESTION),
            "context": torch.export.Dim("context", min=1, max=max(2, client.cfg.context_tokens))}
    shapes = tuple({axis: dims[name] for axis, name in graph.sig.dynamic[n].items()} for n in graph.sig.inputs)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings(), quiet("torch.onnx", "onnx_ir", "onnxscript"):
        warnings.simplefilter("ignore")       # the exporter's notes on its own internals
        torch.onnx.export(graph, tuple(inputs[n] for n in graph.sig.inputs), str(path),
                          input_names=list(graph.sig.inputs), output_names=list(graph.sig.outputs),
                          dynamic_shapes=(shapes,), dynamo=True, optimize=True, opset_version=OPSET,
                          external_data=False, verbose=False)
    return graph.sig


@contextlib.contextmanager
def quiet(*loggers: str):
    """Raise ``loggers`` to ERROR for a while: the exporter logs every skipped torchvision op and
    every deduplicated initializer."""
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def prepare(client):
    """The client as graphs see it: eval mode, adapters merged into their weights (in place)."""
    client.eval()
    client.lam_encoder.merge_adapters()
    return client.requires_grad_(False)
