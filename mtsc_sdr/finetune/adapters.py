"""What trains in federated split fine-tuning, and what of it travels to the aggregator.

:func:`prepare` sets ``requires_grad`` on a phase-I :class:`~mtsc_sdr.model.MTSCModel`:

* **LAM halves get LoRA adapters.** A backbone tuned with adapters in phase I (``minilm``) keeps
  its own; a backbone trained whole (the project's BART) gets fresh ones (HF ``peft``, rank and
  alpha as given, on the backbone's ``ADAPTER_TARGETS``), made under a fixed seed so that every
  client builds the same ones. Every pre-trained weight is frozen.
* **Client, shared** (sent to the aggregator each round, :func:`shared_state`): the LAM encoder's
  ``lora_B`` matrices, the JSC encoder, and with ``modality`` the modality encoders and the task
  and modality embeddings.
* **Client, personal** (trained, never sent): the task decoders, less the token embedding the
  text decoder ties to the LAM encoder's (frozen with it).
* **Base station**: its LAM decoder's adapters (A and B), the modules phase I trained whole beside
  the adapters (minilm's cross-attention), the JSC decoder and the task queries. One base station
  trains them on every client's batches; nothing of it is averaged.

**Aggregating LoRA: A is frozen (FFA-LoRA, Sun et al., 2024).** FedAvg of A and B separately is
not the average of the updates ``B A`` (the mean of products is not the product of means). With
every client's A frozen at the same values (the phase-I adapters', or the fresh ones made under
one seed), the update is ``B A`` with only B trained, linear in B: the average of the clients'
B gives exactly the average of their updates, and a client's update is what it sends. The price
is half the adapter's trainable parameters; FFA-LoRA reports no loss in accuracy for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mtsc_sdr.model import backbones
from mtsc_sdr.model.backbones import lora

#: client modules trained and shared besides the adapters; with ``modality`` also MODALITY
SHARED = ("jsc_encoder",)
MODALITY = ("image_encoder", "audio_encoder", "video_encoder", "task_embed", "modality_embed")
#: client modules trained but kept (personal): the task decoders
PERSONAL = ("text_decoder", "image_decoder")
#: server modules trained besides the LAM decoder's adapters
SERVER = ("jsc_decoder", "task_queries")


@dataclass(frozen=True)
class FineTuneSetup:
    """What :func:`prepare` made trainable, by state-dict key of the :class:`MTSCModel`."""

    shared: tuple[str, ...]     # client, sent each round
    personal: tuple[str, ...]   # client, kept
    server: tuple[str, ...]     # base station


def _lam_module(half: nn.Module) -> nn.Module:
    """The Hugging Face model inside a LAM half (what adapters go into)."""
    for name in ("bert", "encoder", "decoder"):
        inner = getattr(half, name, None)
        if isinstance(inner, nn.Module):
            return inner
    raise ValueError(f"{type(half).__name__}: no Hugging Face model inside to put adapters into")


def _has_adapters(module: nn.Module) -> bool:
    return any("lora_" in name for name, _ in module.named_parameters())


def prepare(model: nn.Module, rank: int = 8, alpha: float = 16.0, modality: bool = False,
            seed: int = 0) -> FineTuneSetup:
    """Set what trains on ``model`` (an :class:`~mtsc_sdr.model.MTSCModel`, in place; see the
    module docstring) and return it by state-dict key."""
    targets = backbones.get(model.backbone_kind).ADAPTER_TARGETS
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for half in (model.client.lam_encoder, model.server.lam_decoder):
            if not _has_adapters(half):
                lora.inject(_lam_module(half), targets, rank, alpha)
                half.lora = True
    finally:
        torch.random.set_rng_state(gen_state)
    model.requires_grad_(False)
    client, server = model.client, model.server
    for name, p in client.lam_encoder.named_parameters():
        p.requires_grad_("lora_B" in name)
    for part in SHARED + (MODALITY if modality else ()):
        _train(getattr(client, part, None))
    tied = {id(p) for p in client.lam_encoder.parameters()}
    for part in PERSONAL:
        module = getattr(client, part, None)
        if module is not None:
            for p in module.parameters():
                p.requires_grad_(id(p) not in tied)
    decoder = server.lam_decoder
    for name, p in decoder.named_parameters():
        p.requires_grad_("lora_" in name or any(new in name for new in getattr(
            backbones.get(model.backbone_kind), "NEW_MODULES", ())))
    for part in SERVER:
        _train(getattr(server, part, None))
    return _setup(model, modality)


def _train(part) -> None:
    if isinstance(part, nn.Parameter):
        part.requires_grad_(True)
    elif isinstance(part, nn.Module):
        part.requires_grad_(True)


def _setup(model: nn.Module, modality: bool) -> FineTuneSetup:
    personal_parts = tuple(f"client.{p}." for p in PERSONAL)
    shared, personal, server = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("server."):
            server.append(name)
        elif name.startswith(personal_parts):
            personal.append(name)
        else:
            shared.append(name)
    return FineTuneSetup(tuple(shared), tuple(personal), tuple(server))


def shared_state(model: nn.Module, setup: FineTuneSetup) -> dict[str, np.ndarray]:
    """The client's shared trainable tensors, float32 numpy copies by state-dict key: what a
    client sends to the aggregator."""
    params = dict(model.named_parameters())
    return {k: params[k].detach().cpu().numpy().astype(np.float32, copy=True) for k in setup.shared}


def load_shared_state(model: nn.Module, setup: FineTuneSetup, state: dict[str, np.ndarray]) -> None:
    """Copy the aggregator's shared tensors into ``model``.

    Raises:
        ValueError: a key missing or unexpected, or a shape that differs (nothing is copied then).
    """
    params = dict(model.named_parameters())
    missing, extra = sorted(set(setup.shared) - set(state)), sorted(set(state) - set(setup.shared))
    problems = ([f"missing {missing[:4]}"] if missing else []) + ([f"unexpected {extra[:4]}"] if extra else [])
    problems += [f"{k}: shape {tuple(np.shape(state[k]))}, the model has {tuple(params[k].shape)}"
                 for k in setup.shared if k in state and tuple(np.shape(state[k])) != tuple(params[k].shape)]
    if problems:
        raise ValueError("shared state does not fit the model: " + "; ".join(problems))
    with torch.no_grad():
        for k in setup.shared:
            params[k].copy_(torch.from_numpy(np.asarray(state[k], np.float32)))
