"""Make the short SigMF recordings shipped in ``recordings/`` (and the checkpoint that decodes them).

Each recording is a real capture: ``mtsc-sdr run`` with ``capture: true`` over the software
channel with the lab-like impairments of ``configs/channels/lab-pluto.yaml`` (multipath, Rician
fading, timing offset, 2 ppm SRO, 4.8 kHz CFO, phase noise, IQ imbalance, DC offset; AWGN set to
``--snr-db``), so the base station's input is recorded with its frame annotations and the
sessions it served; and ``mtsc-sdr link-test --capture`` for a recording without sessions.

* ``lab-pluto-vqa-caption-reconstruct``: one fp32 client, one VQA item, one image caption, one
  reconstruction (val split, seed 0);
* ``lab-pluto-audio-video``: one int8 client, one audio caption and one video caption;
* ``lab-pluto-link-test``: 10 random-payload frames of 256 symbols (frame statistics only).

Training is not bit-reproducible across processes (the micro model's weights differ between two
trainings unless PYTHONHASHSEED is fixed, and float results may differ between CPUs), so frames
encoded by one checkpoint decode correctly only with that checkpoint: the checkpoint used is
shipped beside the recordings (``recordings/checkpoint/``: weights, config and tokenizer of the
micro preset, about 0.5 MB). ``recordings/expected.json`` holds what the live clients decoded;
every recording is replayed once here and must decode to exactly that. Run from the repository
root::

    .venv/bin/python benchmarks/make_recordings.py [--checkpoint DIR] [--out recordings] [--json]

Without ``--checkpoint`` it trains the micro preset as ``tests/conftest.py`` does (a few seconds);
``--checkpoint recordings/checkpoint`` re-records with the shipped one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

PROFILE = "configs/channels/lab-pluto.yaml"
#: name -> (tasks, client precision) of the recordings made through ``mtsc-sdr run``.
SESSION_RECORDINGS = {
    "lab-pluto-vqa-caption-reconstruct": (["vqa", "caption_image", "reconstruct"], "fp32"),
    "lab-pluto-audio-video": (["caption_audio", "caption_video"], "int8"),
}
LINK_TEST_RECORDING = "lab-pluto-link-test"
CHECKPOINT_FILES = ("model.safetensors", "config.json", "tokenizer.json")


def train_micro(directory: Path) -> Path:
    """The micro preset as ``tests/conftest.py``'s ``micro_checkpoint`` trains it."""
    from mtsc_sdr.train.config import TrainConfig
    from mtsc_sdr.train.trainer import train

    cfg = TrainConfig.from_dict({"preset": "micro", "tokenizer_scenes": 40, "examples_per_task": 16, "steps": 40,
                                 "batch_size": 4, "checkpoint_dir": str(directory), "num_threads": 1})
    train(cfg, quiet=True)
    return directory


def ship_checkpoint(src: Path, dst: Path) -> dict:
    """Copy what decoding needs (weights, config, tokenizer) to ``dst``; returns its identity."""
    from mtsc_sdr.runtime.protocol import checkpoint_identity

    dst.mkdir(parents=True, exist_ok=True)
    if src.resolve() != dst.resolve():             # --checkpoint recordings/checkpoint: keep it as it is
        for name in CHECKPOINT_FILES:
            shutil.copyfile(src / name, dst / name)
    ident = checkpoint_identity(dst)
    if ident != checkpoint_identity(src):
        raise RuntimeError(f"{dst}: the copied checkpoint's identity differs from {src}'s")
    return ident


def session_recording(name: str, tasks: list[str], precision: str, checkpoint: str, snr_db: float, out: Path,
                      work: Path) -> list[dict]:
    """Record one client's session through ``mtsc-sdr run``; returns the live client's records."""
    from mtsc_sdr.capture import recording_paths
    from mtsc_sdr.runtime.run import ClientSpec, RunConfig, execute

    cfg = RunConfig(name=name, checkpoint=checkpoint, channel="software", snr_db=[snr_db], profile=PROFILE,
                    clients=[ClientSpec(tasks=tasks, n_per_task=1, split="val", seed=0, precision=precision, window=1)],
                    capture=True, item_timeout_s=30.0, seed=7, out=str(work / name))
    report = execute(cfg)
    if report["failures"]:
        raise RuntimeError(f"{name}: the live run failed: {report['failures']}")
    (src_meta, src_data), (dst_meta, dst_data) = recording_paths(work / name / "recordings" / "bs-rx0"), \
        recording_paths(out / name)
    shutil.copyfile(src_data, dst_data)
    shutil.copyfile(src_meta, dst_meta)
    return [json.loads(line) for line in (work / name / "items.jsonl").read_text().splitlines() if line.strip()]


def expected_items(records: list[dict]) -> list[dict]:
    """What a replay must reproduce of each live record: its output (text) or PSNR / SSIM (images)."""
    keep = ("session", "seq", "item_id", "task", "snr_est_db")
    return [{**{k: r[k] for k in keep}, **({"psnr_db": r["psnr_db"], "ssim": r["ssim"]} if r["task"] == "reconstruct"
                                          else {"output": r["output"]})} for r in records]


def check_replay(name: str, out: Path, checkpoint: str, expected: list[dict], work: Path) -> None:
    """Replay a shipped recording; it must decode exactly what the live client decoded."""
    from mtsc_sdr.runtime.replay import replay

    report = replay(str(out / name), checkpoint=checkpoint, out=str(work / f"replay-{name}"), fast=True)
    got = [json.loads(line) for line in (work / f"replay-{name}" / "items.jsonl").read_text().splitlines()]
    if report["failures"] or expected_items(sorted(got, key=lambda r: r["seq"])) != expected:
        raise RuntimeError(f"{name}: the replay does not reproduce the live session: {report['failures']}, {got}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="checkpoint to encode with (default: train the micro preset)")
    p.add_argument("--out", default="recordings", help="where the recordings go")
    p.add_argument("--snr-db", type=float, default=20.0, help="AWGN of the software channel (Es/N0 on the payload)")
    p.add_argument("--work", default="results/make_recordings", help="the runs' and replays' own outputs")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    from mtsc_sdr.capture import read_recording
    from mtsc_sdr.runtime.link_test import LinkTestConfig, run_link_test
    from mtsc_sdr.report import row, run_meta

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(args.checkpoint) if args.checkpoint else train_micro(Path(tmp) / "micro")
        shipped = out / "checkpoint"
        identity = ship_checkpoint(src, shipped)
    expected: dict = {}
    for name, (tasks, precision) in SESSION_RECORDINGS.items():
        records = session_recording(name, tasks, precision, str(shipped), args.snr_db, out, work)
        expected[name] = {"checkpoint": identity, "items": expected_items(sorted(records, key=lambda r: r["seq"]))}
        check_replay(name, out, str(shipped), expected[name]["items"], work)
    lt = run_link_test(LinkTestConfig(frames=10, payload_len=256, snr_db=args.snr_db, profile=PROFILE, seed=3,
                                      capture=str(out / LINK_TEST_RECORDING)))
    expected[LINK_TEST_RECORDING] = {"frames_header_ok": lt["frames_header_ok"]}
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")

    rows = []
    for name in (*SESSION_RECORDINGS, LINK_TEST_RECORDING):
        rec = read_recording(out / name)
        rows.append(row("mtsc", "all", "software", args.snr_db, "recording_bytes", rec.data_path.stat().st_size,
                        unit="bytes", recording=name, samples=rec.sample_count,
                        frames=sum(a["core:label"] == "frame" for a in rec.annotations)))
    result = {"meta": run_meta({"profile": PROFILE, "snr_db": args.snr_db, "checkpoint": identity}, {"run": 7}),
              "rows": rows}
    if args.json:
        print(json.dumps(result))
    else:
        for r in rows:
            print(f"{r['recording']:<36} {r['samples']:>7} samples  {r['value'] / 1e3:8.1f} kB  {r['frames']} frames")
        print(f"checkpoint {shipped}: {sum((shipped / f).stat().st_size for f in CHECKPOINT_FILES) / 1e3:.1f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
