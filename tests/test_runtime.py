"""The split testbed across processes on the micro model: ``mtsc-sdr run`` against ``eval``,
a base station killed and restarted mid-run, a checkpoint mismatch, a dead channel, a user's own
image, and the client's handling of bad downlink messages."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

import numpy as np
import pytest

from mtsc_sdr.runtime import protocol
from mtsc_sdr.process import ChildProcess


def _cli(*args):
    return [sys.executable, "-m", "mtsc_sdr.cli", *args]


def test_run_over_software_channel_agrees_with_eval(micro_checkpoint, tmp_path):
    """Same checkpoint, same items, same SNR: the multi-process pipeline (fp32 client) and the
    one-process evaluation agree within 1 point (text metrics) and 0.3 dB (PSNR)."""
    report = _agreement(micro_checkpoint, tmp_path, "software", 20.0, 1.0, 0.3)
    # the report: every task's items, error counts, latency per stage, memory, outputs on disk
    items = [json.loads(line) for line in (tmp_path / "run" / "items.jsonl").read_text().splitlines()]
    assert len(items) == 5 * 6 and all("error" not in r for r in items)
    assert {r["task"] for r in items} == {"vqa", "caption_image", "caption_audio", "caption_video", "reconstruct"}
    p50 = {r["stage"]: r["value"] for r in report["rows"] if r["metric"] == "latency_ms_p50" and r["task"] == "all"}
    assert all(p50.get(stage) is not None and p50[stage] >= 0 for stage in protocol.STAGES), p50   # one host
    assert p50["total"] >= sum(p50[s] for s in ("modality_encoders", "lam_encoder", "jsc_encoder")) > 0
    procs = {r.get("process") for r in report["rows"] if r["metric"] == "peak_rss_mb"}
    assert {"client 1", "base station"} <= procs
    assert (tmp_path / "run" / "metrics_vs_snr.png").stat().st_size > 0
    assert (tmp_path / "run" / "latency.png").stat().st_size > 0


def _agreement(checkpoint, tmp_path, channel, snr_db, text_tol, psnr_tol, **link):
    """Run the pipeline over ``channel`` and evaluate in one process; assert the metrics agree."""
    from mtsc_sdr.runtime.evaluate import evaluate
    from mtsc_sdr.runtime.run import ClientSpec, RunConfig, execute

    cfg = RunConfig(name="t", checkpoint=str(checkpoint), channel=channel, snr_db=[snr_db], out=str(tmp_path / "run"),
                    clients=[ClientSpec(precision="fp32", n_per_task=6)], item_timeout_s=20.0, **link)
    report = execute(cfg)
    assert report["failures"] == []
    ev = evaluate(checkpoint, [snr_db], n_per_task=6, split="val", baseline=False, seed=0)
    ours = {(r["task"], r["metric"]): r["value"] for r in report["rows"] if r["snr_db"] == snr_db}
    one = {(r["task"], r["metric"]): r["value"] for r in ev["rows"] if r["system"] == "mtsc"}
    assert set(one) <= set(ours)
    for (task, metric), v in one.items():
        tol = psnr_tol if metric == "psnr_db" else 0.02 if metric == "ssim" else text_tol
        assert abs(ours[(task, metric)] - v) <= tol, (task, metric, ours[(task, metric)], v)
    return report


@pytest.mark.gnuradio
def test_run_over_gnuradio_sim_agrees_with_eval(micro_checkpoint, tmp_path, gr_python):
    """The same through the GNU Radio sim flowgraph at the same SNR, with a CFO the receiver
    removes: within 2 points and 0.5 dB."""
    report = _agreement(micro_checkpoint, tmp_path, "gnuradio-sim", 20.0, 2.0, 0.5, cfo_hz=3000.0)
    est = [r["value"] for r in report["rows"] if r["metric"] == "snr_est_db"]
    assert all(abs(e - 20.0) < 2.0 for e in est)


def _start_bs(checkpoint, control, rx, tmp_path, tag):
    return ChildProcess(f"bs {tag}", _cli("bs", "--checkpoint", str(checkpoint), "--control", control,
                                           "--rx", rx, "--stats", str(tmp_path / f"bs_{tag}.json"))).start()


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def test_base_station_killed_and_restarted_mid_run(micro_checkpoint, tmp_path):
    from mtsc_sdr.link import free_tcp_endpoint

    control, tx, rx = free_tcp_endpoint(), free_tcp_endpoint(), free_tcp_endpoint()
    out = tmp_path / "items.jsonl"
    procs = []
    try:
        bs = _start_bs(micro_checkpoint, control, rx, tmp_path, "first")
        procs.append(bs)
        procs.append(ChildProcess("channel", _cli("channel", "--in", tx, "--out", rx, "--snr-db", "15")).start())
        client = ChildProcess("client", _cli(
            "client", "--checkpoint", str(micro_checkpoint), "--tx", tx, "--control", control, "--session", "7",
            "--snr-db", "15", "--split", "val", "--tasks", "caption_image,vqa", "--n-per-task", "12",
            "--window", "2", "--item-timeout-s", "2", "--retries", "10", "--out", str(out),
            "--summary", str(tmp_path / "client.json"))).start()
        procs.append(client)
        deadline = time.monotonic() + 120
        while len(_lines(out)) < 3:             # let a few items through, then kill the base station
            client.check(expect_running=False)
            assert time.monotonic() < deadline, "no results before the kill"
            time.sleep(0.05)
        import signal

        os.killpg(bs.pid, signal.SIGKILL)
        bs.wait()
        done_before = len(_lines(out))
        time.sleep(1.0)
        procs.append(_start_bs(micro_checkpoint, control, rx, tmp_path, "second"))
        client.communicate(timeout_s=180)       # raises if it exits non-zero
    finally:
        for p in reversed(procs):
            p.stop()
    records = _lines(out)
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
        client = ChildProcess("client", _cli(
            "client", "--checkpoint", str(other), "--tx", tx, "--control", control, "--session", "3",
            "--split", "val", "--tasks", "vqa", "--n-per-task", "1", "--out", str(tmp_path / "o.jsonl"))).start()
        with pytest.raises(Exception):
            client.communicate(timeout_s=120)
        assert client.returncode == protocol.EXIT_REFUSED
        tail = client.output_tail()
        client.stop()
    assert "refused" in tail and "weights" in tail and "checkpoint differs" in tail
    assert _lines(tmp_path / "o.jsonl") == []


def test_run_fails_fast_naming_a_dead_channel(micro_checkpoint, tmp_path):
    from mtsc_sdr.runtime.run import ClientSpec, RunConfig, execute
    from mtsc_sdr.process import ProcessFailed

    cfg = RunConfig(name="dead", checkpoint=str(micro_checkpoint), snr_db=[10.0], out=str(tmp_path / "run"),
                    profile=str(tmp_path / "no-such-profile.yaml"), clients=[ClientSpec(n_per_task=2)],
                    timeout_s=600.0)
    with pytest.raises(ProcessFailed, match="software channel"):
        execute(cfg)
    report = json.loads((tmp_path / "run" / "report.json").read_text())   # written all the same
    assert "software channel" in report["failures"][0]


def test_client_answers_a_users_own_image(micro_checkpoint, tmp_path):
    from PIL import Image

    from mtsc_sdr.link import free_tcp_endpoint

    img = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)).save(img)
    control, tx, rx = free_tcp_endpoint(), free_tcp_endpoint(), free_tcp_endpoint()
    out = tmp_path / "o.jsonl"
    with _start_bs(micro_checkpoint, control, rx, tmp_path, "a"), \
            ChildProcess("channel", _cli("channel", "--in", tx, "--out", rx, "--snr-db", "20")):
        client = ChildProcess("client", _cli(
            "client", "--checkpoint", str(micro_checkpoint), "--tx", tx, "--control", control,
            "--image", str(img), "--question", "what colour is the circle?", "--precision", "fp32",
            "--out", str(out))).start()
        client.communicate(timeout_s=120)
    (rec,) = _lines(out)
    assert rec["task"] == "vqa" and rec["item_id"] == str(img) and rec["reference"] is None
    assert isinstance(rec["output"], str)
    assert all(rec["latency_ms"][stage] is not None for stage in protocol.STAGES), rec["latency_ms"]


# -- the client's downlink handling, against a hand-driven control link ----------------------------------


def test_client_drops_malformed_and_foreign_downlink_messages(micro_checkpoint):
    from mtsc_sdr.compress.quantize import load_client
    from mtsc_sdr.data import examples
    from mtsc_sdr.link import MessageServer, free_tcp_endpoint
    from mtsc_sdr.runtime.client import Client, ClientSettings

    loaded = load_client(micro_checkpoint, "fp32")
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


def test_downlink_meta_validation():
    meta = protocol.DownlinkMeta(seq=1, task_id=0, rate_idx=2, n_tokens=3, snr_est_db=1.0, snr_payload_db=2.0,
                                 cfo_hz=3.0, rx_sync_ms=1, jsc_decoder_ms=1, lam_decoder_ms=1, t_frame_s=0,
                                 t_sent_s=0, host="h")
    assert protocol.DownlinkMeta.from_meta(meta.to_meta()) == meta
    with pytest.raises(ValueError, match="seq"):
        protocol.DownlinkMeta.from_meta(dict(meta.to_meta(), seq="1"))
    with pytest.raises(ValueError, match="lacks 'host'"):
        protocol.DownlinkMeta.from_meta({k: v for k, v in meta.to_meta().items() if k != "host"})
    with pytest.raises(ValueError):
        protocol.DownlinkMeta.from_meta([1, 2])


def test_checkpoint_identity_differences(micro_checkpoint):
    ident = protocol.checkpoint_identity(micro_checkpoint)
    assert set(ident) == {"format_version", "config", "tokenizer", "weights"}
    assert protocol.identity_differences(dict(ident), ident) == {}
    diff = protocol.identity_differences(dict(ident, weights="0" * 16), ident)
    assert list(diff) == ["weights"] and diff["weights"] == ["0" * 16, ident["weights"]]
    assert set(protocol.identity_differences(None, ident)) == set(ident)
    assert "weights: client" in protocol.describe_differences(diff)


# -- teardown: Ctrl-C, and a link that dies in the middle of a run ------------------------------------


def _children(pid: int) -> dict[int, str]:
    """Direct children of ``pid``: {pid: command line}."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    out[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_run_ctrl_c_tears_everything_down(micro_checkpoint, tmp_path):
    import signal
    import subprocess

    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"name: t\ncheckpoint: {micro_checkpoint}\nsnr_db: [10]\nout: {tmp_path / 'out'}\n"
                   "clients:\n  - {precision: fp32, n_per_task: 200, window: 1}\n")
    proc = subprocess.Popen(_cli("run", str(cfg)), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    items = tmp_path / "out" / "work" / "items_1.jsonl"
    deadline = time.monotonic() + 120
    while not _lines(items):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    kids = _children(proc.pid)
    assert any(" bs " in c for c in kids.values()) and any(" client " in c for c in kids.values())
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()[-2000:]
    time.sleep(0.5)
    assert [c for p, c in kids.items() if _alive(p)] == []
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    records = _lines(tmp_path / "out" / "items.jsonl")
    assert len(records) == 5 * 200                          # no item silently lost: results + error records
    assert any(r.get("error", "").startswith("interrupted") for r in records)
    assert report["failures"][0] == "interrupted (Ctrl-C)"


def _kill_link_when_items_flow(items, marker: str, stop):
    import signal

    while not stop.is_set():
        if _lines(items):
            for pid, cmd in _children(os.getpid()).items():
                if marker in cmd:
                    os.kill(pid, signal.SIGKILL)
                    return
        time.sleep(0.05)


@pytest.mark.parametrize("channel,marker", [
    ("software", "mtsc_sdr.cli channel"),
    pytest.param("gnuradio-sim", "sim_channel", marks=pytest.mark.gnuradio),
])
def test_run_fails_fast_when_its_link_dies_mid_run(micro_checkpoint, tmp_path, request, channel, marker):
    import threading

    from mtsc_sdr.runtime.run import ClientSpec, RunConfig, execute

    if channel == "gnuradio-sim":
        request.getfixturevalue("gr_python")
    cfg = RunConfig(name="t", checkpoint=str(micro_checkpoint), channel=channel, snr_db=[10.0],
                    out=str(tmp_path / "run"), clients=[ClientSpec(precision="fp32", n_per_task=200, window=1)],
                    timeout_s=600.0)
    stop = threading.Event()
    killer = threading.Thread(target=_kill_link_when_items_flow,
                              args=(tmp_path / "run" / "work" / "items_1.jsonl", marker, stop), daemon=True)
    killer.start()
    try:
        with pytest.raises(RuntimeError) as info:
            execute(cfg)
    finally:
        stop.set()
    name = "software channel" if channel == "software" else "sim_channel"
    assert name in str(info.value)
    leftover = [c for c in _children(os.getpid()).values() if "mtsc_sdr" in c or "flowgraph" in c]
    assert leftover == []                      # the base station and the client were stopped too


def test_base_station_counts_and_drops_frames_it_cannot_serve(micro_checkpoint):
    from mtsc_sdr.link import MessageClient, free_tcp_endpoint
    from mtsc_sdr.phy.header import FrameHeader
    from mtsc_sdr.phy.rx import Receiver
    from mtsc_sdr.phy.tx import Transmitter
    from mtsc_sdr.runtime.bs import BaseStation

    def frame(session, rate_idx, n, seq=0, task_id=1):
        payload = (np.random.default_rng(seq).standard_normal(2 * n).astype(np.float32).view(np.complex64)
                   * np.float32(0.7))
        x = np.concatenate([np.zeros(300, np.complex64),
                            Transmitter().build(payload, FrameHeader(session_id=session, seq=seq, payload_len=n,
                                                                     rate_idx=rate_idx, task_id=task_id)),
                            np.zeros(300, np.complex64)])
        (f,) = Receiver().process(x)
        return f

    bs = BaseStation(str(micro_checkpoint), [free_tcp_endpoint()], "tcp://127.0.0.1:*")
    client = MessageClient(bs.control.endpoint, session=42)
    try:
        bs._on_frame(frame(42, 0, 16), 0.0, 0.0)                  # no hello from session 42 yet
        assert bs.stats["frames_unknown_session"] == 1
        client.send(protocol.HELLO, meta={"checkpoint": dict(bs.identity, weights="f" * 16)})
        bs._on_message(bs.control.recv(timeout_ms=5000))
        assert client.recv(timeout_ms=5000).kind == protocol.REFUSED and 42 not in bs.sessions
        client.send(protocol.HELLO, meta={"checkpoint": bs.identity})
        bs._on_message(bs.control.recv(timeout_ms=5000))
        assert client.recv(timeout_ms=5000).kind == protocol.WELCOME and 42 in bs.sessions
        rates = bs.server.cfg.rate_table
        bs._on_frame(frame(42, len(rates), 16), 0.0, 0.0)          # rate index outside the table
        bs._on_frame(frame(42, 1, rates[1] + 1), 0.0, 0.0)         # not a whole number of tokens
        bs._on_frame(frame(42, 1, rates[1], task_id=15), 0.0, 0.0)  # no such task
        assert bs.stats["frames_bad_layout"] == 3
        bs._on_frame(frame(42, 1, 3 * rates[1], seq=5), 0.0, 0.0)
        msg = client.recv(timeout_ms=5000)
        assert msg.kind == protocol.SEMANTICS and msg.meta["seq"] == 5 and msg.meta["n_tokens"] == 3
        assert msg.tensors["semantics"].shape == (bs.server.cfg.task_queries, bs.server.cfg.d_model)
        assert bs.stats["items"] == 1
    finally:
        client.close()
        bs.close()


def test_base_station_logs_each_dropped_frame(caplog):
    import logging

    from mtsc_sdr.phy.header import FrameHeader
    from mtsc_sdr.phy.rx import Receiver
    from mtsc_sdr.phy.tx import Transmitter
    from mtsc_sdr.runtime.bs import BaseStation

    tx, rx = Transmitter(), Receiver()
    bad = [tx.build(np.full(32, 0.7, np.complex64), FrameHeader(session_id=1, seq=k, payload_len=32), corrupt_crc=True)
           for k in range(2)]
    gap = np.zeros(300, np.complex64)
    with caplog.at_level(logging.INFO, logger="mtsc_sdr.bs"):
        last = None
        for frame in bad:
            rx.process(np.concatenate([gap, frame, gap]))
            BaseStation._log_drops("tcp://test", rx, last)
            last = rx.drops[-1]
        BaseStation._log_drops("tcp://test", rx, last)            # nothing new: nothing logged
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all("header_crc_fail" in m and "tcp://test" in m for m in lines)
