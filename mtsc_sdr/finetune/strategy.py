"""FedAvg that checks every client reply before it counts (Flower 1.42 Message API).

:class:`CheckedFedAvg` is Flower's message-based :class:`flwr.serverapp.strategy.FedAvg` (same
sampling, same messages, same ``start`` loop) with its aggregation replaced. Each train reply is
checked on its own:

* exactly one ArrayRecord and one MetricRecord;
* the ArrayRecord's keys are the global model's keys (none missing, none extra);
* every array has the global array's shape and dtype (in its metadata and once decoded; it is
  decoded with ``allow_pickle=False``) and only finite values;
* the update's L2 norm ``||w_client - w_global||`` over all arrays is at most ``max_update_norm``;
* the MetricRecord's ``num-examples`` is an int in ``[1, max_examples]`` and every metric is
  finite.

A reply that fails one check is **rejected**: one log line names the node and the reason, and it
is left out of the average; the round goes on with the others. FedAvg's own
``validate_message_reply_consistency`` raises (and so ends the whole run) when one reply differs
from the rest; it is never called here: :meth:`CheckedFedAvg.aggregate_train` and
:meth:`~CheckedFedAvg.aggregate_evaluate` do not call FedAvg's, and they average only the replies
that passed. When none passes, the global arrays stay as they were.

The aggregate is the example-weighted mean ``w = sum_k n_k w_k / sum_k n_k`` of the accepted
replies, computed in float64 and stored in the global arrays' dtype.

**LoRA.** Averaging the factors A and B of an adapter separately is not averaging its update
``B A``. The fine-tuning uses FFA-LoRA (:mod:`mtsc_sdr.finetune.adapters`): every client's
``lora_A`` is frozen at the same values and never travels; what travels (the ``lora_B`` matrices
and the other shared trainable tensors) enters the model linearly, so the weighted mean of what
travels is exactly the weighted mean of the clients' updates.

Per round the strategy records (:attr:`CheckedFedAvg.rounds`, :class:`RoundRecord`) which sampled
nodes were **accepted**, **rejected** (with the reason) and **absent** (sampled, but no reply in
time, or an error reply instead of content: the reason says which), each client's metrics, example
count and update norm, and the bytes of model state sent down and received up, so a report can
show them (:meth:`RoundRecord.as_dict`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

log = logging.getLogger("mtsc_sdr.finetune.strategy")

#: The reply's ConfigRecord (optional) that names the client: ``{"partition-id": int}``.
CLIENT_INFO_KEY = "client"


class Rejected(ValueError):
    """A reply that fails a check; the message is the reason the log line and report give."""


@dataclass
class ClientOutcome:
    """What became of one sampled node's reply in one phase of one round.

    ``status``: ``"accepted"``, ``"rejected"`` or ``"absent"``; ``reason``: why it was rejected
    or absent ("" when accepted); ``num_examples`` and ``metrics`` as the client reported them
    (accepted replies only); ``update_norm``: ``||w_client - w_global||_2`` (train, accepted);
    ``bytes_up``: bytes of the ArrayRecords it sent, accepted or not (Flower's ``count_bytes``:
    array data with its .npy headers, and the keys).
    """

    node_id: int
    status: str
    reason: str = ""
    partition_id: int | None = None
    num_examples: int | None = None
    metrics: dict[str, float | int] = field(default_factory=dict)
    update_norm: float | None = None
    bytes_up: int = 0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"node_id": self.node_id, "status": self.status}
        if self.reason:
            out["reason"] = self.reason
        for key in ("partition_id", "num_examples", "update_norm"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.metrics:
            out["metrics"] = dict(self.metrics)
        out["bytes_up"] = self.bytes_up
        return out


@dataclass
class PhaseRecord:
    """One phase (``"train"`` or ``"evaluate"``) of one round: the sampled nodes, each one's
    :class:`ClientOutcome`, the aggregated metrics, and bytes of model state down (the global
    ArrayRecord times the sampled nodes) and up (sum of the replies' ArrayRecords)."""

    sampled: list[int] = field(default_factory=list)
    outcomes: dict[int, ClientOutcome] = field(default_factory=dict)
    aggregated: dict[str, float] = field(default_factory=dict)
    bytes_down: int = 0
    global_changed: bool = False
    wall_s: float = 0.0

    def nodes(self, status: str) -> list[int]:
        return [n for n, o in self.outcomes.items() if o.status == status]

    @property
    def accepted(self) -> list[int]:
        return self.nodes("accepted")

    @property
    def rejected(self) -> dict[int, str]:
        return {n: o.reason for n, o in self.outcomes.items() if o.status == "rejected"}

    @property
    def absent(self) -> dict[int, str]:
        return {n: o.reason for n, o in self.outcomes.items() if o.status == "absent"}

    @property
    def bytes_up(self) -> int:
        return sum(o.bytes_up for o in self.outcomes.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "sampled": list(self.sampled),
            "accepted": self.accepted,
            "rejected": [{"node_id": n, "reason": r} for n, r in self.rejected.items()],
            "absent": [{"node_id": n, "reason": r} for n, r in self.absent.items()],
            "clients": [o.as_dict() for o in self.outcomes.values()],
            "aggregated_metrics": dict(self.aggregated),
            "global_changed": self.global_changed,
            "bytes_down": self.bytes_down,
            "bytes_up": self.bytes_up,
            "wall_s": self.wall_s,
        }


@dataclass
class RoundRecord:
    """One federated round: its train and evaluate phases (:class:`PhaseRecord`)."""

    round: int
    train: PhaseRecord = field(default_factory=PhaseRecord)
    evaluate: PhaseRecord = field(default_factory=PhaseRecord)

    def as_dict(self) -> dict[str, Any]:
        return {"round": self.round, "train": self.train.as_dict(), "evaluate": self.evaluate.as_dict(),
                "bytes_model_updates": {"down": self.train.bytes_down + self.evaluate.bytes_down,
                                        "up": self.train.bytes_up + self.evaluate.bytes_up}}


def decode(record: ArrayRecord) -> dict[str, np.ndarray]:
    """The arrays of ``record`` as numpy, by key (``np.load`` with ``allow_pickle=False``)."""
    return {key: array.numpy() for key, array in record.items()}


def encode(state: dict[str, np.ndarray]) -> ArrayRecord:
    """An ArrayRecord of ``state`` (keys in its order; each array made C-contiguous)."""
    return ArrayRecord({key: Array(np.ascontiguousarray(value)) for key, value in state.items()})


class CheckedFedAvg(FedAvg):
    """FedAvg whose aggregation leaves out, and logs, every reply that fails a check (see the
    module docstring).

    Args:
        max_update_norm: bound on ``||w_client - w_global||_2`` over all arrays (same units as the
            weights); ``math.inf`` disables it.
        max_examples: the largest ``num-examples`` a reply may report.
        **fedavg: FedAvg's arguments (``fraction_train``, ``min_available_nodes``, ...);
            ``weighted_by_key`` names the example count (default ``"num-examples"``).

    Attributes:
        rounds: one :class:`RoundRecord` per round started, in order.
        global_arrays: the current global ArrayRecord (None before :meth:`set_global_arrays` or the
            first ``configure_train``).
    """

    def __init__(self, *, max_update_norm: float = math.inf, max_examples: int = 1_000_000,
                 **fedavg: Any) -> None:
        super().__init__(**fedavg)
        if not max_update_norm > 0:
            raise ValueError(f"max_update_norm must be > 0, got {max_update_norm}")
        if max_examples < 1:
            raise ValueError(f"max_examples must be >= 1, got {max_examples}")
        self.max_update_norm = float(max_update_norm)
        self.max_examples = int(max_examples)
        self.rounds: list[RoundRecord] = []
        self.global_arrays: ArrayRecord | None = None
        self._global: dict[str, np.ndarray] = {}
        self._phase_started = 0.0

    # -- state -----------------------------------------------------------------------------

    def set_global_arrays(self, arrays: ArrayRecord) -> None:
        """Make ``arrays`` the global state replies are checked against and averaged into."""
        self.global_arrays = arrays
        self._global = decode(arrays)

    @property
    def global_state(self) -> dict[str, np.ndarray]:
        """The current global arrays as numpy, by key."""
        return dict(self._global)

    def _round(self, server_round: int) -> RoundRecord:
        if not self.rounds or self.rounds[-1].round != server_round:
            self.rounds.append(RoundRecord(server_round))
        return self.rounds[-1]

    # -- configure: remember what was sent to whom -------------------------------------------

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self.set_global_arrays(arrays)
        messages = list(super().configure_train(server_round, arrays, config, grid))
        self._sent(self._round(server_round).train, messages, arrays)
        return messages

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        messages = list(super().configure_evaluate(server_round, arrays, config, grid))
        self._sent(self._round(server_round).evaluate, messages, arrays)
        return messages

    def _sent(self, phase: PhaseRecord, messages: list[Message], arrays: ArrayRecord) -> None:
        phase.sampled = [m.metadata.dst_node_id for m in messages]
        phase.bytes_down = arrays.count_bytes() * len(messages)
        self._phase_started = time.monotonic()

    # -- aggregate ---------------------------------------------------------------------------

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """The weighted mean of the replies that pass every check, and their weighted metrics;
        ``(None, None)`` (global state unchanged) when none passes."""
        phase = self._round(server_round).train
        good = self._sort_replies(server_round, "train", phase, replies, self._check_train)
        arrays = metrics = None
        if good:
            weights = np.array([n for _, n, _ in good], np.float64) / sum(n for _, n, _ in good)
            new_state = {}
            for key, old in self._global.items():
                total = np.zeros(old.shape, np.float64)
                for (state, _, _), weight in zip(good, weights):
                    total += weight * state[key]
                new_state[key] = total.astype(old.dtype)
            arrays = encode(new_state)
            self.set_global_arrays(arrays)
            metrics = _weighted_metrics([(n, m) for _, n, m in good])
            phase.aggregated = dict(metrics)
            phase.global_changed = True
        else:
            log.warning("round %d: no train reply accepted; the global model stays unchanged", server_round)
        phase.wall_s = time.monotonic() - self._phase_started
        return arrays, metrics

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """The weighted metrics of the evaluate replies that pass the metric checks, or None."""
        phase = self._round(server_round).evaluate
        good = self._sort_replies(server_round, "evaluate", phase, replies, self._check_evaluate)
        metrics = _weighted_metrics([(n, m) for _, n, m in good]) if good else None
        if metrics is not None:
            phase.aggregated = dict(metrics)
        phase.wall_s = time.monotonic() - self._phase_started
        return metrics

    def _sort_replies(self, server_round: int, what: str, phase: PhaseRecord, replies: Iterable[Message],
                      check) -> list[tuple[dict[str, np.ndarray], int, MetricRecord]]:
        """Fill ``phase.outcomes`` from ``replies`` (accepted / rejected / absent) and return the
        accepted ones as ``(arrays, num_examples, metrics)``."""
        sampled = set(phase.sampled)
        good = []
        for msg in replies:
            node = int(msg.metadata.src_node_id)
            if msg.has_error():
                phase.outcomes[node] = ClientOutcome(node, "absent", f"error reply: {msg.error.reason}")
                log.warning("round %d: %s: node %d sent an error instead of a result: %s",
                            server_round, what, node, msg.error.reason)
                continue
            outcome = ClientOutcome(node, "accepted", partition_id=_partition_id(msg),
                                    bytes_up=sum(r.count_bytes() for r in msg.content.array_records.values()))
            try:
                if sampled and node not in sampled:
                    raise Rejected("it was not sampled this round")
                if node in phase.outcomes:
                    raise Rejected("a second reply in one round")
                if msg.metadata.message_type != _message_type(what):
                    raise Rejected(f"message type {msg.metadata.message_type!r}, expected {_message_type(what)!r}")
                state, n, metrics, norm = check(msg)
            except Rejected as exc:
                outcome.status, outcome.reason = "rejected", str(exc)
                phase.outcomes.setdefault(node, outcome)
                log.warning("round %d: %s: rejected the reply of node %d: %s", server_round, what, node, exc)
                continue
            outcome.num_examples, outcome.update_norm = n, norm
            outcome.metrics = {k: v for k, v in metrics.items() if k != self.weighted_by_key}
            phase.outcomes[node] = outcome
            good.append((state, n, metrics))
        for node in phase.sampled:
            if node not in phase.outcomes:
                phase.outcomes[node] = ClientOutcome(node, "absent", "no reply")
                log.warning("round %d: %s: no reply from node %d", server_round, what, node)
        return good

    # -- checks ------------------------------------------------------------------------------

    def _check_train(self, msg: Message):
        """``(arrays, num_examples, metrics, update_norm)`` of a train reply, or
        :class:`Rejected` with the reason."""
        content = msg.content
        if not self._global:
            raise Rejected("no global state to compare with")
        if len(content.array_records) != 1:
            raise Rejected(f"{len(content.array_records)} ArrayRecords, expected 1")
        n, metrics = self._check_metrics(msg)
        state = self._check_arrays(next(iter(content.array_records.values())))
        norm = math.sqrt(sum(float(np.sum((state[k].astype(np.float64) - g) ** 2)) for k, g in self._global.items()))
        if not norm <= self.max_update_norm:
            raise Rejected(f"update norm {norm:.4g} exceeds the bound {self.max_update_norm:.4g}")
        return state, n, metrics, norm

    def _check_evaluate(self, msg: Message):
        n, metrics = self._check_metrics(msg)
        return None, n, metrics, None

    def _check_metrics(self, msg: Message) -> tuple[int, MetricRecord]:
        records = msg.content.metric_records
        if len(records) != 1:
            raise Rejected(f"{len(records)} MetricRecords, expected 1")
        metrics = next(iter(records.values()))
        key = self.weighted_by_key
        if key not in metrics:
            raise Rejected(f"no {key!r} in its metrics")
        n = metrics[key]
        if isinstance(n, bool) or not isinstance(n, int):
            raise Rejected(f"{key!r} is {n!r} ({type(n).__name__}), not an int")
        if not 1 <= n <= self.max_examples:
            raise Rejected(f"{key!r} is {n}, outside [1, {self.max_examples}]")
        for name, value in metrics.items():
            values = value if isinstance(value, list) else [value]
            if not all(_finite(v) for v in values):
                raise Rejected(f"metric {name!r} is not a finite number")
        return n, metrics

    def _check_arrays(self, record: ArrayRecord) -> dict[str, np.ndarray]:
        missing = sorted(set(self._global) - set(record))
        extra = sorted(set(record) - set(self._global))
        if missing:
            raise Rejected(f"missing key(s) {_names(missing)}")
        if extra:
            raise Rejected(f"unexpected key(s) {_names(extra)}")
        state = {}
        for key, expected in self._global.items():
            array = record[key]
            if tuple(array.shape) != expected.shape or array.dtype != str(expected.dtype):
                raise Rejected(f"{key!r} is {array.dtype} {tuple(array.shape)}, "
                               f"expected {expected.dtype} {expected.shape}")
            try:
                value = array.numpy()
            except Exception as exc:  # noqa: BLE001 - any decoding failure is the client's fault
                raise Rejected(f"{key!r} cannot be decoded: {exc}") from None
            if value.shape != expected.shape or value.dtype != expected.dtype:
                raise Rejected(f"{key!r} decodes to {value.dtype} {value.shape}, "
                               f"expected {expected.dtype} {expected.shape}")
            if not np.all(np.isfinite(value)):
                raise Rejected(f"{key!r} has non-finite values")
            state[key] = value
        return state


def _weighted_metrics(replies: list[tuple[int, MetricRecord]], weight_key: str = "num-examples") -> MetricRecord:
    """Example-weighted mean of every scalar metric, over the replies that report it (lists and
    the weight itself are left out); ``num-examples`` becomes the total."""
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    for n, metrics in replies:
        for key, value in metrics.items():
            if key == weight_key or isinstance(value, list):
                continue
            sums[key] = sums.get(key, 0.0) + n * float(value)
            weights[key] = weights.get(key, 0.0) + n
    out = MetricRecord({key: sums[key] / weights[key] for key in sums})
    out[weight_key] = int(sum(n for n, _ in replies))
    return out


def _finite(value: float | int) -> bool:
    """Whether a metric value is a finite number (an int beyond a float's range is not: the mean
    could not be taken)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _partition_id(msg: Message) -> int | None:
    info = msg.content.config_records.get(CLIENT_INFO_KEY)
    value = info.get("partition-id") if info is not None else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _message_type(what: str) -> str:
    return MessageType.TRAIN if what == "train" else MessageType.EVALUATE


def _names(keys: list[str], most: int = 3) -> str:
    shown = ", ".join(repr(k) for k in keys[:most])
    return shown + (f" and {len(keys) - most} more" if len(keys) > most else "")


__all__ = ["CLIENT_INFO_KEY", "CheckedFedAvg", "ClientOutcome", "PhaseRecord", "Rejected", "RoundRecord",
           "decode", "encode"]
