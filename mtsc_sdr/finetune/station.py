"""The base station in fine-tuning mode (``python -m mtsc_sdr.finetune.station``, which
``mtsc-sdr finetune`` starts): :class:`~mtsc_sdr.runtime.bs.BaseStation` whose server half trains.

Every decoded frame runs the server half with its graph kept (:class:`~.split.ServerHalf`, keyed
by session and seq) and answers ``semantics`` as in inference; a client's ``gradients`` message
(dL/ds of a batch) runs the backward, steps the server's optimizer and answers
``payload_gradients`` (dL/dz per item; :mod:`mtsc_sdr.runtime.protocol`). A ``gradients`` message
with no seqs gives the batch up. Counters (``bs`` in the summary): ``train_steps``,
``train_batches_given_up``, ``train_gradients_refused`` (no kept forward for a seq, gradients of
the wrong shape, or a backward that failed), ``train_kept_dropped`` (forwards nobody finished,
dropped to bound memory), ``train_forwards_recomputed`` (kept forwards run again because another
client's step came between, :class:`~.split.ServerHalf`).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time

import numpy as np

from mtsc_sdr.config import ConfigError
from mtsc_sdr.model import load
from mtsc_sdr.runtime import protocol
from mtsc_sdr.runtime.bs import BaseStation, payload_snr_db, security_for, serve_until_stopped

from .adapters import prepare
from .runconfig import SERVER_LR
from .split import ServerHalf, adamw

log = logging.getLogger("mtsc_sdr.finetune.station")


class TrainingBaseStation(BaseStation):
    """A base station whose server half trains (see the module docstring).

    Args:
        checkpoint, rx_endpoints, control_endpoint, **kwargs: as :class:`BaseStation`.
        lr: the server's AdamW learning rate. rank, alpha, seed: :func:`~.adapters.prepare`'s.
    """

    def __init__(self, checkpoint: str, rx_endpoints: list[str], control_endpoint: str, *, lr: float = 1e-4,
                 rank: int = 8, alpha: float = 16.0, seed: int = 0, **kwargs):
        super().__init__(checkpoint, rx_endpoints, control_endpoint, **kwargs)
        model = load(checkpoint)
        prepare(model, rank=rank, alpha=alpha, seed=seed)
        self.server = model.server.train()
        self.half = ServerHalf(self.server, adamw(lr))

    def _decode(self, frame) -> tuple[np.ndarray, float, float]:
        """The server half with the graph kept; its forward is timed as one (``jsc_decoder_ms``)."""
        h = frame.header
        rates = self.server.cfg.rate_table
        t0 = time.monotonic()
        out = self.half.forward((h.session_id, h.seq), frame.payload, frame.noise_var, h.rate_idx,
                                h.payload_len // rates[h.rate_idx], h.task_id, payload_snr_db(frame.noise_var))
        self.stats["train_kept_dropped"] = self.half.dropped
        return out, time.monotonic() - t0, 0.0

    def _on_message(self, msg) -> None:
        if msg.kind != protocol.GRADIENTS:
            super()._on_message(msg)
            return
        session, seqs = msg.session, msg.meta.get("seqs")
        if session not in self.sessions or not isinstance(seqs, list) or \
                not all(isinstance(s, int) and not isinstance(s, bool) for s in seqs):
            self.stats["train_gradients_refused"] += 1
            log.warning("gradients from session %d dropped: no hello, or no list of seqs", session)
            return
        if not seqs:
            self.half.discard([k for k in self.half.kept if k[0] == session])
            self.stats["train_batches_given_up"] += 1
            return
        keys = [(session, s) for s in seqs]
        try:
            grads = self.half.backward(keys, np.asarray(msg.tensors.get("grads"), np.float32))
        except Exception as exc:                          # noqa: BLE001 - one bad batch must not stop the station
            self.stats["train_gradients_refused"] += 1
            log.warning("gradients of session %d not used: %s", session, exc)
            self._reply(msg, protocol.PAYLOAD_GRADIENTS, {"seqs": seqs, "error": f"{type(exc).__name__}: {exc}"})
            return
        self.stats["train_steps"] += 1
        self.stats["train_forwards_recomputed"] = self.half.recomputed
        try:
            self.control.reply(msg, protocol.PAYLOAD_GRADIENTS,
                               {"grads": np.concatenate(grads) if grads else np.zeros(0, np.complex64)},
                               {"seqs": seqs, "lengths": [int(g.shape[0]) for g in grads]})
        except (ConnectionError, TimeoutError) as exc:
            self.stats["control_reply_failed"] += 1
            log.warning("payload gradients to session %d not sent: %s", session, exc)


#: options of ``mtsc-sdr bs`` the training station does not implement: refused, not ignored
_NOT_FOR_TRAINING = {"capture": "--capture", "capture_info": "--capture-info", "kb": "--kb"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from mtsc_sdr.runtime.bs import add_arguments as bs_arguments

    bs_arguments(p)
    p.add_argument("--lr", type=float, default=SERVER_LR, help="the server half's AdamW learning rate")
    p.add_argument("--adapter-rank", type=int, default=8, help="LoRA rank of adapters made for fine-tuning")
    p.add_argument("--adapter-alpha", type=float, default=16.0)
    p.add_argument("--seed", type=int, default=0, help="seed of adapters made for fine-tuning")


def run(args: argparse.Namespace) -> int:
    from mtsc_sdr.model.checkpoint import shipped_model_dir

    given = [flag for name, flag in _NOT_FOR_TRAINING.items() if getattr(args, name, None) is not None]
    if given:
        raise ConfigError(given[0].lstrip("-"), "the fine-tuning base station does not record captures or read "
                                                "knowledge bases; run `mtsc-sdr bs` for that")
    try:
        security = security_for(args)           # a refused --control fails before the model loads
    except (ValueError, OSError) as exc:
        print(f"finetune station: {exc}", file=sys.stderr)
        return 2
    checkpoint = args.checkpoint or str(shipped_model_dir())
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    bs = TrainingBaseStation(checkpoint, args.rx, args.control, lr=args.lr, rank=args.adapter_rank,
                             alpha=args.adapter_alpha, seed=args.seed, sample_rate_hz=args.sample_rate_hz,
                             threads=args.threads, security=security)
    print(f"finetune station: training the server half of {checkpoint} on {args.control}", file=sys.stderr,
          flush=True)
    return serve_until_stopped(bs, args)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mtsc_sdr.finetune.station", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
