"""``mtsc-sdr send FILE``: one of the user's own files through the whole split system, and its answer.

``FILE`` is an image, a WAV file or a video (a folder of extracted frames, or a multi-frame
GIF / WebP / PNG), as ``mtsc-sdr client --image / --audio / --video`` takes them
(:mod:`mtsc_sdr.data.user_files`). It is a one-item ``mtsc-sdr run``
(:func:`mtsc_sdr.runtime.run.execute`): a base station process, a link of ``--channel`` kind
(software channel, GNU Radio sim flowgraph, or a Pluto / USRP pair through the radio link code)
and a client process with the file, all torn down at the end, on an error or on Ctrl-C.

The task comes from the file unless ``--task`` says: an image is captioned (``caption_image``),
or answered with ``--question`` (``vqa``), or with ``--task reconstruct`` sent and rebuilt as a PNG
in ``--out``; audio is captioned (``caption_audio``), a video too (``caption_video``). ``--kb PATH``
gives the client its local, private knowledge base (a model trained with retrieval: its snippets
for the question join the client's encoder input and never leave it; ``mtsc-sdr client --kb``).

Printed: the output (answer, caption or PNG path with its PSNR / SSIM against the input), the
base station's SNR estimate (dB, Es/N0 per payload symbol) and the latency of each stage of
that item (ms, :data:`mtsc_sdr.runtime.protocol.STAGES`, ``link_round_trip`` and ``total``);
``--json``: one object, the client's record of the item (``output``, ``task``, ``snr_est_db``,
``latency_ms``, ...) with ``channel``, the run's ``meta``, ``rows`` and ``failures``. ``--out``
(default ``results/send``) holds what a run writes (``report.json``, ``items.jsonl``, ``work/``).

Exit status: 0 with an answer, 1 when a process failed (named) or the item got no answer,
2 for a bad option, file or checkpoint (named), 4 when the base station refused the checkpoint,
130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Optional

from mtsc_sdr import tasks
from mtsc_sdr.config import from_dict
from mtsc_sdr.data.user_files import items_from_files
from mtsc_sdr.model.checkpoint import shipped_model_dir
from mtsc_sdr.options import add_checkpoint, add_dataclass_options, add_json
from mtsc_sdr.radio.links import RADIO_KINDS, LinkConfig
from mtsc_sdr.radio.profiles import DEFAULT_PROFILE, radio_profile
from mtsc_sdr.runtime import protocol
from mtsc_sdr.runtime.run import RunConfig, execute_command, read_items

AUDIO_SUFFIXES = (".wav", ".wave")


def file_kind(path: str, task: Optional[str] = None) -> str:
    """Which input ``path`` is: ``"image"``, ``"audio"`` or ``"video"`` (the client's option).

    With ``task``, that task's modality. Otherwise a folder is a video (its frames), a ``.wav``
    file audio, an image file with more than one frame (animated GIF / WebP / PNG, multi-page
    TIFF) a video, and any other file an image. FileNotFoundError naming ``path`` if it is absent.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if task is not None:
        return tasks.get(task).modality
    if p.is_dir():
        return "video"
    if p.suffix.lower() in AUDIO_SUFFIXES:
        return "audio"
    return "video" if _frame_count(p) > 1 else "image"


def _frame_count(path: Path) -> int:
    """Frames in an image file; 1 when PIL cannot tell (reading the file later names the problem)."""
    from PIL import Image   # PIL: only when a file is looked at

    try:
        with Image.open(path) as im:
            return int(getattr(im, "n_frames", 1))
    except OSError:          # PIL's UnidentifiedImageError too
        return 1


def checkpoint_dir(given: Optional[str]) -> str:
    """``given``, or the shipped default model; ValueError / OSError naming what is wrong with it."""
    directory = Path(given) if given else shipped_model_dir()
    if not directory.is_dir():
        hint = "" if given else (" (the shipped default model is not in this checkout: give --checkpoint DIR, "
                                 "or set MTSC_MODELS)")
        raise FileNotFoundError(f"--checkpoint: {directory} does not exist{hint}")
    protocol.checkpoint_identity(directory)    # CheckpointMismatch naming the file when it is not one
    return str(directory)


def flush_samples(link: LinkConfig) -> int:
    """Zeros after the item's frame: a radio's TX buffer (its profile's, in samples) holds the frame
    until it is full; the simulated links need only the run's default."""
    if link.channel not in RADIO_KINDS:
        return RunConfig.flush_samples
    return radio_profile(link.radio_profile or DEFAULT_PROFILE[link.channel]).buffers.tx_samples


def send_config(args: argparse.Namespace) -> RunConfig:
    """The one-item run that sends ``args.file``. Raises ValueError / OSError naming the option,
    file or checkpoint that is wrong (the file is read here once, so a bad one never starts a
    process)."""
    kind = file_kind(args.file, args.task)
    items_from_files(**{kind: args.file}, question=args.question, task=args.task)
    link = LinkConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(LinkConfig)})
    client = {kind: args.file, "question": args.question, "task": args.task, "precision": args.precision,
              "window": 1, "images_dir": args.out, "kb": args.kb}
    return from_dict(RunConfig, {**dataclasses.asdict(link), "snr_db": [link.snr_db], "name": "send",
                                 "checkpoint": checkpoint_dir(args.checkpoint), "out": args.out,
                                 "flush_samples": flush_samples(link), "clients": [client]})


def format_item(rec: dict[str, Any]) -> str:
    """The item's record (the client's JSON line, ``channel`` added) as a few lines of text."""
    spec = tasks.get(rec["task"])
    lines = [f"{rec['item_id']}: {rec['task']} over {rec['channel']} at {rec['snr_db']:g} dB "
             f"({rec['precision']} client)"]
    if rec.get("question"):
        lines.append(f"  question      {rec['question']}")
    if "error" in rec:
        return "\n".join(lines + [f"  error         {rec['error']}"])
    if spec.output == "image":
        lines.append(f"  image         {rec['output']} (PSNR {rec['psnr_db']:.2f} dB, SSIM {rec['ssim']:.3f} "
                     f"against the input)")
    else:
        lines.append(f"  {'answer' if spec.question else 'caption':<13} {rec['output']}")
    lines.append(f"  SNR estimate  {rec['snr_est_db']:.2f} dB (base station, Es/N0 per payload symbol)")
    lines.append("  latency (ms)  " + ", ".join(f"{stage} {ms:.2f}" for stage, ms in rec["latency_ms"].items()
                                               if ms is not None))
    return "\n".join(lines)


# -- command line ------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE",
                   help="an image, a WAV file, or a video: a folder of frames or a multi-frame GIF / WebP / PNG")
    p.add_argument("--question", help="a question about the image (VQA)")
    p.add_argument("--task", choices=tasks.names(),
                   help="default: vqa with --question, else caption_image / caption_audio / caption_video by the "
                        "file; reconstruct writes the image as PNG into --out")
    add_dataclass_options(p, LinkConfig)        # --channel, --snr-db, --seed, impairments, radio settings
    add_checkpoint(p, help="checkpoint directory (default: the shipped models/default; MTSC_MODELS overrides)")
    p.add_argument("--precision", choices=("int8", "fp32"), default="int8", help="client half precision")
    p.add_argument("--kb", metavar="PATH",
                   help="the client's local, private knowledge base (`mtsc-sdr kb add` makes one; a model trained "
                        "with retrieval): its snippets for --question join the client's encoder input")
    p.add_argument("--out", default="results/send", help="output directory (report, item record, PNG)")
    add_json(p, help="print one JSON object: the item's record with meta and rows")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = send_config(args)
    except (ValueError, OSError) as exc:      # ConfigError (a bad option) is a ValueError too
        print(f"mtsc-sdr send: {exc}", file=sys.stderr)
        return 2
    report, status = execute_command(cfg, "send", progress=not args.json)
    if report is None:
        return status
    records = [dict(r, channel=cfg.channel) for r in read_items(cfg.out_dir() / "work")]
    if not records:
        print("mtsc-sdr send: the client wrote no record of the item", file=sys.stderr)
        return 1
    rec = records[0]
    if args.json:
        print(json.dumps({**rec, "meta": report["meta"], "rows": report["rows"], "failures": report["failures"]}))
    else:
        print(format_item(rec))
    return 1 if "error" in rec or report["failures"] else 0
