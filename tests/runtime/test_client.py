"""The client process on the micro model: it resends what was in flight when the base station is
killed and restarted, is refused with another checkpoint, answers a user's own image, and drops
malformed and foreign downlink messages."""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pytest

from mtsc_sdr.runtime import protocol
from mtsc_sdr.process import ChildProcess
from tests.runtime.helpers import cli_argv, read_jsonl


def _start_bs(checkpoint, control, rx, tmp_path, tag):
    return ChildProcess(f"bs {tag}", cli_argv("bs", "--checkpoint", str(checkpoint), "--control", control,
                                           "--rx", rx, "--stats", str(tmp_path / f"bs_{tag}.json"))).start()


def test_base_station_killed_and_restarted_mid_run(micro_checkpoint, tmp_path):
    from mtsc_sdr.link import free_tcp_endpoint

    control, tx, rx = free_tcp_endpoint(), free_tcp_endpoint(), free_tcp_endpoint()
    out = tmp_path / "items.jsonl"
    procs = []
    try:
        bs = _start_bs(micro_checkpoint, control, rx, tmp_path, "first")
        procs.append(bs)
        procs.append(ChildProcess("channel", cli_argv("channel", "--in", tx, "--out", rx, "--snr-db", "15")).start())
        client = ChildProcess("client", cli_argv(
            "client", "--checkpoint", str(micro_checkpoint), "--tx", tx, "--control", control, "--session", "7",
            "--snr-db", "15", "--split", "val", "--tasks", "caption_image,vqa", "--n-per-task", "12",
            "--window", "2", "--item-timeout-s", "2", "--retries", "10", "--out", str(out),
            "--summary", str(tmp_path / "client.json"))).start()
        procs.append(client)
        deadline = time.monotonic() + 120
        while len(read_jsonl(out)) < 3:             # let a few items through, then kill the base station
            client.check(expect_running=False)
            assert time.monotonic() < deadline, "no results before the kill"
            time.sleep(0.05)
        import signal

        os.killpg(bs.pid, signal.SIGKILL)
        bs.wait()
        done_before = len(read_jsonl(out))
        time.sleep(1.0)
        procs.append(_start_bs(micro_checkpoint, control, rx, tmp_path, "second"))
        client.communicate(timeout_s=180)       # raises if it exits non-zero
    finally:
        for p in reversed(procs):
            p.stop()
    records = read_jsonl(out)
    assert done_before < 24
    assert len(records) == 24                               # every item ends with one record
    assert len({r["item_id"] for r in records}) == 24
    assert all("error" not in r for r in records)           # ... and here each a result
    summary = json.loads((tmp_path / "client.json").read_text())
    assert summary["resent"] >= 1                           # the items in flight were sent again
    assert max(r["attempts"] for r in records) >= 2
    assert json.loads((tmp_path / "bs_second.json").read_text())["bs"]["items"] >= 1


def test_client_with_another_checkpoint_is_refused(micro_checkpoint, tmp_path):
    """Different weights: the base station refuses at hello, naming what differs; exit status 4."""
    from safetensors.torch import load_file, save_file

    from mtsc_sdr.link import free_tcp_endpoint

    other = tmp_path / "other"
    shutil.copytree(micro_checkpoint, other)
    weights = load_file(str(other / "model.safetensors"))
    name = sorted(weights)[0]
    weights[name] = weights[name] + 1.0
    save_file(weights, str(other / "model.safetensors"), metadata={"format": "mtsc-sdr-model", "version": "1"})
    control, tx, rx = free_tcp_endpoint(), free_tcp_endpoint(), free_tcp_endpoint()
    with _start_bs(micro_checkpoint, control, rx, tmp_path, "a"):
        client = ChildProcess("client", cli_argv(
            "client", "--checkpoint", str(other), "--tx", tx, "--control", control, "--session", "3",
            "--split", "val", "--tasks", "vqa", "--n-per-task", "1", "--out", str(tmp_path / "o.jsonl"))).start()
        with pytest.raises(Exception):
            client.communicate(timeout_s=120)
        assert client.returncode == protocol.EXIT_REFUSED
        tail = client.output_tail()
        client.stop()
    assert "refused" in tail and "weights" in tail and "checkpoint differs" in tail
    assert read_jsonl(tmp_path / "o.jsonl") == []


def test_client_answers_a_users_own_image(micro_checkpoint, tmp_path):
    from PIL import Image

    from mtsc_sdr.link import free_tcp_endpoint

    img = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)).save(img)
    control, tx, rx = free_tcp_endpoint(), free_tcp_endpoint(), free_tcp_endpoint()
    out = tmp_path / "o.jsonl"
    with _start_bs(micro_checkpoint, control, rx, tmp_path, "a"), \
            ChildProcess("channel", cli_argv("channel", "--in", tx, "--out", rx, "--snr-db", "20")):
        client = ChildProcess("client", cli_argv(
            "client", "--checkpoint", str(micro_checkpoint), "--tx", tx, "--control", control,
            "--image", str(img), "--question", "what colour is the circle?", "--precision", "fp32",
            "--out", str(out))).start()
        client.communicate(timeout_s=120)
    (rec,) = read_jsonl(out)
    assert rec["task"] == "vqa" and rec["item_id"] == str(img) and rec["reference"] is None
    assert isinstance(rec["output"], str)
    assert all(rec["latency_ms"][stage] is not None for stage in protocol.stages("torch")), rec["latency_ms"]


# -- the client's downlink handling, against a hand-driven control link ----------------------------------


def test_client_drops_malformed_and_foreign_downlink_messages(micro_checkpoint):
    from mtsc_sdr.compress.artifact import load_client
    from mtsc_sdr.data import examples
    from mtsc_sdr.link import MessageServer, free_tcp_endpoint
    from mtsc_sdr.runtime.client import Client, ClientSettings

    loaded = load_client(micro_checkpoint)
    cfg = loaded.model.cfg
    server = MessageServer("tcp://127.0.0.1:*")
    client = Client(loaded.model, protocol.checkpoint_identity(micro_checkpoint), free_tcp_endpoint(),
                    server.endpoint, ClientSettings(session=9, snr_db=10.0))
    try:
        client._hello()
        hello = server.recv(timeout_ms=5000)
        assert hello.kind == protocol.HELLO and hello.session == 9
        ex = examples("val", ["caption_image"], n_per_task=1)[0]
        item = client._encode(ex)
        inflight = {item.seq: item}
        done = []

        def record(it, *_):
            done.append(it)
            del inflight[it.seq]

        good_meta = protocol.DownlinkMeta(
            seq=item.seq, task_id=1, rate_idx=0, n_tokens=1, snr_est_db=10.0, snr_payload_db=10.9, cfo_hz=None,
            rx_sync_ms=1.0, jsc_decoder_ms=1.0, lam_decoder_ms=1.0, t_frame_s=0.0, t_sent_s=0.0, host="x").to_meta()
        sem = np.zeros((cfg.task_queries, cfg.d_model), np.float32)
        bad = [
            ({"semantics": sem}, good_meta, {"session": 10}),                       # another session
            ({"semantics": sem}, {k: v for k, v in good_meta.items() if k != "seq"}, {}),   # meta lacks seq
            ({"semantics": sem[:, :3]}, good_meta, {}),                              # wrong shape
            ({"semantics": sem}, dict(good_meta, seq=item.seq + 1), {}),             # not in flight
        ]
        for tensors, meta, kw in bad:
            server.reply(hello, protocol.SEMANTICS, tensors, meta) if not kw else \
                server.send(hello.peer, protocol.SEMANTICS, tensors, meta, **kw)
            client._receive(5000, inflight, record)
        assert done == [] and item.seq in inflight
        assert client.counts["downlink_wrong_session"] == 1
        assert client.counts["downlink_malformed"] == 2
        assert client.counts["downlink_stale"] == 1
        server.reply(hello, protocol.SEMANTICS, {"semantics": sem}, good_meta)
        client._receive(5000, inflight, record)
        assert len(done) == 1 and inflight == {}
    finally:
        client.close()
        server.close()
