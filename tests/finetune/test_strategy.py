"""CheckedFedAvg: a bad reply is rejected, logged and left out; the rest are averaged exactly; with
none left the global state stays. Messages are built directly (no network)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.app import (  # noqa: E402
    Array, ArrayRecord, ConfigRecord, Error, Message, MessageType, MetricRecord, RecordDict)

from mtsc_sdr.finetune.strategy import CheckedFedAvg, decode, encode  # noqa: E402

GLOBAL = {"a.lora_B": np.zeros((3, 2), np.float32), "b.weight": np.ones(4, np.float32)}
NODES = [11, 22, 33]


@pytest.fixture(autouse=True)
def task_identity():
    """Outside a run Flower's Message needs the process's task identity (set by its runtimes);
    set one for the test and put back what was there."""
    from flwr.supercore.task_identity import TaskIdentity

    saved = TaskIdentity._run_id, TaskIdentity._task_id, TaskIdentity._node_id
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 1
    yield
    TaskIdentity._run_id, TaskIdentity._task_id, TaskIdentity._node_id = saved


class FakeGrid:
    """What FedAvg's sampling asks of a Grid: the connected nodes."""

    def get_node_ids(self):
        return list(NODES)


def shifted(delta: float) -> dict[str, np.ndarray]:
    return {k: v + np.float32(delta) for k, v in GLOBAL.items()}


def reply(msg: Message, state: dict[str, np.ndarray] | None, n=10, **metrics) -> Message:
    content = RecordDict({"metrics": MetricRecord({"num-examples": n, "loss": 0.5, **metrics})})
    if state is not None:
        content["arrays"] = ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in state.items()})
    return Message(content, reply_to=msg)


def sent(strategy: CheckedFedAvg, server_round: int = 1) -> dict[int, Message]:
    """The round's train messages, by destination node."""
    messages = strategy.configure_train(server_round, encode(GLOBAL), ConfigRecord(), FakeGrid())
    return {m.metadata.dst_node_id: m for m in messages}


def make_strategy(max_update_norm: float = 50.0) -> CheckedFedAvg:
    """Norm bound 50: a shift of every one of the 10 elements by d has norm d * sqrt(10)."""
    return CheckedFedAvg(min_available_nodes=3, min_train_nodes=3, min_evaluate_nodes=3,
                         max_update_norm=max_update_norm, max_examples=1000)


def expected(goods: list[tuple[float, int]]) -> dict[str, np.ndarray]:
    total = sum(n for _, n in goods)
    shift = sum(d * n for d, n in goods) / total
    return {k: (v.astype(np.float64) + shift).astype(np.float32) for k, v in GLOBAL.items()}


def poisoned(kind: str) -> tuple[dict | None, object]:
    """(state, num-examples) of a bad reply of ``kind``."""
    state = shifted(0.25)
    n: object = 7
    if kind == "nan":
        state["b.weight"][2] = np.nan
    elif kind == "inf":
        state["a.lora_B"][0, 0] = np.inf
    elif kind == "wrong shape":
        state["b.weight"] = np.ones(5, np.float32)
    elif kind == "wrong dtype":
        state["b.weight"] = state["b.weight"].astype(np.float64)
    elif kind == "missing key":
        del state["a.lora_B"]
    elif kind == "extra key":
        state["c.lora_A"] = np.zeros(2, np.float32)
    elif kind == "huge norm":
        state["b.weight"] = state["b.weight"] + np.float32(1e4)
    elif kind == "zero count":
        n = 0
    elif kind == "negative count":
        n = -5
    elif kind == "float count":
        n = 7.0
    elif kind == "count above bound":
        n = 10**6
    elif kind == "no arrays":
        state = None
    return state, n


BAD = ["nan", "inf", "wrong shape", "wrong dtype", "missing key", "extra key", "huge norm", "zero count",
       "negative count", "float count", "count above bound", "no arrays"]
REASON = {"nan": "non-finite", "inf": "non-finite", "wrong shape": "expected float32 (4,)",
          "wrong dtype": "expected float32", "missing key": "missing key", "extra key": "unexpected key",
          "huge norm": "update norm", "zero count": "outside", "negative count": "outside",
          "float count": "not an int", "count above bound": "outside", "no arrays": "0 ArrayRecords"}


@pytest.mark.parametrize("kind", BAD)
def test_a_bad_reply_is_rejected_and_the_rest_averaged(kind, caplog):
    strategy = make_strategy()
    msgs = sent(strategy)
    state, n = poisoned(kind)
    replies = [reply(msgs[11], shifted(1.0), n=10), reply(msgs[22], shifted(3.0), n=30), reply(msgs[33], state, n=n)]
    with caplog.at_level(logging.WARNING, logger="mtsc_sdr.finetune.strategy"):
        arrays, metrics = strategy.aggregate_train(1, replies)

    want = expected([(1.0, 10), (3.0, 30)])
    got = decode(arrays)
    assert list(got) == list(GLOBAL)
    for key in GLOBAL:
        assert got[key].dtype == np.float32 and got[key].shape == GLOBAL[key].shape
        np.testing.assert_array_equal(got[key], want[key])
    assert strategy.global_state.keys() == GLOBAL.keys()
    np.testing.assert_array_equal(strategy.global_state["b.weight"], want["b.weight"])
    assert metrics["num-examples"] == 40 and metrics["loss"] == pytest.approx(0.5)

    phase = strategy.rounds[-1].train
    assert phase.accepted == [11, 22] and list(phase.rejected) == [33] and phase.absent == {}
    assert REASON[kind] in phase.rejected[33]
    # what a rejected client sent still counts as bytes up
    assert phase.outcomes[33].bytes_up == (0 if state is None else encode(state).count_bytes())
    lines = [r.getMessage() for r in caplog.records if "node 33" in r.getMessage()]
    assert len(lines) == 1 and REASON[kind] in lines[0]


def test_all_bad_leaves_the_global_state_unchanged():
    strategy = make_strategy()
    msgs = sent(strategy)
    replies = [reply(msgs[node], *poisoned(kind)) for node, kind in zip(NODES, ["nan", "huge norm", "extra key"])]
    arrays, metrics = strategy.aggregate_train(1, replies)
    assert arrays is None and metrics is None
    for key, value in GLOBAL.items():
        np.testing.assert_array_equal(strategy.global_state[key], value)
    phase = strategy.rounds[-1].train
    assert phase.accepted == [] and sorted(phase.rejected) == NODES and not phase.global_changed


def test_a_silent_node_and_an_error_reply_are_absent():
    strategy = make_strategy()
    msgs = sent(strategy)
    failed = Message(Error(code=0, reason="ClientApp raised RuntimeError"), reply_to=msgs[22])
    arrays, _ = strategy.aggregate_train(1, [reply(msgs[11], shifted(2.0), n=5), failed])
    np.testing.assert_array_equal(decode(arrays)["a.lora_B"], expected([(2.0, 5)])["a.lora_B"])
    phase = strategy.rounds[-1].train
    assert phase.accepted == [11]
    assert phase.absent == {22: "error reply: ClientApp raised RuntimeError", 33: "no reply"}
    assert sorted(phase.sampled) == NODES


def test_replies_that_fedavg_would_call_inconsistent_still_aggregate():
    """FedAvg's consistency check raises when metric keys differ between replies; here they count."""
    strategy = make_strategy()
    msgs = sent(strategy)
    replies = [reply(msgs[11], shifted(1.0), n=10, accuracy=0.5), reply(msgs[22], shifted(2.0), n=10),
               reply(msgs[33], shifted(4.0), n=20, bleu=3.0)]
    arrays, metrics = strategy.aggregate_train(1, replies)
    np.testing.assert_array_equal(decode(arrays)["b.weight"], expected([(1.0, 10), (2.0, 10), (4.0, 20)])["b.weight"])
    assert metrics["accuracy"] == pytest.approx(0.5) and metrics["bleu"] == pytest.approx(3.0)


def test_a_nonfinite_metric_and_an_unsampled_node_are_rejected():
    strategy = make_strategy()
    msgs = sent(strategy)
    stranger = reply(Message(RecordDict(), dst_node_id=99, message_type=MessageType.TRAIN), shifted(1.0))
    replies = [reply(msgs[11], shifted(1.0), n=10), reply(msgs[22], shifted(9.0), n=10, loss=float("nan")), stranger]
    arrays, _ = strategy.aggregate_train(1, replies)
    np.testing.assert_array_equal(decode(arrays)["b.weight"], expected([(1.0, 10)])["b.weight"])
    phase = strategy.rounds[-1].train
    assert "not a finite number" in phase.rejected[22] and "not sampled" in phase.rejected[99]
    assert phase.absent == {33: "no reply"}


def test_the_next_round_checks_against_the_new_global_state():
    strategy = make_strategy(max_update_norm=25.0)
    msgs = sent(strategy, 1)
    strategy.aggregate_train(1, [reply(msgs[n], shifted(6.0)) for n in NODES])
    # norm 12 sqrt(10) = 37.9 from the original state, 6 sqrt(10) = 19.0 from the new one
    msgs = {m.metadata.dst_node_id: m for m in strategy.configure_train(2, strategy.global_arrays, ConfigRecord(), FakeGrid())}
    arrays, _ = strategy.aggregate_train(2, [reply(msgs[n], shifted(12.0)) for n in NODES])
    np.testing.assert_array_equal(decode(arrays)["a.lora_B"], expected([(12.0, 1)])["a.lora_B"])
    assert [r.round for r in strategy.rounds] == [1, 2]


def test_evaluate_leaves_out_bad_metrics_and_the_record_is_json():
    strategy = make_strategy()
    msgs = {m.metadata.dst_node_id: m
            for m in strategy.configure_evaluate(1, encode(GLOBAL), ConfigRecord(), FakeGrid())}
    replies = [reply(msgs[11], None, n=10, accuracy=0.2), reply(msgs[22], None, n=30, accuracy=0.6),
               reply(msgs[33], None, n=0, accuracy=1.0)]
    metrics = strategy.aggregate_evaluate(1, replies)
    assert metrics["accuracy"] == pytest.approx(0.5) and metrics["num-examples"] == 40
    record = json.loads(json.dumps(strategy.rounds[-1].as_dict()))
    assert record["evaluate"]["accepted"] == [11, 22]
    assert record["evaluate"]["rejected"][0]["node_id"] == 33
    assert record["bytes_model_updates"]["down"] == 3 * encode(GLOBAL).count_bytes()


def test_bounds_must_be_positive():
    with pytest.raises(ValueError, match="max_update_norm"):
        CheckedFedAvg(max_update_norm=0.0)
    with pytest.raises(ValueError, match="max_examples"):
        CheckedFedAvg(max_examples=0)
