"""The task table (:mod:`mtsc_sdr.tasks`) and its seam: a toy task registered here alone -- a spec, a
decoder head for a new output kind, an example maker and a metric -- trains on the micro model,
evaluates through ``mtsc-sdr eval``'s code path and runs through the pipeline (client encode -> PHY
frame -> software channel -> PHY receive -> base station -> client decode) with the functions the
client and base-station processes use. Nothing else in the package is edited for it."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest

from mtsc_sdr import tasks

BUILT_IN = ("vqa", "caption_image", "caption_audio", "caption_video", "reconstruct")


def test_built_in_table_keeps_its_ids_and_order():
    assert tasks.names() == BUILT_IN
    assert [tasks.get(t).id for t in BUILT_IN] == [0, 1, 2, 3, 4]      # checkpoints and recordings carry them
    assert tasks.table_size() == 5 and tasks.by_id(4).name == "reconstruct"
    assert tasks.get("vqa").question and tasks.get("vqa").modalities == ("image", "text")
    assert [s.name for s in tasks.specs() if s.dense] == ["reconstruct"]
    assert {s.name: s.main_metric for s in tasks.specs()} == {
        "vqa": "accuracy", "caption_image": "cider", "caption_audio": "cider", "caption_video": "cider",
        "reconstruct": "psnr_db"}
    assert [s.name for s in tasks.specs() if s.no_baseline] == ["caption_audio", "caption_video"]


def test_registry_errors_name_what_exists():
    with pytest.raises(ValueError, match=r"unknown task 'nope'; tasks are \['vqa', 'caption_image'"):
        tasks.get("nope")
    with pytest.raises(ValueError, match="already registered"):
        tasks.register(tasks.TaskSpec("vqa", 9, "image", "text", ("bleu",), "bleu"))
    with pytest.raises(ValueError, match="id 1 of 'other' is taken by 'caption_image'"):
        tasks.register(tasks.TaskSpec("other", 1, "image", "text", ("bleu",), "bleu"))
    with pytest.raises(ValueError, match=r"TaskSpec.id: must be in 0\.\.15"):
        tasks.TaskSpec("other", 16, "image", "text", ("bleu",), "bleu")
    with pytest.raises(ValueError, match="TaskSpec.modality"):
        tasks.TaskSpec("other", 6, "smell", "text", ("bleu",), "bleu")
    with pytest.raises(ValueError, match="TaskSpec.main_metric"):
        tasks.TaskSpec("other", 6, "image", "text", ("bleu",), "cider")
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['x'\]"):
        tasks.check_names(["vqa", "x"])
    assert tasks.names() == BUILT_IN


# -- the toy task: which shape is the first object of a scene, as a label ------------------------------

TOY = "first_shape"


def _toy_pieces():
    """The four things a new task with a new output kind brings: spec, head, example maker, metric."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    from mtsc_sdr.data import TaskExample
    from mtsc_sdr.data.vocab import SHAPES
    from mtsc_sdr.data.world import indexed
    from mtsc_sdr.metrics import Metric
    from mtsc_sdr.model.heads import OutputHead

    spec = tasks.TaskSpec(TOY, 5, "image", "label", ("top1",), "top1")

    class LabelHead(OutputHead):
        """``label``: one of SHAPES from the mean of the task semantics (B, Q, d) -> logits (B, 3)."""

        attr = "label_decoder"

        def build(self, cfg, lam_encoder, tokenizer):
            return nn.Linear(cfg.d_model, len(SHAPES))

        def loss(self, client, spec, semantics, batch):
            target = torch.tensor([SHAPES.index(refs[0]) for refs in batch["references"]], device=client.device)
            return F.cross_entropy(client.label_decoder(semantics.mean(1)), target)

        def decode(self, client, spec, semantics, questions, max_len, contexts=None):
            return [SHAPES[int(i)] for i in client.label_decoder(semantics.mean(1)).argmax(-1)]

    def item(world, split, i, rng):
        s = world.scene(split, i)
        return TaskExample(f"{s.item_id}#shape", TOY, image=s.image, references=[s.objects[0].shape])

    def top1(hypotheses, references):
        return 100.0 * np.array([h == refs[0] for h, refs in zip(hypotheses, references)], dtype=float)

    return spec, LabelHead(), indexed(item), Metric("top1", "percent", per_item=top1)


@pytest.fixture(scope="module")
def toy_task():
    """The toy task registered for this module's tests, and unregistered afterwards (the rest of
    the suite sees the five built-in tasks)."""
    from mtsc_sdr.data import register_examples, unregister_examples
    from mtsc_sdr.metrics import register_metric, unregister_metric
    from mtsc_sdr.model.heads import register_head, unregister_head

    spec, head, maker, metric = _toy_pieces()
    tasks.register(spec)
    register_head(spec.output, head)
    register_examples(spec.name, maker)
    register_metric(metric)
    try:
        yield spec
    finally:
        unregister_metric(metric.name)
        unregister_examples(spec.name)
        unregister_head(spec.output)
        tasks.unregister(spec.name)
    assert tasks.names() == BUILT_IN


@pytest.fixture(scope="module")
def toy_checkpoint(toy_task, tmp_path_factory):
    """The micro model trained on VQA and the toy task together (a few steps)."""
    from mtsc_sdr.train.config import TrainConfig
    from mtsc_sdr.train.trainer import train

    out = tmp_path_factory.mktemp("toy") / "ck"
    cfg = TrainConfig.from_dict({"preset": "micro", "tokenizer_scenes": 40, "examples_per_task": 8,
                                 "tasks": ["vqa", TOY], "steps": 4, "batch_size": 2,
                                 "checkpoint_dir": str(out), "num_threads": 1})
    result = train(cfg, quiet=True)
    assert {task for _, task, _ in result.history} == {"vqa", TOY}
    assert all(np.isfinite(loss) for _, _, loss in result.history)
    return out


def test_toy_task_model_has_its_table_rows_and_decoder(toy_checkpoint):
    from mtsc_sdr.model import load

    model = load(toy_checkpoint)
    assert model.client.task_embed.shape[0] == 6 and model.server.task_queries.shape[0] == 6
    assert model.client.label_decoder.out_features == 3
    assert hasattr(model.client, "text_decoder") and hasattr(model.client, "image_decoder")


def test_toy_task_evaluates(toy_checkpoint):
    from mtsc_sdr.runtime.evaluate import evaluate

    report = evaluate(toy_checkpoint, [0.0, 20.0], tasks=(TOY,), n_per_task=3, split="val", threads=1)
    rows = report["rows"]
    mine = [r for r in rows if r["system"] == "mtsc"]
    assert [(r["snr_db"], r["metric"], r["unit"], r["n"]) for r in mine] == [(0.0, "top1", "percent", 3),
                                                                          (20.0, "top1", "percent", 3)]
    assert all(0.0 <= r["value"] <= 100.0 and "std_error" in r for r in mine)
    # an image-input task the baseline covers: the image goes over the separate link, our model reads it
    assert {(r["system"], r["metric"]) for r in rows if r["system"] == "separate"} == {
        ("separate", "top1"), ("separate", "delivery_rate")}
    assert report["meta"]["skipped"] == [] and len(report["meta"]["item_ids"][TOY]) == 3


def test_toy_task_runs_through_the_pipeline(toy_checkpoint):
    """Client encode -> PHY frame -> software channel -> PHY receive -> base station -> client
    decode -> result record -> report rows: the processes' own functions, in one process (a child
    process would not see a task registered in this test)."""
    from mtsc_sdr.channel.profile import ChannelProfile, build_channel
    from mtsc_sdr.compress.artifact import load_client
    from mtsc_sdr.data import examples
    from mtsc_sdr.link import MessageClient, free_tcp_endpoint
    from mtsc_sdr.phy.rx import Receiver
    from mtsc_sdr.phy.tx import Transmitter
    from mtsc_sdr.runtime import protocol
    from mtsc_sdr.runtime.bs import BaseStation
    from mtsc_sdr.runtime.client import decode_item, encode_item
    from mtsc_sdr.runtime.outputs import outputs_for
    from mtsc_sdr.runtime.run import task_metric_rows

    loaded = load_client(toy_checkpoint)
    client_model = loaded.model
    channel = build_channel(ChannelProfile.from_dict({"awgn": {"snr_db": 20.0}}), 7)
    tx, rx = Transmitter(), Receiver()
    bs = BaseStation(str(toy_checkpoint), [free_tcp_endpoint()], "tcp://127.0.0.1:*")
    control = MessageClient(bs.control.endpoint, session=42)
    records = []
    try:
        control.send(protocol.HELLO, meta={"checkpoint": bs.identity})
        bs._on_message(bs.control.recv(timeout_ms=5000))
        assert control.recv(timeout_ms=5000).kind == protocol.WELCOME
        for seq, ex in enumerate(examples("val", [TOY], n_per_task=3, seed=1)):
            samples, info, _ = encode_item(loaded.encoder, tx, ex, 20.0, None, 42, seq, 256)
            (frame,) = rx.process(np.concatenate([channel(samples), channel(np.zeros(512, np.complex64))]))
            assert frame.header.task_id == 5 and frame.header.seq == seq
            bs._on_frame(frame, 0.0, 0.0)
            msg = control.recv(timeout_ms=5000)
            assert msg.kind == protocol.SEMANTICS and msg.meta["task_id"] == 5
            out, _ = decode_item(client_model, ex, msg.tensors["semantics"])
            kind = outputs_for(ex.task)
            rec = {"task": ex.task, "snr_db": 20.0, "precision": "fp32", "reference": ex.references,
                   "snr_est_db": float(frame.snr_db), **kind.record(ex, kind.items(out)[0], None, 42)}
            assert rec["output"] in ("circle", "square", "triangle")
            records.append(rec)
        assert bs.stats["items"] == 3 and bs.stats["frames_bad_layout"] == 0
    finally:
        control.close()
        bs.close()
    rows = task_metric_rows(records, "software")
    assert [(r["task"], r["metric"]) for r in rows] == [(TOY, "error_items"), (TOY, "top1"), (TOY, "snr_est_db")]
    assert 0.0 <= rows[1]["value"] <= 100.0 and rows[1]["n"] == 3

