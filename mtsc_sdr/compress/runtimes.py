"""Client encode runtimes, dispatched by name: the client asks for one, the core never names them.

Every runtime gives an :class:`Encoder`: ``encode(batch, task, snr_db, budget)`` -> an
:class:`~mtsc_sdr.model.split.Uplink` and the time of each encode stage in seconds.

* ``torch`` (:class:`TorchEncoder`): the client's modules, eagerly, fp32 or with the int8 torch
  path (:mod:`.quantize`); stages ``modality_encoders``, ``lam_encoder``, ``jsc_encoder``.
* ``onnxruntime`` (:class:`GraphEncoder` on ONNX Runtime sessions): the artifact's graphs
  (:mod:`.graph`), on the CPU execution provider, or CUDA / TensorRT execution providers where
  the installed onnxruntime has them (``providers``).
* ``tensorrt`` (:class:`GraphEncoder` on :class:`~.tensorrt.TensorRTSession`): engines built on
  the device from the artifact's graphs (:mod:`.tensorrt`).

A graph runtime runs the whole encode network as one graph, so it times one stage,
``encode_graph``: the inputs' front end (question tokens, audio log-mel), the graph and turning
its output into symbols.

Like peft's backends, a runtime is a module path in :data:`RUNTIMES`, imported only when asked
for: a client on torch never imports onnxruntime, and none needs tensorrt unless it runs it.
"""

from __future__ import annotations

import importlib
import time
from typing import Callable, Optional

import torch

from mtsc_sdr import tasks
from mtsc_sdr.model.split import Uplink

from .graph import graph_inputs, signature

#: runtime name -> "module:factory"; the factory is ``(client, artifact, threads) -> Encoder``.
RUNTIMES = {
    "torch": "mtsc_sdr.compress.runtimes:torch_encoder",
    "onnxruntime": "mtsc_sdr.compress.runtimes:onnxruntime_encoder",
    "tensorrt": "mtsc_sdr.compress.tensorrt:tensorrt_encoder",
}


def open_encoder(runtime: str, client, artifact=None, threads: int = 1):
    """The encoder of ``runtime`` for ``client`` (a ClientModel, which keeps the task decoders and
    the input front end) and ``artifact`` (an :class:`~.artifact.Artifact`; graph runtimes need
    one). ValueError for an unknown runtime."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {sorted(RUNTIMES)}, got {runtime!r}")
    module, factory = RUNTIMES[runtime].split(":")
    return getattr(importlib.import_module(module), factory)(client, artifact, threads)


class TorchEncoder:
    """The client's torch modules (fp32, or the int8 modules of :mod:`.quantize`)."""

    runtime = "torch"

    def __init__(self, client):
        self.client = client

    @torch.no_grad()
    def encode(self, batch: dict, task: str, snr_db: torch.Tensor, budget: Optional[int] = None
               ) -> tuple[Uplink, dict[str, float]]:
        """batch: collated examples of ``task``; snr_db float32 (B,) the CSI (dB); budget: complex
        symbols per item -> (uplink, stage seconds)."""
        c = self.client
        t0 = time.perf_counter()
        if c.sends_analog(task):
            # the analog image code has no modality or LAM encoder: its whole time is JSC coding
            up = c.encode(batch, task, snr_db, budget)
            t1 = t2 = t0
        else:
            x, mask = c.embed_inputs(batch, task)
            t1 = time.perf_counter()
            states = c.lam_encoder(x, mask)
            t2 = time.perf_counter()
            score, codes = c.jsc_encoder.project(states, mask, snr_db)
            up = c.uplink(task, [score, *codes], snr_db, budget)
        t3 = time.perf_counter()
        return up, {"modality_encoders": t1 - t0, "lam_encoder": t2 - t1, "jsc_encoder": t3 - t2}


class GraphEncoder:
    """The encode through one graph per (task, budget), each run by a session with ONNX
    Runtime's call surface: ``run(None, feed) -> list[np.ndarray]``.

    Args:
        client: the ClientModel (its input front end).
        open_session: graph path -> session. artifact: where the graphs are.
    """

    def __init__(self, runtime: str, client, artifact, open_session: Callable):
        if artifact is None:
            raise ValueError(f"runtime {runtime!r} runs an artifact's graphs: give one "
                             "(`mtsc-sdr compress export` or `compress apply` makes it)")
        self.runtime, self.client, self.artifact = runtime, client, artifact
        self._open, self._sessions = open_session, {}

    def session(self, task: str, budget: int):
        """(session, graph signature) of ``task`` at ``budget``, opened on first use."""
        key = (task, budget)
        if key not in self._sessions:
            self._sessions[key] = (self._open(self.artifact.graph_path(task, budget)), signature(self.client, task))
        return self._sessions[key]

    @torch.no_grad()
    def encode(self, batch: dict, task: str, snr_db: torch.Tensor, budget: Optional[int] = None
               ) -> tuple[Uplink, dict[str, float]]:
        """As :meth:`TorchEncoder.encode`; one stage, ``encode_graph``."""
        c = self.client
        budget = c.cfg.symbols_per_item if budget is None else int(budget)
        t0 = time.perf_counter()
        sess, sig = self.session(task, budget)
        inputs = graph_inputs(c, batch, task, snr_db)
        reals, rate_idx, n_tokens = (torch.from_numpy(o) for o in
                                     sess.run(None, {n: inputs[n].numpy() for n in sig.inputs}))
        ids = torch.full(rate_idx.shape, tasks.get(task).id, dtype=torch.int64)
        up = Uplink(torch.view_as_complex(reals.contiguous()), rate_idx, n_tokens, ids)
        return up, {"encode_graph": time.perf_counter() - t0}


def torch_encoder(client, artifact, threads: int) -> TorchEncoder:
    torch.set_num_threads(threads)
    return TorchEncoder(client)


#: ONNX Runtime execution providers a client may ask for, by short name.
ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                 "tensorrt": "TensorrtExecutionProvider"}


def ort_session(path, threads: int = 1, provider: str = "cpu"):
    """An ONNX Runtime session on ``path`` with ``threads`` intra-op threads and every graph
    optimisation; ValueError when the installed onnxruntime lacks the provider."""
    import onnxruntime as ort

    name = ORT_PROVIDERS.get(provider, provider)
    if name not in ort.get_available_providers():
        raise ValueError(f"onnxruntime here has no {name} (it has {ort.get_available_providers()})")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    providers = [name] if name == "CPUExecutionProvider" else [name, "CPUExecutionProvider"]
    return ort.InferenceSession(str(path), opts, providers=providers)


def onnxruntime_encoder(client, artifact, threads: int, provider: str = "cpu") -> GraphEncoder:
    torch.set_num_threads(threads)
    return GraphEncoder("onnxruntime", client, artifact, lambda path: ort_session(path, threads, provider))
