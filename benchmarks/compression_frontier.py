"""Every compressed client against fp32 torch eager, side by side in one run: frontier and targets.

Candidates (``mtsc_sdr.compress``; each an artifact under ``--out``/artifacts, measured into its
manifest): torch fp32 (the reference) and int8-torch; ONNX Runtime (CPU) fp32, int8-weight-only,
int8-dynamic, int8-static (QDQ) and fp16; 50 % structured pruning with a recovery fine-tune, fp32
and int8-dynamic; a distilled student with half the LAM encoder layers, fp32 and int8-dynamic;
a fp16 student; and per-task compositions (:data:`COMPOSED`): a student's graphs (fp32, fp16), but
the fp16 full model's for video captions, which the student serves worst, and the int8-dynamic
analog image code.

Measured, in this one process and run:

* **accuracy** on the validation split (``--items`` per task, AWGN at ``--snr-db``, the same noise
  for every candidate), each task's main metric, and its loss against the reference with the
  paired standard error. The loss criterion is the release issue's statistical one
  (``pipeline_agreement.agreement_check``): a text metric's loss within max(2 paired standard
  errors, 1 point), PSNR within 0.3 dB;
* **encode latency** at batch 1, ``--rounds`` rounds over ``--latency-items`` items per task with
  every candidate timed on the same item in turn (so drift on a shared machine hits all alike):
  p50 / p90 over all tasks, and the speedup against torch fp32 eager;
* **weights**: bytes of the client encode's weights as the runtime holds them; **peak memory**:
  peak RSS of a fresh client process (manifest).

Then: the frontier (mean accuracy relative to the reference vs p50 latency; marker size = peak
memory; ``frontier.png``); the planner's choice for every device profile over a sweep of latency
budgets (a 1-point / 0.3 dB loss allowance, the device's memory), each checked to be on that
device's frontier; the issue's targets; and end to end over the software channel, the fastest
client that passes the loss criterion beside the torch client (p50 per VQA item, window 1; items/s
pipelined, ``--window``). Run::

    .venv/bin/python benchmarks/compression_frontier.py [--checkpoint models/minilm] [--json]

Writes ``results/bench/compression_frontier/<model>/frontier.json`` ({meta, rows, checks}) and
``frontier.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from pipeline_agreement import agreement_check, paired_difference

#: (runtime, technique fields) of every candidate; pruning / distillation get --recovery-steps.
CANDIDATES = [
    ("torch", {"quantization": "fp32"}),
    ("torch", {"quantization": "int8-torch"}),
    ("onnxruntime", {"quantization": "fp32"}),
    ("onnxruntime", {"quantization": "int8-weight-only"}),
    ("onnxruntime", {"quantization": "int8-dynamic"}),
    ("onnxruntime", {"quantization": "int8-static"}),
    ("onnxruntime", {"quantization": "fp16"}),
    ("onnxruntime", {"quantization": "fp32", "pruning": 0.5}),
    ("onnxruntime", {"quantization": "int8-dynamic", "pruning": 0.5}),
    ("onnxruntime", {"quantization": "fp32", "distillation": "half"}),
    ("onnxruntime", {"quantization": "int8-dynamic", "distillation": "half"}),
    ("onnxruntime", {"quantization": "fp16", "distillation": "half"}),
]
REFERENCE = "fp32@torch"
#: Per-task compositions (mtsc_sdr.compress.artifact.compose): the distilled student's graphs
#: (fp32, fp16) for every task but these, which take the named candidate's: video captions, which
#: the student serves worst, and the analog image code, whose time is one product with its
#: 3072 x 1022 basis (int8 reads a quarter of the bytes; it has no LAM layers to distil).
COMPOSED = {"caption_video": "fp16@onnxruntime", "reconstruct": "int8-dynamic@onnxruntime"}
STUDENTS = ("+fp32@onnxruntime", "+fp16@onnxruntime")


def label(runtime: str, tech) -> str:
    return f"{tech.name()}@{runtime}"


def readable(directory: Path):
    """The artifact in ``directory`` if it is there and this code reads it; else None (main
    measures it when its manifest has no figures yet)."""
    from mtsc_sdr.compress.artifact import read

    if not (directory / "manifest.json").is_file():
        return None
    try:
        art = read(directory)
    except ValueError:                       # another format version, a file that changed
        return None
    return art


def build_all(ck: str, root: Path, recovery_steps: int, reuse: bool, seed: int) -> dict:
    """Build (or reuse) every candidate's artifact; {label: artifact directory}."""
    from mtsc_sdr.compress.artifact import Technique, build, compose, read
    from mtsc_sdr.compress.distill import n_layers
    from mtsc_sdr.model import load

    layers = n_layers(load(ck).client)
    half = list(range(0, layers, 2))
    out = {}
    for runtime, fields in CANDIDATES:
        fields = dict(fields)
        if fields.get("distillation") == "half":
            fields["distillation"] = half
        if fields.get("pruning") or fields.get("distillation"):
            fields["recovery_steps"] = recovery_steps
        tech = Technique(**fields)
        name = label(runtime, tech)
        directory = root / name.replace("@", "-")
        art = readable(directory) if reuse else None
        if art is not None and art.technique == tech and art.runtime == runtime:
            out[name] = directory
            print(f"reuse {name}: {directory}", flush=True)
            continue
        t0 = time.time()
        shared = next((d for n, d in out.items() if n.split("+")[0] == name.split("+")[0] and "+" in name), None)
        build(ck, directory, tech, runtime, seed=seed, client_from=shared, log=lambda *a: None)
        print(f"built {name} in {time.time() - t0:.0f} s", flush=True)
        out[name] = directory
    for suffix in STUDENTS:
        student = next(n for n in out if n.startswith("distill") and n.endswith(suffix))
        directory = root / (student.replace("@", "-") + "-composed")
        if not (reuse and readable(directory)):
            compose(out[student], {task: out[name] for task, name in COMPOSED.items()}, directory)
            print(f"composed {directory.name}", flush=True)
        out[f"{read(directory).name}@onnxruntime"] = directory
    return out


def pareto(points: dict[str, tuple[float, float]]) -> set[str]:
    """Names not dominated in (latency lower, accuracy higher)."""
    out = set()
    for a, (la, sa) in points.items():
        if not any((lb <= la and sb >= sa and (lb < la or sb > sa)) for b, (lb, sb) in points.items() if b != a):
            out.add(a)
    return out


def plot(points, memory, frontier, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 5.5), layout="constrained")
    mem = np.array([memory[k] for k in points])
    sizes = 30 + 300 * (mem - mem.min()) / max(1e-9, mem.max() - mem.min())
    for (name, (lat, acc)), s in zip(points.items(), sizes):
        ax.scatter(lat, acc, s=s, alpha=0.6, color="C1" if name in frontier else "C0", edgecolor="k")
        ax.annotate(name, (lat, acc), fontsize=7, xytext=(4, 3), textcoords="offset points")
    front = sorted(points[k] for k in frontier)
    ax.plot([p[0] for p in front], [p[1] for p in front], "C1--", lw=1, label="frontier")
    ax.set_xscale("log")
    ax.set_xlabel("client encode latency p50 at batch 1 (ms, log)")
    ax.set_ylabel("accuracy relative to fp32 torch (mean over tasks)")
    ax.set_title(f"{title}: marker size = peak memory ({mem.min():.0f}-{mem.max():.0f} MiB)")
    ax.legend(loc="lower right")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def planner_checks(cands: list[dict], reference: str, tasks) -> dict:
    """For every device profile, plan over a sweep of latency budgets (every candidate's p90 there)
    with a 1-point / 0.3 dB loss allowance; each feasible choice must be on that device's frontier
    (estimated latencies, relative accuracy)."""
    from mtsc_sdr.compress.planner import Constraints, estimate_latency, known_profiles, load_profile, plan

    allow = {t: (0.3 if t == "reconstruct" else 1.0) for t in tasks}
    ref = next(c for c in cands if c["name"] == reference)
    out = {}
    for dev in known_profiles():
        prof = load_profile(dev)
        lat, ok_cands = {}, []
        for c in cands:
            try:
                est = estimate_latency(c, prof)
            except ValueError:
                continue
            if est.p50_ms is None:
                continue
            lat[c["name"]] = (est.p50_ms, est.p90_ms)
            ok_cands.append(c)
        score = {c["name"]: float(np.mean([c["accuracy"][t] / ref["accuracy"][t] for t in tasks])) for c in ok_cands}
        fine = [c for c in ok_cands if all(ref["accuracy"][t] - c["accuracy"][t] <= allow[t] for t in tasks)]
        front = pareto({c["name"]: (lat[c["name"]][1], score[c["name"]]) for c in fine})
        choices = []
        for budget in sorted({round(v[1] * 1.0001, 6) for v in lat.values()}):
            p = plan(prof, ok_cands, Constraints(latency_ms=budget, max_loss=allow, reference=reference))
            if p.feasible:
                choices.append({"budget_ms": budget, "chosen": p.chosen, "on_frontier": p.chosen in front})
        out[dev] = {"budgets": len(choices), "all_on_frontier": all(c["on_frontier"] for c in choices),
                    "choices": choices}
    return out


def markdown(report: dict) -> str:
    """The report's candidate table, per-task speedups and checks as Markdown (benchmarks/COMPRESSION.md)."""
    tasks = list(report["table"][0]["accuracy"])
    short = {"vqa": "VQA %", "caption_image": "image CIDEr", "caption_audio": "audio CIDEr",
             "caption_video": "video CIDEr", "reconstruct": "PSNR dB"}
    out = ["| candidate | weights MB | peak MiB | p50 ms | p90 ms | x torch fp32 | "
           + " | ".join(short.get(t, t) for t in tasks) + " | loss ok | frontier |",
           "| --- |" + " ---: |" * (5 + len(tasks)) + " --- | --- |"]
    for e in report["table"]:
        acc = " | ".join(f"{e['accuracy'][t]['value']:.2f} ({-e['accuracy'][t]['loss']:+.2f})" for t in tasks)
        out.append(f"| {e['name']} | {e['weight_bytes'] / 1e6:.2f} | {e['peak_memory_mb'] or 0:.0f} | "
                   f"{e['latency_ms_p50']:.3f} | {e['latency_ms_p90']:.3f} | {e['speedup_vs_torch_fp32']:.2f} | {acc} | "
                   f"{'yes' if e['loss_within_criterion'] else 'no'} | {'yes' if e['on_frontier'] else ''} |")
    out += ["", "| candidate | " + " | ".join(short.get(t, t) for t in tasks) + " |",
            "| --- |" + " ---: |" * len(tasks)]
    for e in report["table"]:
        out.append(f"| {e['name']} | " + " | ".join(f"{e['speedup_per_task'][t]:.2f}" for t in tasks) + " |")
    out.append("")
    for name, c in report["checks"].items():
        out.append(f"* **{name}**: {'PASS' if c.get('pass', True) else 'FAIL'} "
                   + json.dumps({k: v for k, v in c.items() if k != "pass"}, default=str))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="default: models/default")
    p.add_argument("--items", type=int, default=300, help="validation items per task for accuracy")
    p.add_argument("--snr-db", type=float, default=10.0)
    p.add_argument("--latency-items", type=int, default=20, help="timed items per task per round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--recovery-steps", type=int, default=300, help="fine-tune steps after pruning / distillation")
    p.add_argument("--window", type=int, default=8, help="items in flight for the pipelined throughput")
    p.add_argument("--pipeline-items", type=int, default=100, help="VQA items of each end-to-end run")
    p.add_argument("--no-pipeline", action="store_true", help="skip the end-to-end runs")
    p.add_argument("--reuse", action="store_true", help="reuse artifacts already built and measured under --out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="default results/bench/compression_frontier/<model>")
    p.add_argument("--json", action="store_true")
    p.add_argument("--markdown-from", metavar="JSON", help="print a written report's tables as Markdown and stop")
    args = p.parse_args(argv)
    if args.markdown_from:
        print(markdown(json.loads(Path(args.markdown_from).read_text())))
        return 0

    import torch

    from mtsc_sdr import tasks as task_table
    from mtsc_sdr.bench.cli import time_pipeline
    from mtsc_sdr.compress.artifact import load_client
    from mtsc_sdr.compress.artifact import candidate_record
    from mtsc_sdr.compress.measure import encode_latency, measure, quality
    from mtsc_sdr.model import load
    from mtsc_sdr.model.checkpoint import shipped_model_dir
    from mtsc_sdr.report import git_commit, percentiles, row, run_meta

    torch.set_num_threads(1)
    ck = args.checkpoint or str(shipped_model_dir())
    model_name = Path(ck).name
    out = Path(args.out or f"results/bench/compression_frontier/{model_name}")
    out.mkdir(parents=True, exist_ok=True)
    tasks = list(task_table.names())
    dirs = build_all(ck, out / "artifacts", args.recovery_steps, args.reuse, args.seed)

    # accuracy (per item, paired) and the manifests' figures
    model = load(ck).eval()
    scores, manifests = {}, {}
    for name, d in dirs.items():
        from mtsc_sdr.compress.artifact import read

        art = read(d)
        if args.reuse and art.manifest.get("accuracy"):
            lc = load_client(ck, art.runtime, d)
            scores[name] = quality(model, lc, tasks, args.items, args.snr_db, args.seed)
        else:
            art, scores[name] = measure(ck, d, n_items=args.items, snr_db=args.snr_db, seed=args.seed,
                                        log=lambda *a: None)
        manifests[name] = art.manifest
        print(f"measured {name}: " + ", ".join(f"{t} {v.mean():.2f}" for t, v in scores[name].items()), flush=True)

    # latency, side by side
    loaded = {name: load_client(ck, manifests[name]["runtime"], d) for name, d in dirs.items()}
    times = encode_latency(loaded, tasks, args.latency_items, args.rounds, warmup=3, seed=11)
    del loaded
    lat = {k: percentiles([t for v in times[k].values() for t in v]) for k in times}
    ref_p50 = lat[REFERENCE]["p50"]

    rows, table = [], []
    for name in dirs:
        m = manifests[name]
        loss, ok = {}, True
        for t in tasks:
            metric = task_table.get(t).main_metric
            cand, refv, diff, se = paired_difference(metric, scores[REFERENCE][t], scores[name][t])
            passed, allowance = agreement_check(diff, se, metric, "software")
            passed = passed or diff > 0          # better than the reference is no loss
            loss[t] = {"value": round(cand, 3), "loss": round(-diff, 3), "se": None if se is None else round(se, 3),
                       "allowance": round(allowance, 3), "pass": bool(passed)}
            ok &= passed
            rows.append(row("mtsc", t, "awgn", args.snr_db, metric, cand, candidate=name, loss=-diff, se=se))
        per_task = {t: round(float(np.median(times[REFERENCE][t]) / np.median(times[name][t])), 3)
                    for t in tasks}
        entry = {"name": name, "runtime": m["runtime"], "technique": m["technique"],
                 "weight_bytes": m["weight_bytes"], "peak_memory_mb": m["peak_memory_mb"].get("x86-cpu"),
                 "latency_ms_p50": round(lat[name]["p50"], 4), "latency_ms_p90": round(lat[name]["p90"], 4),
                 "speedup_vs_torch_fp32": round(ref_p50 / lat[name]["p50"], 3), "speedup_per_task": per_task,
                 "accuracy": loss, "loss_within_criterion": bool(ok)}
        table.append(entry)
        for metric, value in (("latency_ms_p50", lat[name]["p50"]), ("latency_ms_p90", lat[name]["p90"]),
                              ("weight_bytes", m["weight_bytes"]), ("peak_rss_mb", entry["peak_memory_mb"])):
            rows.append(row("mtsc", "all", "none", None, metric, value, candidate=name))
    by = {e["name"]: e for e in table}
    ref = by[REFERENCE]
    rel = {e["name"]: float(np.mean([e["accuracy"][t]["value"] / ref["accuracy"][t]["value"] for t in tasks]))
           for e in table}
    points = {e["name"]: (e["latency_ms_p50"], rel[e["name"]]) for e in table}
    frontier = pareto(points)
    for e in table:
        e["relative_accuracy"], e["on_frontier"] = round(rel[e["name"]], 4), e["name"] in frontier
    plot(points, {e["name"]: e["peak_memory_mb"] or 0.0 for e in table}, frontier, out / "frontier.png", model_name)

    # the planner on every device profile, from the manifests (latency: this run's side-by-side p50/p90)
    cands = []
    for e in table:
        c = candidate_record(manifests[e["name"]], dirs[e["name"]])
        c["accuracy"] = {t: e["accuracy"][t]["value"] for t in tasks}
        c["latency_ms"] = {"x86-cpu": {"p50": e["latency_ms_p50"], "p90": e["latency_ms_p90"]}}
        cands.append(c)
    planned = planner_checks(cands, REFERENCE, tasks)

    # targets
    passing = [e for e in table if e["loss_within_criterion"]]
    fastest = max(passing, key=lambda e: e["speedup_vs_torch_fp32"]) if passing else None
    checks = {"fastest_client": {"name": fastest and fastest["name"],
                                 "speedup_vs_torch_fp32": fastest and fastest["speedup_vs_torch_fp32"],
                                 "pass": bool(fastest and fastest["speedup_vs_torch_fp32"] >= 3.0),
                                 "target": ">= 3x at batch 1 with <= 1 point / 0.3 dB loss (default model)"}}
    for runtime, q in (("onnxruntime", "int8-dynamic"), ("onnxruntime", "int8-static"), ("torch", "int8-torch")):
        f32, i8 = by.get(f"fp32@{runtime}"), by.get(f"{q}@{runtime}")
        if f32 and i8:
            checks[f"{q}_vs_fp32_in_{runtime}"] = {
                "speedup": round(f32["latency_ms_p50"] / i8["latency_ms_p50"], 3),
                "weights_smaller": round(f32["weight_bytes"] / i8["weight_bytes"], 3),
                "loss_within_criterion": i8["loss_within_criterion"],
                "pass": bool(f32["latency_ms_p50"] >= 1.5 * i8["latency_ms_p50"]
                             and f32["weight_bytes"] >= 3.5 * i8["weight_bytes"] and i8["loss_within_criterion"]),
                "target": "int8 >= 1.5x faster than fp32 in the same runtime, >= 3.5x smaller, <= 1 point loss (minilm)"}
    pr = by.get("prune50+int8-dynamic@onnxruntime")
    if pr:
        checks["prune50_int8"] = {"weights_smaller_than_torch_fp32": round(ref["weight_bytes"] / pr["weight_bytes"], 3),
                                  "loss_per_task": {t: pr["accuracy"][t]["loss"] for t in tasks},
                                  "pass": ref["weight_bytes"] >= 5 * pr["weight_bytes"], "target": ">= 5x smaller"}
    checks["planner_on_frontier"] = {"pass": all(v["all_on_frontier"] for v in planned.values()),
                                     "devices": {k: {"budgets": v["budgets"], "all_on_frontier": v["all_on_frontier"]}
                                                 for k, v in planned.items()}}
    if not args.no_pipeline and fastest is not None:
        e2e = {}
        for name in dict.fromkeys([REFERENCE, fastest["name"]]):
            m = manifests[name]
            art = None if name == REFERENCE else str(dirs[name])
            prs = time_pipeline(ck, "fp32", ("vqa",), args.pipeline_items, args.window, args.snr_db,
                                out / "runs", runtime=m["runtime"], artifact=art)
            rows += [dict(r, candidate=name) for r in prs]
            e2e[name] = {"vqa_p50_ms": next(r["value"] for r in prs if r["metric"] == "latency_ms_p50"
                                            and r["task"] in ("vqa", "all") and r.get("stage") == "total"),
                         "vqa_items_per_s": next(r["value"] for r in prs if r["metric"] == "items_per_s")}
        checks["end_to_end"] = {"clients": e2e, "window": args.window}

    report = {"meta": {**run_meta(vars(args), {"seed": args.seed}), "commit": git_commit()}, "table": table,
              "planner": planned,
              "rows": rows, "checks": checks}
    (out / "frontier.json").write_text(json.dumps(report, indent=1, default=str))
    if args.json:
        print(json.dumps(report, default=str))
        return 0
    print(f"\n{model_name}: every candidate against {REFERENCE} (p50 {ref_p50:.3f} ms), {args.items} val items per "
          f"task at {args.snr_db:g} dB AWGN")
    head = f"{'candidate':38s} {'weights MB':>10s} {'peak MiB':>8s} {'p50 ms':>8s} {'p90 ms':>8s} {'x fp32':>7s}  " + \
        "  ".join(f"{t[:12]:>18s}" for t in tasks) + "  loss ok  frontier"
    print(head)
    for e in table:
        acc = "  ".join(f"{e['accuracy'][t]['value']:8.2f} ({-e['accuracy'][t]['loss']:+6.2f})" for t in tasks)
        print(f"{e['name']:38s} {e['weight_bytes'] / 1e6:10.2f} {e['peak_memory_mb'] or 0:8.0f} "
              f"{e['latency_ms_p50']:8.3f} {e['latency_ms_p90']:8.3f} {e['speedup_vs_torch_fp32']:7.2f}  {acc}  "
              f"{'yes' if e['loss_within_criterion'] else 'NO':>7s}  {'*' if e['on_frontier'] else ''}")
    for name, c in checks.items():
        print(f"{'PASS' if c.get('pass', True) else 'FAIL'} {name}: "
              + json.dumps({k: v for k, v in c.items() if k != "pass"}, default=str))
    print(f"wrote {out / 'frontier.json'} and {out / 'frontier.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
