"""``mtsc-sdr eval``: a checkpoint per task and SNR, beside the separate-coding baseline and the
codec-at-capacity bound, on the same items and the same symbol budget per item.

Systems (the ``system`` of each report row):

* ``mtsc``: the model through the torch channel (:meth:`MTSCModel.predict`) at the SNR
  (Es/N0 per complex symbol), AWGN or Rician block fading (one gain per item, K ``--k-factor-db``,
  genie equaliser), ``ModelConfig.symbols_per_item`` symbols per item.
* ``separate``: :class:`mtsc_sdr.baselines.SeparateCodingBaseline` with the same budget. For
  ``reconstruct`` the received image is the output. For ``caption_image`` the image is sent with
  the whole budget; for ``vqa`` the question gets ``--question-share`` of the budget (raw DEFLATE,
  most robust MCS that carries it) and the image the rest. The receiver then runs *our* model on the
  decoded inputs without a channel in between (clean path: client and server halves back to back,
  conditioned on ``CLEAN_SNR_DB``, no noise): that is "a LAM at the receiver". A failed image
  decode gives a mid-grey image, a failed question an empty one. ``delivery_rate`` rows give the
  share of items whose inputs all arrived.
  The baseline has no audio or video codec: ``caption_audio`` and ``caption_video`` have no
  ``separate`` rows, and ``meta.skipped`` says so (:attr:`mtsc_sdr.tasks.TaskSpec.no_baseline`).
* ``mtsc_fixed`` / ``mtsc_random`` (``--selection``, an ablation): our model keeping the first
  / random tokens instead of the most important ones, same rate and budget.
* ``capacity`` (``reconstruct`` only): :func:`mtsc_sdr.baselines.codec_at_capacity`, the best
  codec setting that fits the Shannon capacity of the budget (ergodic for Rician).

Every row of a metric that is a mean over items (accuracy, CIDEr-D, PSNR, SSIM; not corpus
BLEU) also has ``std_error``, the standard error of that mean over the ``n`` items, and with
``item_values=True`` the ``item_values`` themselves; then our image rows over a fading channel
also have ``item_snr_db``, the SNR each item arrived with (the per-item fading is a large part of
their spread; ``benchmarks/quality_vs_snr.py`` runs the linear scheme at the same SNRs).
``item_outputs=True`` keeps our system's
outputs of the tasks with JSON outputs (text) and their references in ``meta``, for comparisons
that score them again (corpus BLEU of paired items: ``benchmarks/pipeline_agreement.py``).

Per question type: a task with a question (VQA) whose examples carry a ``question_type``
(:attr:`mtsc_sdr.data.TaskExample.question_type`: count, colour, shape, position, size, existence
in the built-in world; VQAv2's answer types) also gets, for every system and SNR, one row per
type of its main metric over the items of that type: metric ``<main metric>_<type>`` (e.g.
``accuracy_count``, ``accuracy_yes_no``; the type lower-cased, runs of other characters turned
into ``_``), with ``question_type`` (the type as the data names it), ``n`` (that type's items) and
``std_error``, but no ``item_values`` (those of the task's own row cover every item). Rows of the
whole task keep their metric names, so a reader that knows nothing of types is unaffected.

A question-only model (``TrainConfig.blind``, read from the checkpoint's ``trainer_state.json``;
``blind=`` overrides) is evaluated as it was trained: the input of every task with a question
is zeroed (all systems), and the meta's config says ``blind``.

Outputs in ``--out`` (default ``results/eval``): ``eval.json`` ({meta, rows}, DESIGN.md's schema)
and ``eval_<task>.png`` (each metric vs SNR, all systems on the same axes); a table on stdout
(stderr with ``--json``, where stdout gets the JSON object).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import numpy as np

from mtsc_sdr import tasks as task_table
from mtsc_sdr.baselines import SeparateCodingBaseline, codec_at_capacity
from mtsc_sdr.config import to_dict
from mtsc_sdr.data import PHRASING_SPLITS, DataError, collate, domain_names, zero_question_inputs
from mtsc_sdr.data.sources import BUILTIN, DataSource, InputSizes
from mtsc_sdr.metrics import METRIC_UNITS, standard_error
from mtsc_sdr.model import load
from mtsc_sdr.model.checkpoint import shipped_model_dir
from mtsc_sdr.options import add_checkpoint, add_data, add_json, add_seed, add_threads
from mtsc_sdr.report import row, run_meta
from mtsc_sdr.runtime.outputs import outputs_for

# torch, the quantized client, tqdm and matplotlib are imported where they are used: `demo`
# imports this module and `mtsc-sdr eval --help` must not pay for torch or matplotlib.

CHANNELS = ("awgn", "rician")
SELECTIONS = ("importance", "fixed", "random")
#: SNR the model is conditioned on for the baseline's clean receiver path (top of the training range).
CLEAN_SNR_DB = 20.0


def parse_snr_list(text: str) -> list[float]:
    """``"start:stop:step"`` (inclusive of stop when on the grid) or a comma list -> SNRs in dB.

    >>> parse_snr_list("-5:20:5")
    [-5.0, 0.0, 5.0, 10.0, 15.0, 20.0]
    >>> parse_snr_list("0,10")
    [0.0, 10.0]
    """
    text = str(text).strip()
    if not text:
        raise ValueError("empty SNR list")
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            start, stop = parts[0], parts[1]
            step = parts[2] if len(parts) == 3 else 1.0
            if step <= 0 or not all(map(math.isfinite, parts)):
                raise ValueError
            if stop < start:
                raise ValueError
            n = int(math.floor((stop - start) / step + 1e-9)) + 1
            return [round(start + i * step, 10) for i in range(n)]
        return [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ValueError(f"bad SNR list {text!r}: expected start:stop:step with step > 0 and stop >= start "
                         f"(e.g. -5:20:5) or a comma list (e.g. 0,10)") from None


def _seed(*parts) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def _snr_key(snr_db: float) -> int:
    return int(round(snr_db * 100)) + 100_000


def _chunks(seq, n):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def _model_outputs(model, task, items, snr_db, channel, k_factor_db, seed, batch_size, budget):
    """Our system: one output per item (:meth:`mtsc_sdr.runtime.outputs.ValueOutputs.items`:
    strings, or uint8 (H, W, 3) images) and the SNR each item arrived with (dB, after fading: the
    base station's estimate), as lists."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    kind = outputs_for(task)
    out: list = []
    arrived: list[float] = []
    with torch.no_grad():
        for chunk in _chunks(items, batch_size):
            batch = collate(chunk)
            res = model(batch, task, torch.full((len(chunk),), float(snr_db)),
                        fading=None if channel == "awgn" else "rician", k_factor_db=k_factor_db,
                        generator=gen, budget=budget)
            out += kind.items(model.client.decode(task, res.downlink, questions=batch.get("question"),
                                                  contexts=batch.get("local_context")))
            arrived += [float(v) for v in res.snr_est_db]
    return out, arrived


def clean_outputs(model, task, items, batch_size):
    """Our model at the receiver on already-decoded inputs: client and server halves back to
    back, no channel, conditioned on :data:`CLEAN_SNR_DB`."""
    import torch

    kind = outputs_for(task)
    out: list = []
    with torch.no_grad():
        for chunk in _chunks(items, batch_size):
            batch = collate(chunk)
            snr = torch.full((len(chunk),), CLEAN_SNR_DB)
            up = model.client.encode(batch, task, snr)
            down = model.server(up.symbols, up.rate_idx, up.n_tokens, snr, up.task_ids)
            pred = model.client.decode(task, down, questions=batch.get("question"), contexts=batch.get("local_context"))
            out += kind.items(pred)
    return out


def _separate(model, task, items, snr_db, channel, k_factor_db, seed, budget, question_share, batch_size):
    """(outputs, delivery rate) of the separate-coding baseline; see the module docstring. A task
    with a question sends it too; for an image output the received image is the output."""
    spec = task_table.get(task)
    if spec.question:
        q_syms = max(1, int(round(budget * question_share)))
        img_link = SeparateCodingBaseline(budget - q_syms, seed=_seed(seed, 1), k_factor_db=k_factor_db)
        txt_link = SeparateCodingBaseline(q_syms, seed=_seed(seed, 2), k_factor_db=k_factor_db)
    else:
        img_link = SeparateCodingBaseline(budget, seed=_seed(seed, 1), k_factor_db=k_factor_db)
        txt_link = None
    received, ok = [], 0
    for e in items:
        img, info = img_link.transmit_image(e.image, snr_db, channel)
        good = bool(info["success"])
        if spec.output == "image":
            received.append(img)
        else:
            q = e.question
            if txt_link is not None:
                q, qinfo = txt_link.transmit_text(e.question, snr_db, channel)
                good = good and q is not None
                q = q or ""
            received.append(replace(e, image=img, question=q))
        ok += good
    rate = ok / max(1, len(items))
    if spec.output == "image":
        return received, rate
    return clean_outputs(model, task, received, batch_size), rate


def question_type_metric(metric: str, question_type: str) -> str:
    """The row metric of ``metric`` over the items of one question type: ``accuracy`` and
    ``"yes/no"`` give ``accuracy_yes_no``."""
    return f"{metric}_{re.sub(r'[^a-z0-9]+', '_', question_type.lower()).strip('_')}"


def checkpoint_is_blind(checkpoint: str | Path) -> bool:
    """Whether ``checkpoint`` was trained question-only: its ``trainer_state.json`` has
    ``train_config.blind`` true (False without a trainer state, e.g. a bare release model)."""
    from mtsc_sdr.train.trainer import read_state

    state = read_state(Path(checkpoint))
    return bool(state and state.get("train_config", {}).get("blind", False))


def _capacity(items, snr_db, channel, k_factor_db, budget):
    return [codec_at_capacity(e.image, snr_db, budget, channel, k_factor_db)[0] for e in items]


def evaluate(checkpoint: str | Path, snrs: list[float], *, channel: str = "awgn",
             tasks: Optional[tuple[str, ...]] = None, n_per_task: int = 100, split: str = "test", seed: int = 0,
             baseline: bool = True, k_factor_db: float = 6.0, question_share: float = 0.5,
             batch_size: int = 64, threads: Optional[int] = 2, progress: bool = False,
             device: str = "cpu", selection: str = "importance",
             budget: Optional[int] = None, item_values: bool = False, precision: str = "fp32",
             noise_seed: Optional[int] = None, data: tuple[str, ...] = (BUILTIN,),
             item_outputs: bool = False, blind: Optional[bool] = None, domain: str = "default") -> dict[str, Any]:
    """Run the evaluation; returns the report ``{"meta", "rows"}`` (see the module docstring).

    ``tasks``: task names (None: every task ``data`` feeds; with the built-in world, every
    registered task, :func:`mtsc_sdr.tasks.names`). ``data``: ``builtin`` and/or ``NAME=PATH``
    specs (:class:`mtsc_sdr.data.sources.DataSource`, at the checkpoint's input sizes); the
    ``n_per_task`` items of a real data set are drawn by ``seed`` from its split and decoded once.
    ``split``: ``val``, ``test`` or ``test_phrasing`` (built-in world: the test items worded with
    held-out question and caption templates; same items and order as ``test``, so the two are
    paired per item). ``domain``: the built-in world's domain (:mod:`mtsc_sdr.data.domains`; the
    same content drawn in another style, e.g. one phase I never saw).

    ``selection`` (ablation): which tokens the JSC encoder keeps -- ``importance`` (the model,
    rows ``mtsc``), ``fixed`` (the first positions, rows ``mtsc_fixed``) or ``random`` (rows
    ``mtsc_random``); same rate, budget and power either way. ``budget``: complex symbols per item
    for every system (None: the checkpoint's ``symbols_per_item``). ``item_values``: rows of the
    mean-over-items metrics also list every item's score (same items, same order, at every SNR
    and for every system), for paired comparisons. ``precision``: ``int8`` evaluates the
    post-training quantized client half (:mod:`mtsc_sdr.compress.quantize`); rows get a
    ``precision`` key either way. ``noise_seed`` (default ``seed``) seeds the channel draws alone:
    the same items under other noise, to see how much a metric moves with the noise.
    ``item_outputs``: ``meta["item_outputs"]``, one ``{"task", "snr_db", "outputs"}`` per task
    and SNR of our system (``outputs`` in the order of ``meta["item_ids"]``), and
    ``meta["item_references"]`` (per task, each item's references), for the tasks whose outputs
    are JSON values (not images). ``blind``: zero the input of tasks with a question (None: the
    checkpoint's ``TrainConfig.blind``)."""
    import torch

    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}")
    if threads:
        torch.set_num_threads(threads)
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    blind = checkpoint_is_blind(checkpoint) if blind is None else bool(blind)
    model = load(checkpoint).to(device).eval()
    source = DataSource(data, InputSizes.of(model.cfg), domain=domain)
    tasks = tuple(task_table.check_names(source.tasks if tasks is None else tasks))
    source.check_tasks(tasks)
    if precision == "int8":
        from mtsc_sdr.compress.quantize import quantize_client

        if device != "cpu":
            raise ValueError("the int8 client runs on the CPU (torch._int_mm); use --device cpu")
        model.client = quantize_client(model.client)
    elif precision != "fp32":
        raise ValueError(f"precision must be 'fp32' or 'int8', got {precision!r}")
    model.client.jsc_encoder.selection = selection
    model.client.jsc_encoder.selection_generator = torch.Generator().manual_seed(_seed(seed, 0x5E1))
    ours = "mtsc" if selection == "importance" else f"mtsc_{selection}"
    budget = model.cfg.symbols_per_item if budget is None else int(budget)
    rows: list[dict] = []
    skipped: list[str] = []
    counts: dict[str, int] = {}
    item_ids: dict[str, list[str]] = {}
    kept_outputs: list[dict] = []
    kept_references: dict[str, list] = {}
    work = [(t, s) for t in tasks for s in snrs]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(work), desc="eval", unit="point", file=sys.stderr, dynamic_ncols=True)
    for task in tasks:
        spec, kind = task_table.get(task), outputs_for(task)
        items = list(source.examples(split, task, n_per_task, seed))   # n_per_task decoded items
        if blind:
            items = zero_question_inputs(items, task)
        counts[task] = len(items)
        types = [e.question_type for e in items] if spec.question else []
        by_type = {t: np.array([i for i, u in enumerate(types) if u == t]) for t in sorted({t for t in types if t})}
        item_ids[task] = [e.item_id for e in items]
        keep = item_outputs and spec.output != "image"
        if keep:
            kept_references[task] = [list(e.references) for e in items]
        if baseline and spec.no_baseline:
            skipped.append(f"separate/{task}: {spec.no_baseline}; no rows")
        for snr in snrs:
            s = _seed(seed if noise_seed is None else noise_seed, spec.id, _snr_key(snr),
                      CHANNELS.index(channel))

            def add(system, scores, **extra):
                for metric, (value, per_item) in scores.items():
                    more = dict(extra)
                    if per_item is not None:
                        more["std_error"] = standard_error(per_item)
                        if item_values:
                            more["item_values"] = [float(v) for v in per_item]
                    rows.append(row(system, task, channel, float(snr), metric, float(value),
                                    unit=METRIC_UNITS.get(metric), n=len(items), precision=precision, **more))
                main = scores.get(spec.main_metric, (None, None))[1]     # per-item scores
                for qtype, idx in by_type.items():
                    if main is None:
                        break
                    vals = np.asarray(main, dtype=np.float64)[idx]
                    rows.append(row(system, task, channel, float(snr), question_type_metric(spec.main_metric, qtype),
                                    float(vals.mean()), unit=METRIC_UNITS.get(spec.main_metric), n=len(vals),
                                    precision=precision, question_type=qtype, std_error=standard_error(vals),
                                    **extra))

            outs, arrived = _model_outputs(model, task, items, snr, channel, k_factor_db, s, batch_size, budget)
            if keep:
                kept_outputs.append({"task": task, "snr_db": float(snr), "outputs": list(outs)})
            faded = item_values and spec.output == "image" and channel != "awgn"
            add(ours, kind.score(task, outs, items), symbols_per_item=budget,
                **({"item_snr_db": arrived} if faded else {}))
            if baseline and not spec.no_baseline:
                outs, rate = _separate(model, task, items, snr, channel, k_factor_db, s, budget,
                                       question_share, batch_size)
                add("separate", kind.score(task, outs, items), symbols_per_item=budget)
                rows.append(row("separate", task, channel, float(snr), "delivery_rate", rate, unit="fraction",
                                n=len(items), symbols_per_item=budget))
                if spec.output == "image":
                    add("capacity", kind.score(task, _capacity(items, snr, channel, k_factor_db, budget), items),
                        symbols_per_item=budget)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    config = {"checkpoint": str(checkpoint), "snr_db": list(snrs), "channel": channel, "tasks": list(tasks),
              "n_per_task": n_per_task, "items": counts, "split": split, "domain": domain, "baseline": baseline,
              "k_factor_db": k_factor_db, "question_share": question_share, "clean_snr_db": CLEAN_SNR_DB,
              "symbols_per_item": budget, "selection": selection, "precision": precision, "noise_seed": noise_seed,
              "blind": blind,
              "data": {t: source.origin(t) for t in tasks}, "model": json.loads(json.dumps(_model_dict(model)))}
    meta = run_meta(config, {"seed": seed})
    meta["skipped"] = skipped
    meta["item_ids"] = item_ids           # per task, in the order of the rows' item_values
    if item_outputs:
        meta["item_outputs"] = kept_outputs
        meta["item_references"] = kept_references
    return {"meta": meta, "rows": rows}


def _model_dict(model) -> dict:
    return to_dict(model.cfg)


def format_table(rows: list[dict]) -> str:
    """One line per (task, metric, system), one column per SNR."""
    snrs = sorted({r["snr_db"] for r in rows})
    keys: dict[tuple, dict] = {}
    for r in rows:
        keys.setdefault((r["task"], r["metric"], r["system"]), {})[r["snr_db"]] = r["value"]
    w = max([9] + [len(k[2]) for k in keys])
    head = f"{'task':<14} {'metric':<14} {'system':<{w}}" + "".join(f"{s:>9g}" for s in snrs)
    lines = [f"SNR (dB) -> channel {rows[0]['channel'] if rows else ''}", head, "-" * len(head)]
    order = {"mtsc": 0, "separate": 1, "capacity": 2}
    for (task, metric, system), vals in sorted(keys.items(), key=lambda kv: (task_table.names().index(kv[0][0]), kv[0][1],
                                                                           order.get(kv[0][2], 9))):
        cells = "".join(f"{vals[s]:>9.3f}" if s in vals and vals[s] is not None else f"{'-':>9}" for s in snrs)
        lines.append(f"{task:<14} {metric:<14} {system:<{w}}{cells}")
    return "\n".join(lines)


def plot(rows: list[dict], out: Path) -> list[Path]:
    """``eval_<task>.png`` per task: each metric vs SNR, every system on the same axes (rows of
    one channel; per-question-type rows are left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    styles = {"mtsc": dict(marker="o"), "separate": dict(marker="s", linestyle="--"),
              "capacity": dict(marker="^", linestyle=":", color="k")}
    rows = [r for r in rows if "question_type" not in r]    # per-type rows: in the table, not the plots
    for task in [t for t in task_table.names() if any(r["task"] == t for r in rows)]:
        metrics = [m for m in dict.fromkeys(r["metric"] for r in rows if r["task"] == task)]
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.6), squeeze=False)
        for ax, metric in zip(axes[0], metrics):
            for system in ("mtsc", "separate", "capacity"):
                pts = sorted((r["snr_db"], r["value"]) for r in rows if r["task"] == task and r["metric"] == metric
                             and r["system"] == system and r["value"] is not None and math.isfinite(r["value"]))
                if pts:
                    ax.plot(*zip(*pts), label=system, **styles[system])
            ch = next(r["channel"] for r in rows if r["task"] == task)
            ax.set(xlabel=f"SNR (dB, {ch})", ylabel=metric, title=f"{task}: {metric}")
            ax.grid(True, alpha=0.3)
            ax.legend()
        fig.tight_layout()
        path = out / f"eval_{task}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files.append(path)
    return files


def allow_negative_snr_lists(p: argparse.ArgumentParser) -> None:
    """Let ``--snr-db -5:20:5`` / ``-5,0`` through as a value rather than an option."""
    p._negative_number_matcher = re.compile(r"^-\d[\d.:,\-]*$|^-\.\d[\d.:,\-]*$")


def add_arguments(p: argparse.ArgumentParser) -> None:
    allow_negative_snr_lists(p)
    add_checkpoint(p, metavar="DIR")
    p.add_argument("--snr-db", default="-5:20:5", help="start:stop:step (inclusive) or a comma list, dB")
    p.add_argument("--channel", choices=CHANNELS, default="awgn")
    p.add_argument("--tasks", nargs="+", choices=task_table.names(), default=None,
                   help="tasks evaluated (default: every task the --data sets feed; all with builtin)")
    add_data(p)
    p.add_argument("--n-per-task", type=int, default=100, metavar="N", help="items per task")
    p.add_argument("--split", choices=("val", "test", *PHRASING_SPLITS), default="test",
                   help="items to evaluate; test_phrasing: the test items worded with question and "
                        "caption templates training never sees")
    p.add_argument("--domain", choices=domain_names(), default="default",
                   help="variant of the built-in world: default (phase I's), light (drawn on a light "
                        "background) or new_questions (question types phase I never asks); same content "
                        "and words")
    add_seed(p)
    p.add_argument("--k-factor-db", type=float, default=6.0, help="Rician K (with --channel rician)")
    p.add_argument("--question-share", type=float, default=0.5,
                   help="separate baseline, vqa: share of the symbol budget for the question")
    p.add_argument("--batch-size", type=int, default=64)
    add_threads(p, 2, help=None)
    p.add_argument("--device", default="cpu", help="torch device for our model, e.g. cuda")
    p.add_argument("--out", default="results/eval", metavar="DIR", help="where eval.json and the plots go")
    p.add_argument("--no-baseline", action="store_true", help="only our model")
    p.add_argument("--budget", type=int, default=None, metavar="SYMBOLS",
                   help="complex symbols per item for every system (default: the model's symbols_per_item)")
    p.add_argument("--selection", choices=SELECTIONS, default="importance",
                   help="ablation: tokens kept by the JSC encoder (fixed/random instead of importance)")
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                   help="our client half in fp32 or post-training int8 (the baseline's receiver runs the same client half)")
    add_json(p)


def run(args: argparse.Namespace) -> int:
    try:
        snrs = parse_snr_list(args.snr_db)
    except ValueError as exc:
        print(f"mtsc-sdr eval: --snr-db: {exc}", file=sys.stderr)
        return 2
    if args.n_per_task < 1 or not 0 < args.question_share < 1:
        print("mtsc-sdr eval: --n-per-task must be >= 1 and --question-share in (0, 1)", file=sys.stderr)
        return 2
    ckpt = Path(args.checkpoint) if args.checkpoint else shipped_model_dir()
    if not (ckpt / "config.json").is_file():
        print(f"mtsc-sdr eval: no checkpoint at {ckpt} (train one with `mtsc-sdr train`)", file=sys.stderr)
        return 2
    data = tuple(args.data or (BUILTIN,))
    try:
        DataSource(data).check_tasks(args.tasks or ())
    except ValueError as exc:      # a bad --data spec or a task no data set feeds
        print(f"mtsc-sdr eval: --data: {exc}", file=sys.stderr)
        return 2
    try:
        report = evaluate(ckpt, snrs, channel=args.channel, tasks=args.tasks and tuple(args.tasks),
                          n_per_task=args.n_per_task, split=args.split, seed=args.seed,
                          baseline=not args.no_baseline, k_factor_db=args.k_factor_db,
                          question_share=args.question_share, batch_size=args.batch_size, threads=args.threads,
                          progress=sys.stderr.isatty(), device=args.device, selection=args.selection,
                          budget=args.budget, precision=args.precision, data=data, domain=args.domain)
    except DataError as exc:       # a data set's layout or media: the message names both
        print(f"mtsc-sdr eval: data error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(report, indent=1))
    files = plot(report["rows"], out)
    stream = sys.stderr if args.json else sys.stdout
    print(format_table(report["rows"]), file=stream)
    for note in report["meta"]["skipped"]:
        print(f"note: {note}", file=stream)
    print(f"wrote {out / 'eval.json'} and {', '.join(str(f) for f in files)}", file=stream)
    if args.json:
        print(json.dumps(report))
    return 0
