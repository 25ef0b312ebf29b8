"""The Flower ClientApp of federated split fine-tuning: one client's train and evaluate rounds.

Flower runs it in the simulation engine (a Ray actor per virtual client) or under a SuperNode
(a ``flwr-clientapp`` process per message). It knows nothing of transport; the task module
(``run_config["task-module"]``, default :mod:`mtsc_sdr.finetune.task`) does the work:

* **train** (``MessageType.TRAIN``): build the model (``task.build_model(run_config)``), load the
  global arrays into it (``task.load_trainable_state``), ``n, metrics = task.local_train(model,
  run_config, partition_id, num_partitions)``, reply with ``task.trainable_state(model)``;
* **evaluate**: the same with ``task.evaluate``, replying with metrics only.

A task with ``personal_state(model)`` / ``load_personal_state(model, state)`` (the client's own
task decoders) keeps that state in the node's ``context.state`` (Flower keeps it per node across
rounds, in the simulation engine and under a SuperNode): loaded before each train and evaluate,
saved after each train, never sent.

Incoming message (from :class:`~.strategy.CheckedFedAvg`): ``"arrays"``: ArrayRecord of the
global trainable state (float32 arrays by state-dict key), ``"config"``: ConfigRecord with
``server-round`` (and whatever the server adds); its entries are merged over the run config the
task sees. Reply: ``"arrays"`` (train only): ArrayRecord of the client's trainable state;
``"metrics"``: MetricRecord of the task's metrics plus ``num-examples`` (int, the aggregation
weight); ``"client"``: ConfigRecord ``{"partition-id": int}`` (for the report).

``partition-id`` and ``num-partitions`` come from ``context.node_config``: the simulation engine
sets them for each virtual client; a SuperNode takes them from ``--node-config 'partition-id=0
num-partitions=4'``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from .runconfig import load_task, resolve
from .strategy import CLIENT_INFO_KEY, decode, encode


def make_client_app(run_config: dict[str, Any] | None = None) -> ClientApp:
    """A ClientApp whose run configuration is ``run_config`` under Flower's ``context.run_config``
    (:func:`.runconfig.resolve`)."""
    app = ClientApp()
    baked = dict(run_config or {})

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        return _handle(msg, context, baked, training=True)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return _handle(msg, context, baked, training=False)

    return app


def _handle(msg: Message, context: Context, baked: dict[str, Any], *, training: bool) -> Message:
    config = resolve(baked, context.run_config)
    sent = msg.content.config_records.get("config")
    if sent is not None:
        config.update(dict(sent))
    partition_id, num_partitions = partition(context)
    task = load_task(config)
    model = task.build_model(config)
    task.load_trainable_state(model, decode(_arrays(msg)))
    personal = hasattr(task, "personal_state")
    if personal and PERSONAL_KEY in context.state.array_records:
        task.load_personal_state(model, decode(context.state.array_records[PERSONAL_KEY]))
    if training:
        n, metrics = task.local_train(model, config, partition_id, num_partitions)
        if personal:                         # kept on this node for its next rounds, never sent
            context.state.array_records[PERSONAL_KEY] = encode(task.personal_state(model))
    else:
        n, metrics = task.evaluate(model, config, partition_id, num_partitions)
    content = RecordDict({
        "metrics": _metric_record(n, metrics),
        CLIENT_INFO_KEY: ConfigRecord({"partition-id": partition_id}),
    })
    if training:
        content["arrays"] = encode({k: np.asarray(v) for k, v in task.trainable_state(model).items()})
    return Message(content, reply_to=msg)


#: Where a node keeps its personal state (the task's ``personal_state``) between rounds.
PERSONAL_KEY = "personal"


def partition(context: Context) -> tuple[int, int]:
    """``(partition_id, num_partitions)`` from the node config.

    Raises:
        ValueError: either is missing, or the id is outside ``[0, num_partitions)``.
    """
    node = context.node_config
    try:
        partition_id, num_partitions = int(node["partition-id"]), int(node["num-partitions"])
    except KeyError as exc:
        raise ValueError(f"node config has no {exc.args[0]!r}: start the SuperNode with "
                         "--node-config 'partition-id=<i> num-partitions=<n>'") from None
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition-id {partition_id} is outside [0, {num_partitions})")
    return partition_id, num_partitions


def _arrays(msg: Message) -> ArrayRecord:
    records = msg.content.array_records
    if "arrays" in records:
        return records["arrays"]
    if len(records) == 1:
        return next(iter(records.values()))
    raise ValueError(f"expected the global state as ArrayRecord 'arrays', got {sorted(records)}")


def _metric_record(num_examples: int, metrics: dict[str, float]) -> MetricRecord:
    """The task's metrics (numbers as float, ints kept) plus ``num-examples`` (int)."""
    record = MetricRecord({k: (int(v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                               else float(v)) for k, v in metrics.items()})
    record["num-examples"] = int(num_examples)
    return record


#: The app Flower loads: ``mtsc_sdr.finetune.client_app:app`` (run config from Flower alone).
app = make_client_app()

__all__ = ["app", "make_client_app", "partition"]
