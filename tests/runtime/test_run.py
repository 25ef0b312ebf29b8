"""``mtsc-sdr run`` on the micro model: the split testbed across processes against ``eval``, one
client process sending several points in turn, a dead channel named, Ctrl-C and a link that dies
mid-run tearing everything down."""

from __future__ import annotations

import json
import os
import time

import pytest

from mtsc_sdr.runtime import protocol
from tests.runtime.helpers import cli_argv, read_jsonl


def test_run_over_software_channel_agrees_with_eval(micro_checkpoint, tmp_path):
    """Same checkpoint, same items, same SNR: the multi-process pipeline (fp32 client) and the
    one-process evaluation agree within 1 point (text metrics) and PSNR_TOL_DB."""
    report = _agreement(micro_checkpoint, tmp_path, "software", 20.0, 1.0, PSNR_TOL_DB)
    # the report: every task's items, error counts, latency per stage, memory, outputs on disk
    items = [json.loads(line) for line in (tmp_path / "run" / "items.jsonl").read_text().splitlines()]
    assert len(items) == 5 * 6 and all("error" not in r for r in items)
    assert {r["task"] for r in items} == {"vqa", "caption_image", "caption_audio", "caption_video", "reconstruct"}
    p50 = {r["stage"]: r["value"] for r in report["rows"] if r["metric"] == "latency_ms_p50" and r["task"] == "all"}
    assert all(p50.get(stage) is not None and p50[stage] >= 0 for stage in protocol.stages("torch")), p50   # one host
    assert p50["total"] >= sum(p50[s] for s in ("modality_encoders", "lam_encoder", "jsc_encoder")) > 0
    procs = {r.get("process") for r in report["rows"] if r["metric"] == "peak_rss_mb"}
    assert {"client 1", "base station"} <= procs
    assert (tmp_path / "run" / "metrics_vs_snr.png").stat().st_size > 0
    assert (tmp_path / "run" / "latency.png").stat().st_size > 0


#: PSNR tolerance of these mechanism checks (6 patches at 20 dB). The OFDM receiver's patches come
#: out within 0.1 dB of the one-process genie equaliser's on average at 20 dB over 300 patches
#: (benchmarks/pipeline_agreement.py, the 0.3 dB criterion), and a 6-patch mean spreads about
#: 0.3 dB around that. A pipeline that loses the code itself is 10 dB off (the processes once
#: skipped it: 9.7 vs 19.3). The finer losses are the benchmark's to judge.
PSNR_TOL_DB = 1.0


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
    one = {(r["task"], r["metric"]): r["value"] for r in ev["rows"]
           if r["system"] == "mtsc" and "question_type" not in r}   # per question type: eval only
    assert set(one) <= set(ours)
    for (task, metric), v in one.items():
        tol = psnr_tol if metric == "psnr_db" else 0.02 if metric == "ssim" else text_tol
        assert abs(ours[(task, metric)] - v) <= tol, (task, metric, ours[(task, metric)], v)
    return report


@pytest.mark.gnuradio
def test_run_over_gnuradio_sim_agrees_with_eval(micro_checkpoint, tmp_path, gr_python):
    """The same through the GNU Radio sim flowgraph at the same SNR, with a CFO the receiver
    removes: within 2 points and PSNR_TOL_DB."""
    report = _agreement(micro_checkpoint, tmp_path, "gnuradio-sim", 20.0, 2.0, PSNR_TOL_DB, cfo_hz=3000.0)
    est = [r["value"] for r in report["rows"] if r["metric"] == "snr_est_db"]
    assert all(abs(e - 20.0) < 2.0 for e in est)


def test_run_one_client_process_sends_every_point_in_turn(micro_checkpoint, tmp_path):
    """``client_per_point: false`` (what the demo runs): every point's link at once, one client
    process sending the points in turn, each with its own session; at -5 dB a lost frame is sent
    again as soon as a later item's answer shows it lost, not after the item timeout."""
    from mtsc_sdr.runtime.run import ClientSpec, RunConfig, execute

    cfg = RunConfig(name="t", checkpoint=str(micro_checkpoint), snr_db=[-5.0, 20.0], out=str(tmp_path / "run"),
                    client_per_point=False, item_timeout_s=1.5, retries=10,
                    clients=[ClientSpec(precision="fp32", n_per_task=4, window=8)])
    report = execute(cfg)
    assert report["failures"] == []
    items = read_jsonl(tmp_path / "run" / "items.jsonl")
    assert len(items) == 2 * 5 * 4 and all("error" not in r for r in items)
    assert {(p["session"], p["snr_db"]) for p in report["points"]} == {(1, -5.0), (2, 20.0)}
    assert {(r["session"], r["snr_db"]) for r in items} == {(1, -5.0), (2, 20.0)}
    work = tmp_path / "run" / "work"
    assert sorted(f.name for f in work.glob("client_*.json")) == ["client_1.json"]      # one process
    summaries = read_jsonl(work / "client_1.json")                                    # a line per point
    assert [(s["session"], s["snr_db"], s["items_ok"]) for s in summaries] == [(1, -5.0, 20), (2, 20.0, 20)]
    assert summaries[0].get("resent_overtaken", 0) >= 1
    assert {r["process"] for r in report["rows"] if r["metric"] == "peak_rss_mb"} == {"client 1", "base station"}
    assert {r["snr_db"] for r in report["rows"] if r["metric"] == "items_per_s"} == {-5.0, 20.0}


def test_run_config_refuses_concurrent_points_with_one_client_process(tmp_path):
    from mtsc_sdr.config import ConfigError
    from mtsc_sdr.runtime.run import load_config

    bad = tmp_path / "bad.yaml"
    bad.write_text("client_per_point: false\nconcurrent_points: true\n")
    with pytest.raises(ConfigError, match="concurrent_points"):
        load_config(str(bad))


def test_run_config_names_a_compressed_client_without_its_artifact(tmp_path):
    from mtsc_sdr.config import ConfigError
    from mtsc_sdr.runtime.run import load_config

    bad = tmp_path / "bad.yaml"
    bad.write_text("clients:\n  - {runtime: onnxruntime}\n")
    with pytest.raises(ConfigError, match=r"clients\[0\]\.runtime"):
        load_config(str(bad))
    bad.write_text(f"clients:\n  - {{runtime: onnxruntime, artifact: {tmp_path / 'none'}}}\n")
    with pytest.raises(ConfigError, match=r"clients\[0\]\.artifact"):
        load_config(str(bad))


def test_run_config_names_a_knowledge_base_that_is_not_there(tmp_path):
    from mtsc_sdr.config import ConfigError
    from mtsc_sdr.runtime.run import load_config

    bad = tmp_path / "bad.yaml"
    bad.write_text(f"kb: {tmp_path / 'none'}\n")
    with pytest.raises(ConfigError, match=r"^kb: no knowledge base in"):
        load_config(str(bad))
    bad.write_text(f"clients:\n  - {{kb: {tmp_path / 'none'}}}\n")
    with pytest.raises(ConfigError, match=r"clients\[0\]\.kb: no knowledge base in"):
        load_config(str(bad))


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
    proc = subprocess.Popen(cli_argv("run", str(cfg)), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    items = tmp_path / "out" / "work" / "items_1.jsonl"
    deadline = time.monotonic() + 120
    while not read_jsonl(items):
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
    records = read_jsonl(tmp_path / "out" / "items.jsonl")
    assert len(records) == 5 * 200                          # no item silently lost: results + error records
    assert any(r.get("error", "").startswith("interrupted") for r in records)
    assert report["failures"][0] == "interrupted (Ctrl-C)"


def _kill_link_when_items_flow(items, marker: str, stop):
    import signal

    while not stop.is_set():
        if read_jsonl(items):
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


def test_run_a_minilm_checkpoint_over_software_channel_agrees_with_eval(minilm_env, minilm_micro_checkpoint,
                                                                        tmp_path):
    """The split testbed (client, base station, channel processes) runs a LoRA-tuned minilm
    checkpoint, whose base every process rebuilds from the (fixture) package weights."""
    _agreement(minilm_micro_checkpoint, tmp_path, "software", 20.0, 1.0, PSNR_TOL_DB)


def test_run_a_lora_bart_checkpoint_over_software_channel_agrees_with_eval(bart_lora_checkpoint, tmp_path):
    """The split testbed runs a LoRA-tuned local BART's checkpoint (adapters non-zero) whose local
    BART directory is gone: every process rebuilds the LoRA wrappers from the checkpoint alone."""
    _agreement(bart_lora_checkpoint, tmp_path, "software", 20.0, 1.0, PSNR_TOL_DB)


def test_the_summary_prints_a_demo_style_report_without_meta_or_points():
    """The demo hands format_summary only rows and failures."""
    from mtsc_sdr.report import row
    from mtsc_sdr.runtime.run import format_summary

    rows = [row("mtsc", "vqa", "software", 10.0, "accuracy", 80.0, precision="int8"),
            row("mtsc", "all", "software", None, "latency_ms_p50", 1.5, precision="int8", stage="total"),
            row("mtsc", "all", "software", None, "peak_rss_mb", 500.0, precision="int8", process="client 1")]
    text = format_summary({"rows": rows, "failures": []})
    assert "software/int8" in text and "80.00" in text and "total 1.50" in text
    assert "software/int8: client peak memory 500 MiB" in text
