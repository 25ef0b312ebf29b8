"""One U-shaped split training step, cut at the radio link.

::

    client (ClientHalf)                                  base station (ServerHalf)
    modality encoders, LAM encoder + adapters,
    JSC encoder -> symbols x (B, S)   -- IQ frames -->  PHY receiver -> z = x + n' (zero-forced),
                                                         y = z / (1 + v) -> JSC decoder, LAM decoder
                                                         + adapters -> semantics s (B, Q, d)
    task decoders: loss(s, private labels) <-- s -----
    g_s = dL/ds                            --- g_s -->   backward: dL/dy; the server's optimizer steps
    backward from dL/dx := dL/dz           <-- dL/dz --  dL/dz = dL/dy / (1 + v)
    through the JSC encoder and adapters;
    the client's optimizer steps

Labels, answers and captions stay on the client: what crosses the link is the IQ of the symbols,
the semantics (activations), their gradient and the gradient of the received payload.

**The gradient through the channel is straight-through.** The base station differentiates with
respect to what it received, ``z = x + n'``; the client treats that as the gradient with respect
to what it sent, ``dz/dx = I``: the channel is taken as the transmitted symbols plus noise that
does not depend on them. That is exact for an AWGN channel that the PHY equalises perfectly, the
genie equaliser the one-process model (:meth:`mtsc_sdr.model.MTSCModel.transmit`) trains through:
there ``y = (x + n) / (1 + v)`` too. Over the air it ignores the transmitter's clipping and the
receiver's estimation errors (their effect on the gradient is of the order of the payload's error
vector, about the noise). ``tests/finetune/test_split.py`` checks that at high SNR the split
gradients equal the one-process gradients of the same batch.

A batch is all or nothing: when a frame or a message of it is lost, neither half steps, the base
station forgets the batch's kept graphs, and the loss is counted (:class:`StepResult`).

One base station serves many clients, whose batches interleave: when another client's step moved
the server's weights between a batch's forward and its backward, the kept graph refers to weights
that are gone, and the base station runs that forward again on the kept input (counted in
:attr:`ServerHalf.recomputed`); the client's gradient then refers to semantics one step older
than the ones differentiated (the staleness of asynchronous split learning).

The halves know nothing of the transport: :class:`SplitLink` is what carries a batch both ways
(:mod:`.link`: in one process through the real PHY and a software channel, or between processes
over the project's own IQ stream and message channel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Protocol

import numpy as np
import torch
from torch import nn

from mtsc_sdr import tasks


@dataclass(frozen=True)
class Payload:
    """One item's uplink: ``symbols`` complex64 (n,) (the first ``n_tokens * rate_table[rate_idx]``
    of the encoder's row), and the frame header fields it travels with."""

    symbols: np.ndarray
    rate_idx: int
    n_tokens: int
    task_id: int


class SplitLink(Protocol):
    """What carries one batch across the cut, both ways (:mod:`.link`)."""

    def forward(self, payloads: list[Payload]) -> Optional[np.ndarray]:
        """Send the items' symbols; the base station's semantics float32 (B, Q, d) in item order,
        or None when a frame or the answer to one was lost (the base station forgets the batch)."""

    def backward(self, grads: np.ndarray) -> Optional[list[np.ndarray]]:
        """Send dL/ds float32 (B, Q, d); per item dL/dz complex64 (n_i,), or None when lost."""

    def abandon(self) -> None:
        """The batch sent last gets no backward (an evaluation): the base station forgets it."""


@dataclass
class StepResult:
    """One batch: ``loss`` (None when the batch was lost), and ``lost``: which direction lost it
    (``"forward"``: a frame or its semantics; ``"backward"``: the gradients), else None."""

    loss: Optional[float]
    lost: Optional[str] = None


def adamw(lr: float) -> Callable[[list], torch.optim.Optimizer]:
    """An optimizer factory: AdamW at ``lr``, no weight decay (what the halves use by default)."""
    return lambda params: torch.optim.AdamW(params, lr=lr, weight_decay=0.0)


def _optimizer(module: nn.Module, optimizer: Optional[Callable[[list], torch.optim.Optimizer]]):
    params = [p for p in module.parameters() if p.requires_grad]
    return params, (optimizer(params) if params and optimizer is not None else None)


class ClientHalf:
    """The client's side of a step.

    Args:
        client: a :class:`~mtsc_sdr.model.ClientModel` (its parameters' ``requires_grad`` say what
            trains; :func:`mtsc_sdr.finetune.adapters.prepare` sets them).
        optimizer: factory of the optimizer over the client's trainable parameters (:func:`adamw`);
            None for a half that only encodes (evaluation through the link).
        budget: complex symbols per item (None: the model's).
    """

    def __init__(self, client: nn.Module, optimizer: Optional[Callable[[list], torch.optim.Optimizer]] = None,
                 budget: Optional[int] = None):
        self.client, self.budget = client, budget
        self.params, self.optimizer = _optimizer(client, optimizer)
        self._symbols: Optional[torch.Tensor] = None

    def encode(self, batch: dict, task: str, csi_db: torch.Tensor) -> list[Payload]:
        """The batch's uplink with the graph kept: csi_db float (B,) the SNR the rate choice
        assumes (dB, the model's units) -> one :class:`Payload` per item. A dense task goes on the
        learned token path, as in training."""
        up = self.client.encode(batch, task, csi_db, self.budget, analog=False)
        self._symbols = up.symbols
        rates = self.client.cfg.rate_table
        task_id = tasks.get(task).id
        out = []
        for i in range(up.symbols.shape[0]):
            r, k = int(up.rate_idx[i]), int(up.n_tokens[i])
            out.append(Payload(up.symbols[i, :k * rates[r]].detach().numpy().astype(np.complex64), r, k, task_id))
        return out

    def semantics_grads(self, task: str, batch: dict, semantics: np.ndarray) -> tuple[float, np.ndarray]:
        """Task loss on the returned semantics float32 (B, Q, d) with the batch's own labels, and
        dL/ds float32 (B, Q, d). The gradients of the client's own decoders accumulate here too."""
        s = torch.tensor(np.asarray(semantics, np.float32), requires_grad=True)
        loss = self.client.task_loss(task, s, batch)
        loss.backward()
        return float(loss.detach()), s.grad.numpy()

    def backward(self, payload_grads: list[np.ndarray]) -> None:
        """Backward from dL/dx := dL/dz (complex64 (n_i,) per item, straight-through) through the
        encoder, then the optimizer steps."""
        if self._symbols is None:
            raise RuntimeError("backward before encode")
        g = torch.zeros_like(self._symbols)
        for i, gi in enumerate(payload_grads):
            g[i, :gi.shape[0]] = torch.from_numpy(np.asarray(gi, np.complex64))
        if self._symbols.requires_grad:
            self._symbols.backward(g)
        self.step()

    def step(self) -> None:
        if self.optimizer is not None:
            self.optimizer.step()
        self.discard()

    def discard(self) -> None:
        """Forget the batch: its graph and any gradient accumulated for it."""
        self._symbols = None
        for p in self.params:
            p.grad = None


@dataclass
class _Kept:
    y: torch.Tensor           # complex64 (n,) the MMSE payload, requires grad
    semantics: torch.Tensor   # float32 (Q, d)
    scale: np.ndarray         # float32 (n,) 1 / (1 + v): dL/dz = dL/dy * scale
    header: tuple             # (rate_idx, n_tokens, task_id, snr_db): the rest of the forward's input
    step: int                 # the optimizer steps taken before the forward


class ServerHalf:
    """The base station's side of a step: every received item's forward with its graph kept until
    the batch's gradients come (or the batch is given up).

    Args:
        server: a :class:`~mtsc_sdr.model.ServerModel` (``requires_grad`` says what trains).
        optimizer: factory of the optimizer over the server's trainable parameters (:func:`adamw`).
    """

    def __init__(self, server: nn.Module, optimizer: Callable[[list], torch.optim.Optimizer], max_kept: int = 1024):
        self.server, self.max_kept = server, max_kept
        self.params, self.optimizer = _optimizer(server, optimizer)
        self.kept: dict = {}
        self.steps = 0              # optimizer steps taken
        self.dropped = 0            # kept forwards dropped to stay within max_kept
        self.recomputed = 0         # forwards run again because a step came between (another client's)

    def _forward(self, y: torch.Tensor, header: tuple) -> torch.Tensor:
        rate_idx, n_tokens, task_id, snr_db = header
        return self.server(y[None], torch.tensor([rate_idx]), torch.tensor([n_tokens]),
                           torch.tensor([float(snr_db)]), torch.tensor([task_id]), analog=False).semantics[0]

    def forward(self, key, payload: np.ndarray, noise_var: np.ndarray, rate_idx: int, n_tokens: int,
                task_id: int, snr_db: float) -> np.ndarray:
        """One received item: payload complex (n,) zero-forced and its per-symbol noise variance v
        (n,) -> the semantics float32 (Q, d) from ``y = z / (1 + v)`` (what the model was trained
        on) at the payload's SNR estimate ``snr_db``; the graph is kept under ``key``."""
        scale = (1.0 / (1.0 + np.asarray(noise_var, np.float32))).astype(np.float32)
        y = torch.from_numpy((np.asarray(payload, np.complex64) * scale).astype(np.complex64)).requires_grad_(True)
        header = (rate_idx, n_tokens, task_id, snr_db)
        sem = self._forward(y, header)
        self.kept.pop(key, None)
        self.kept[key] = _Kept(y, sem, scale, header, self.steps)
        while len(self.kept) > self.max_kept:        # batches nobody finished: oldest first
            del self.kept[next(iter(self.kept))]
            self.dropped += 1
        return sem.detach().numpy()

    def backward(self, keys: list, grads: np.ndarray) -> list[np.ndarray]:
        """dL/ds float32 (B, Q, d) for the items kept under ``keys`` (in that order) -> per item
        dL/dz complex64 (n_i,); the optimizer steps and those items are forgotten.

        Raises:
            KeyError: a key has no kept forward (that batch's items are forgotten all the same).
            ValueError: ``grads`` does not match the kept semantics' shapes.
        """
        try:
            items = [self.kept[k] for k in keys]
            if len(grads) != len(items) or any(tuple(np.shape(g)) != tuple(it.semantics.shape)
                                               for g, it in zip(grads, items)):
                raise ValueError(f"gradients of shape {tuple(np.shape(grads))} for {len(items)} items of "
                                 f"semantics {tuple(items[0].semantics.shape) if items else ()}")
            for it in items:
                if it.step != self.steps:     # the weights moved since: their graph is stale
                    it.y = it.y.detach().requires_grad_(True)
                    it.semantics = self._forward(it.y, it.header)
                    self.recomputed += 1
            torch.autograd.backward([it.semantics for it in items],
                                    [torch.tensor(np.asarray(g, np.float32)) for g in grads])
            out = [(it.y.grad.numpy() * it.scale).astype(np.complex64) for it in items]
            if self.optimizer is not None:
                self.optimizer.step()
            self.steps += 1
            return out
        finally:
            self.discard(keys)

    def discard(self, keys=None) -> None:
        """Forget the forwards kept under ``keys`` (None: all) and any gradient accumulated."""
        for k in (list(self.kept) if keys is None else keys):
            self.kept.pop(k, None)
        for p in self.params:
            p.grad = None


def train_batch(client: ClientHalf, link: SplitLink, batch: dict, task: str, csi_db: torch.Tensor) -> StepResult:
    """One split step of ``batch`` (collated examples of ``task``) over ``link``."""
    payloads = client.encode(batch, task, csi_db)
    semantics = link.forward(payloads)
    if semantics is None:
        client.discard()
        return StepResult(None, "forward")
    loss, grads = client.semantics_grads(task, batch, semantics)
    payload_grads = link.backward(grads)
    if payload_grads is None:
        client.discard()
        return StepResult(None, "backward")
    client.backward(payload_grads)
    return StepResult(loss)
