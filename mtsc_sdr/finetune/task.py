"""The task the Flower apps run (:mod:`.client_app`, :mod:`.server_app`): the model, what of it
travels, and a client's local training and evaluation over the link.

Run-config keys this module reads (beside :data:`.runconfig.DEFAULTS`; strings, numbers, bools):

* ``checkpoint``: the phase-I model ("" = the shipped ``models/default``);
* ``adapter-rank``, ``adapter-alpha``, ``modality``, ``seed``: :func:`.adapters.prepare`;
* ``control-endpoint``: the fine-tuning base station's control link (:mod:`.station`);
  ``tx-endpoints``: comma-separated IQ endpoints, one per partition (a client binds its own; the
  link process between it and the base station connects); ``session-base``: partition ``i`` uses
  session ``session-base + i``;
* ``curve-server-key``: the fine-tuning base station's public CURVE key (Z85 text, a ``.key`` file,
  or ``NAME`` in the keys directory; "" = plain, loopback): the control link then speaks CURVE;
  ``curve-keys``: this node's key pair (``NAME`` or ``NAME.key_secret``), its identity for a
  station with an allow-list (``mtsc-sdr keys``); ``insecure``: let the client bind a ``tx-endpoints``
  entry beyond loopback (IQ streams have no CURVE: GNU Radio's gr-zeromq may be their peer);
* ``snr-db``: the SNR set on the link (the rate choice assumes it plus the PHY's subcarrier gain);
* ``tasks``: comma-separated text tasks trained and evaluated; ``domain``: the built-in world's
  domain (:mod:`mtsc_sdr.data.domains`; ``new_questions`` by default: question types phase I never
  asks); ``examples-per-client``, ``dirichlet-alpha``: each client's non-IID share of the domain's
  train split (:func:`mtsc_sdr.data.partition.client_examples`: its own main task, colour and
  question-type mix; ``pool-partitions`` P > 0: the union of P clients' shares, for centralized
  training on the pooled data); ``local-steps``, ``batch-size``, ``lr``: its local training per round (the
  base station has its own learning rate);
* ``update-dtype``: how the shared tensors travel, ``float16`` (the shipped weights' precision;
  half the bytes) or ``float32``; the aggregator averages in float64;
* ``eval-items``: validation items per task for :func:`evaluate`; ``link-timeout-s``;
  ``threads``: torch threads of a client (the simulation engine runs one client per core).

A client's personal task decoders train during its rounds and stay on the client: the ClientApp
keeps them in the node's state between rounds (:func:`personal_state`).
"""

from __future__ import annotations

import argparse
import copy
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mtsc_sdr import tasks as task_table
from mtsc_sdr.data import collate, partition
from mtsc_sdr.link.security import LinkSecurity, security_from_args
from mtsc_sdr.metrics import score_task_items
from mtsc_sdr.model import TaskSemantics
from mtsc_sdr.phy.ofdm import SUBCARRIER_SNR_GAIN_DB
from mtsc_sdr.runtime import protocol

from .adapters import FineTuneSetup, load_shared_state, prepare, shared_state
from .link import RemoteLink
from .split import ClientHalf, adamw, train_batch

#: Defaults of the task's own run-config keys.
DEFAULTS: dict[str, Any] = {
    "checkpoint": "", "adapter-rank": 8, "adapter-alpha": 16.0, "modality": False, "seed": 0,
    "control-endpoint": "", "tx-endpoints": "", "session-base": 100, "snr-db": 20.0,
    "curve-server-key": "", "curve-keys": "", "insecure": False,
    "tasks": "vqa,caption_image", "domain": "new_questions", "examples-per-client": 512, "dirichlet-alpha": 0.5,
    "pool-partitions": 0, "local-steps": 50, "batch-size": 8,
    "lr": 5e-4, "eval-items": 64, "link-timeout-s": 20.0, "threads": 1, "update-dtype": "float16",
}
#: What the shared tensors may travel as.
UPDATE_DTYPES = ("float16", "float32")


@dataclass
class FineTuneModel:
    """A phase-I model prepared for fine-tuning (:func:`.adapters.prepare`)."""

    model: Any                  # MTSCModel
    setup: FineTuneSetup
    update_dtype: str = "float16"


def _get(config: dict, key: str):
    value = config.get(key, DEFAULTS[key])
    return type(DEFAULTS[key])(value) if not isinstance(DEFAULTS[key], bool) else bool(value)


def _checkpoint(config: dict) -> str:
    """The phase-I model's directory (``checkpoint``, or the shipped default)."""
    from mtsc_sdr.model.checkpoint import shipped_model_dir

    return _get(config, "checkpoint") or str(shipped_model_dir())


@functools.lru_cache(maxsize=2)
def _prepared(checkpoint: str, rank: int, alpha: float, modality: bool, seed: int) -> FineTuneModel:
    from mtsc_sdr.model import load

    model = load(checkpoint)
    return FineTuneModel(model, prepare(model, rank=rank, alpha=alpha, modality=modality, seed=seed))


def build_model(config: dict) -> FineTuneModel:
    """The phase-I model with adapters, what trains set (loaded once per process, copied)."""
    torch.set_num_threads(_get(config, "threads"))
    dtype = _get(config, "update-dtype")
    if dtype not in UPDATE_DTYPES:
        raise ValueError(f"run config: update-dtype must be one of {UPDATE_DTYPES}, got {dtype!r}")
    ft = copy.deepcopy(_prepared(_checkpoint(config), _get(config, "adapter-rank"),
                                 _get(config, "adapter-alpha"), _get(config, "modality"), _get(config, "seed")))
    ft.update_dtype = dtype
    return ft


def trainable_state(ft: FineTuneModel) -> dict[str, np.ndarray]:
    """What a client sends: its shared trainable tensors by state-dict key, as ``update-dtype``."""
    return {k: v.astype(ft.update_dtype) for k, v in shared_state(ft.model, ft.setup).items()}


def load_trainable_state(ft: FineTuneModel, state: dict[str, np.ndarray]) -> None:
    """The aggregator's tensors into the model (ValueError naming a key that does not fit)."""
    load_shared_state(ft.model, ft.setup, state)


def personal_state(ft: FineTuneModel) -> dict[str, np.ndarray]:
    """The client's personal trainable tensors (its task decoders), float32: kept, never sent."""
    params = dict(ft.model.named_parameters())
    return {k: params[k].detach().numpy().astype(np.float32, copy=True) for k in ft.setup.personal}


def load_personal_state(ft: FineTuneModel, state: dict[str, np.ndarray]) -> None:
    """The node's kept personal tensors back into the model (ValueError when they do not fit)."""
    params = dict(ft.model.named_parameters())
    if set(state) != set(ft.setup.personal) or any(tuple(np.shape(state[k])) != tuple(params[k].shape)
                                                   for k in state):
        raise ValueError("the node's personal state does not fit the model (another checkpoint or setup?)")
    with torch.no_grad():
        for k, v in state.items():
            params[k].copy_(torch.from_numpy(np.asarray(v, np.float32)))


def _tasks(config: dict) -> list[str]:
    names = task_table.check_names([t.strip() for t in _get(config, "tasks").split(",") if t.strip()])
    dense = [t for t in names if task_table.get(t).dense]
    if dense or not names:
        raise ValueError(f"run config: tasks: fine-tuning takes text tasks, got {names}")
    return names


def client_examples(config: dict, partition_id: int, num_partitions: int) -> list:
    """A client's training examples: its own non-IID share of the domain's train split; with
    ``pool-partitions`` P > 0 (centralized training, one client) the union of the shares of P
    clients, the pooled data of a P-client federation."""
    pooled = _get(config, "pool-partitions")
    ids, n = ((range(pooled), pooled) if pooled > 0 else ([partition_id], num_partitions))
    return [ex for i in ids for ex in partition.client_examples(
        i, n, seed=_get(config, "seed"), domain=_get(config, "domain"), tasks=_tasks(config),
        n_per_client=_get(config, "examples-per-client"), alpha=_get(config, "dirichlet-alpha"))]


def eval_examples(config: dict, task: str) -> list:
    """The validation items every client is evaluated on, per task (the domain's val split)."""
    return partition.eval_examples(domain=_get(config, "domain"), tasks=[task], n_per_task=_get(config, "eval-items"))


def _security(config: dict) -> LinkSecurity:
    """The node's link security from its run config (``curve-server-key``, ``curve-keys``, ``insecure``)."""
    server_key, keys = _get(config, "curve-server-key"), _get(config, "curve-keys")
    if keys and not server_key:
        raise ValueError("run config: curve-keys needs curve-server-key (the station's public key)")
    return security_from_args(argparse.Namespace(curve_keys=keys or None, curve_server_key=server_key or None,
                                                 insecure=_get(config, "insecure")))


def _connect(config: dict, partition_id: int, client_model):
    """The runtime client of partition ``partition_id`` (handshake done) and its link."""
    from mtsc_sdr.runtime.client import Client, ClientSettings

    endpoints = [e.strip() for e in _get(config, "tx-endpoints").split(",") if e.strip()]
    if not 0 <= partition_id < len(endpoints) or not _get(config, "control-endpoint"):
        raise ValueError(f"run config: partition {partition_id} needs tx-endpoints (one per partition, "
                         f"{len(endpoints)} given) and control-endpoint")
    settings = ClientSettings(session=_get(config, "session-base") + partition_id, snr_db=_get(config, "snr-db"),
                              hello_timeout_s=_get(config, "link-timeout-s"))
    client = Client(client_model, protocol.checkpoint_identity(_checkpoint(config)), endpoints[partition_id],
                    _get(config, "control-endpoint"), settings, security=_security(config))
    try:
        client.handshake()
    except BaseException:
        client.control.close(linger_ms=0)
        client.push.close(linger_ms=0)
        raise
    return client, RemoteLink(client, timeout_s=_get(config, "link-timeout-s"))


def local_train(ft: FineTuneModel, config: dict, partition_id: int, num_partitions: int) -> tuple[int, dict]:
    """``local-steps`` split steps over the link, each batch of one task, the task drawn in
    proportion to the client's examples of it. Returns (examples trained on, metrics: mean loss, batches lost and the
    link's bytes)."""
    model = ft.model.train()
    rng = np.random.default_rng([_get(config, "seed"), partition_id, int(config.get("server-round", 0))])
    by_task: dict[str, list] = {}
    for ex in client_examples(config, partition_id, num_partitions):
        by_task.setdefault(ex.task, []).append(ex)
    client, link = _connect(config, partition_id, model.client)
    half = ClientHalf(model.client, adamw(_get(config, "lr")))
    batch_size = _get(config, "batch-size")
    csi = torch.full((batch_size,), _get(config, "snr-db") + SUBCARRIER_SNR_GAIN_DB)
    losses, trained = [], 0
    try:
        names = sorted(by_task)
        share = np.array([len(by_task[t]) for t in names], float)
        for _ in range(_get(config, "local-steps")):
            task = names[int(rng.choice(len(names), p=share / share.sum()))]   # as the client's data mixes them
            pool = by_task[task]
            batch = [pool[i] for i in rng.choice(len(pool), size=min(batch_size, len(pool)), replace=False)]
            result = train_batch(half, link, collate(batch), task, csi[:len(batch)])
            if result.loss is not None:
                losses.append(result.loss)
                trained += len(batch)
    finally:
        client.close()
    metrics = {"loss": float(np.mean(losses)) if losses else float("nan"), "steps": float(len(losses)),
               **{k: float(v) for k, v in link.counters.as_dict().items()}}
    return trained, metrics


def evaluate(ft: FineTuneModel, config: dict, partition_id: int, num_partitions: int) -> tuple[int, dict]:
    """Each task's main metric on ``eval-items`` validation items through the link (the base
    station answers, then forgets the items). Returns (items, {task: mean metric})."""
    model = ft.model.eval()
    client, link = _connect(config, partition_id, model.client)
    half = ClientHalf(model.client)          # encodes only: no optimizer
    batch_size = _get(config, "batch-size")
    out, n = {}, 0
    try:
        for task in _tasks(config):
            items = eval_examples(config, task)
            hyps, refs = [], []
            for i in range(0, len(items), batch_size):
                chunk = items[i:i + batch_size]
                batch = collate(chunk)
                csi = torch.full((len(chunk),), _get(config, "snr-db") + SUBCARRIER_SNR_GAIN_DB)
                with torch.no_grad():
                    semantics = link.forward(half.encode(batch, task, csi))
                link.abandon()
                if semantics is None:
                    continue
                hyps += list(model.client.decode(task, TaskSemantics(torch.from_numpy(semantics)),
                                                 questions=batch.get("question")))
                refs += [list(ex.references) for ex in chunk]
                n += len(chunk)
            metric = task_table.get(task).main_metric
            out[task] = float(np.mean(score_task_items(task, hyps, refs)[metric])) if hyps else float("nan")
    finally:
        client.close()
    return n, out
