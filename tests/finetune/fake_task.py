"""A tiny task module for the Flower app tests (the interface of ``mtsc_sdr.finetune.task``).

The "model" is two float32 arrays; "training" on partition ``p`` adds ``step(p) = 0.5 * (p + 1)``
to every element and reports ``examples(p) = 10 * (p + 1)`` examples, so one round of FedAvg from
state ``w`` gives exactly ``w + sum_p examples(p) step(p) / sum_p examples(p)``.

Run-config knobs for misbehaving clients: ``fake-poison-partition`` (int, -1 = none) sends, per
``fake-poison`` (``"nan"``, ``"shape"``, ``"norm"``), a NaN, a reshaped or a huge update;
``fake-fail-partition`` raises in training (the client drops out of the round).

Personal state: a counter of the rounds this client trained, kept by the node (never sent) and
reported as the metric ``personal-rounds``.
"""

from __future__ import annotations

import numpy as np

SHAPES = {"enc.lora_B": (4, 2), "jsc.weight": (3,)}


class FakeModel:
    def __init__(self) -> None:
        self.state = {k: np.zeros(s, np.float32) for k, s in SHAPES.items()}
        self.personal = {"decoder.rounds": np.zeros(1, np.float32)}


def personal_state(model: FakeModel) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in model.personal.items()}


def load_personal_state(model: FakeModel, state: dict[str, np.ndarray]) -> None:
    model.personal = {k: np.asarray(v, np.float32).copy() for k, v in state.items()}


def step(partition_id: int) -> float:
    return 0.5 * (partition_id + 1)


def examples(partition_id: int) -> int:
    return 10 * (partition_id + 1)


def expected_after_round(state: dict[str, np.ndarray], partitions) -> dict[str, np.ndarray]:
    """The global state after one round in which ``partitions`` were averaged."""
    shift = sum(examples(p) * step(p) for p in partitions) / sum(examples(p) for p in partitions)
    return {k: (v.astype(np.float64) + shift).astype(np.float32) for k, v in state.items()}


def build_model(run_config: dict) -> FakeModel:
    return FakeModel()


def trainable_state(model: FakeModel) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in model.state.items()}


def load_trainable_state(model: FakeModel, state: dict[str, np.ndarray]) -> None:
    for key in set(SHAPES) | set(state):
        if key not in SHAPES or key not in state or np.shape(state[key]) != SHAPES[key]:
            raise ValueError(f"state does not fit the fake model at {key!r}")
    model.state = {k: np.asarray(state[k], np.float32).copy() for k in SHAPES}


def local_train(model: FakeModel, run_config: dict, partition_id: int, num_partitions: int):
    if partition_id == int(run_config.get("fake-fail-partition", -1)):
        raise RuntimeError(f"partition {partition_id} dropped out")
    model.state = {k: v + np.float32(step(partition_id)) for k, v in model.state.items()}
    model.personal["decoder.rounds"] += 1
    if partition_id == int(run_config.get("fake-poison-partition", -1)):
        poison = run_config.get("fake-poison", "nan")
        key = "jsc.weight"
        if poison == "nan":
            model.state[key][0] = np.nan
        elif poison == "shape":
            model.state[key] = np.zeros(5, np.float32)
        elif poison == "norm":
            model.state[key] = model.state[key] + np.float32(1e6)
    return examples(partition_id), {"loss": 1.0 / (partition_id + 1), "server-round": int(run_config.get("server-round", 0)),
                                    "personal-rounds": float(model.personal["decoder.rounds"][0])}


def evaluate(model: FakeModel, run_config: dict, partition_id: int, num_partitions: int):
    return 5, {"mean": float(np.mean(model.state["jsc.weight"]))}
