"""The quantized client against fp32, side by side in one run, and the end-to-end targets.

Targets of the split-testbed issue, all measured here on the default model:

1. ``weights``: int8 client weights <= 0.3 x fp32 (bytes of parameters and buffers).
2. ``encode_speed``: int8 client encode (modality encoders + LAM encoder + JSC encoder, one item at
   a time, p50 over all tasks) >= 1.5 x faster than fp32, both timed in this process, alternating.
   Printed with it: the share of fp32 encode time in matrix products and convolutions and the
   speedup int8 could reach if they cost nothing (:func:`gemm_share`).
3. ``quantization_loss``: on the validation split through the torch channel (AWGN, same items, same
   noise), the int8 client loses <= 1 point of accuracy / BLEU / CIDEr and <= 0.3 dB PSNR against fp32
   (the worst task and SNR), each figure averaged over ``--noise-seeds`` channel draws. Quantization flips a few generated tokens either way, so each loss is
   printed with its standard error, paired over the items.
4. ``e2e_latency``: over the software channel (separate processes), the p50 latency of one VQA item
   with nothing else in flight is <= 100 ms (int8 client, the default).
5. ``e2e_throughput``: with items pipelined (``--window`` in flight), >= 20 VQA items/s.

Machines are shared and noisy: the ratios (1, 2) are what to read; 4 and 5 are absolute and say
what this machine did. Run::

    .venv/bin/python benchmarks/client_latency.py [--items 30] [--n-quality 1000] [--json]

Writes ``results/bench/client_latency/client_latency.json`` ({meta, rows, checks}).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TEXT_METRICS = ("accuracy", "bleu", "cider")


def gemm_share(checkpoint: str, tasks, items: int, warmup: int) -> dict:
    """Where the fp32 client's encode time goes, from torch.profiler over ``items`` items per task:
    the share of operator time in matrix products (addmm / mm / bmm) and in convolutions, and the
    speedup int8 could reach at most if those cost nothing at all (Amdahl: 1 / (1 - share)).

    The denominator is the operators' self time, which leaves out Python between operators, so
    the shares are if anything too high and the ceilings too generous to int8."""
    from torch.profiler import profile

    from mtsc_sdr.compress.artifact import load_client
    from mtsc_sdr.data import examples
    from mtsc_sdr.phy.tx import Transmitter
    from mtsc_sdr.runtime.client import encode_item

    encoder, tx = load_client(checkpoint).encoder, Transmitter()
    exs = [ex for t in tasks for ex in examples("val", [t], n_per_task=warmup + items, seed=1)]
    for ex in exs[:warmup]:
        encode_item(encoder, tx, ex, 10.0, None, 1, 0, 0)
    with profile() as prof:
        for ex in exs:
            encode_item(encoder, tx, ex, 10.0, None, 1, 0, 0)
    ops = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in ops)
    gemm = sum(e.self_cpu_time_total for e in ops if e.key in ("aten::addmm", "aten::mm", "aten::bmm"))
    conv = sum(e.self_cpu_time_total for e in ops if "conv" in e.key)
    return {"fp32_gemm_share": round(gemm / total, 3), "fp32_conv_share": round(conv / total, 3),
            "ceiling_free_gemm": round(total / (total - gemm), 3),
            "ceiling_free_gemm_and_conv": round(total / (total - gemm - conv), 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--items", type=int, default=30, help="timed items per task")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--n-quality", type=int, default=1000,
                   help="validation items per task for the quality delta (1000: all of them; 539 patches)")
    p.add_argument("--snr-db", type=float, nargs="+", default=[0.0, 10.0], help="quality delta SNRs")
    p.add_argument("--noise-seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="channel noise draws the quality delta is averaged over")
    p.add_argument("--window", type=int, default=8)
    p.add_argument("--out", default="results/bench/client_latency")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    import torch

    from mtsc_sdr.bench.cli import time_client, time_pipeline
    from mtsc_sdr.tasks import names
    from mtsc_sdr.runtime.evaluate import evaluate
    from mtsc_sdr.report import row, run_meta
    from mtsc_sdr.model.checkpoint import shipped_model_dir

    torch.set_num_threads(1)
    ck = args.checkpoint or str(shipped_model_dir())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    # 1 + 2: in-process, two rounds alternating precisions so drift on a shared machine hits both
    weights = {}
    for rnd in range(2):
        for precision in ("fp32", "int8"):
            r, weights[precision] = time_client(ck, precision, names(), args.items, args.warmup, 10.0)
            rows += [dict(x, round=rnd) for x in r]

    def p50(precision, stage):
        vals = [x["value"] for x in rows if x.get("precision") == precision and x["channel"] == "none"
                and x["task"] == "all" and x.get("stage") == stage and x["metric"] == "latency_ms_p50"]
        return sum(vals) / len(vals)

    enc = {pr: p50(pr, "encode") for pr in ("fp32", "int8")}
    rows.append(row("mtsc", "all", "none", None, "weight_bytes_ratio", weights["int8"] / weights["fp32"],
                    peer="fp32", precision="int8"))
    rows.append(row("mtsc", "all", "none", None, "encode_speedup_ratio", enc["fp32"] / enc["int8"],
                    peer="fp32", precision="int8", stage="encode"))
    # why (2) cannot reach 1.5x here: the share of fp32 encode time in matrix products and convolutions
    ceiling = gemm_share(ck, names(), args.items, args.warmup)
    # 3: quality delta on val, same items and noise draws, pooled over --noise-seeds draws of the channel
    quality, per_item = {}, {}
    for precision in ("fp32", "int8"):
        for seed in args.noise_seeds:
            rep = evaluate(ck, args.snr_db, n_per_task=args.n_quality, split="val", baseline=False, threads=1,
                           precision=precision, item_values=True, noise_seed=seed)
            rows += [dict({k: v for k, v in x.items() if k != "item_values"}, noise_seed=seed) for x in rep["rows"]]
            for x in rep["rows"]:
                key = (x["task"], x["snr_db"], x["metric"])
                quality.setdefault(precision, {}).setdefault(key, []).append(x["value"])
                if "item_values" in x:
                    per_item.setdefault(precision, {}).setdefault(key, []).append(x["item_values"])
    import numpy as np

    from mtsc_sdr.metrics import standard_error

    losses = {k: float(np.mean(quality["fp32"][k]) - np.mean(quality["int8"][k])) for k in quality["fp32"]
              if k[2] in TEXT_METRICS + ("psnr_db",)}
    # standard error of each loss, paired over the same items, each item's score averaged over the
    # noise draws first (corpus BLEU has no per-item scores)
    loss_se = {k: standard_error(np.mean(per_item["fp32"][k], axis=0) - np.mean(per_item["int8"][k], axis=0))
               for k in losses if k in per_item["fp32"]}
    # 4 + 5: the pipeline over the software channel
    pipe = time_pipeline(ck, "int8", ("vqa",), args.items, args.window, 10.0, out / "runs")
    rows += pipe
    e2e = next(x["value"] for x in pipe if x["metric"] == "latency_ms_p50" and x["task"] == "vqa"
               and x.get("stage") == "total")
    ips = next(x["value"] for x in pipe if x["metric"] == "items_per_s")
    text_loss = max(v for k, v in losses.items() if k[2] in TEXT_METRICS)
    psnr_loss = max(v for k, v in losses.items() if k[2] == "psnr_db")
    checks = {
        "weights": {"pass": weights["int8"] <= 0.3 * weights["fp32"], "int8_bytes": weights["int8"],
                    "fp32_bytes": weights["fp32"], "ratio": round(weights["int8"] / weights["fp32"], 3)},
        "encode_speed": {"pass": enc["fp32"] >= 1.5 * enc["int8"], "fp32_p50_ms": round(enc["fp32"], 3),
                         "int8_p50_ms": round(enc["int8"], 3), "speedup": round(enc["fp32"] / enc["int8"], 3),
                         **ceiling},
        "quantization_loss": {"pass": text_loss <= 1.0 and psnr_loss <= 0.3, "worst_text_points": round(text_loss, 3),
                              "worst_psnr_db": round(psnr_loss, 3),
                              "per_metric": {f"{t}/{m}@{s:g}dB": round(v, 3) for (t, s, m), v in sorted(losses.items())},
                              "per_metric_se": {f"{t}/{m}@{s:g}dB": round(v, 3) for (t, s, m), v in sorted(loss_se.items())}},
        "e2e_latency": {"pass": e2e <= 100.0, "vqa_p50_ms": e2e},
        "e2e_throughput": {"pass": ips >= 20.0, "vqa_items_per_s": round(ips, 2), "window": args.window},
    }
    report = {"meta": run_meta(vars(args), {"items": 1, "eval": 0}), "rows": rows, "checks": checks}
    (out / "client_latency.json").write_text(json.dumps(report, indent=1))
    if args.json:
        print(json.dumps(report))
    else:
        for name, c in checks.items():
            detail = ", ".join(f"{k} {v}" for k, v in c.items() if k not in ("pass", "per_metric", "per_metric_se"))
            print(f"{'PASS' if c['pass'] else 'FAIL'} {name}: {detail}")
        q = checks["quantization_loss"]
        print("quality loss int8 vs fp32 (positive = int8 worse; +- paired standard error): " + ", ".join(
            f"{k} {v:+.2f}" + (f" +-{q['per_metric_se'][k]:.2f}" if k in q["per_metric_se"] else "")
            for k, v in q["per_metric"].items()))
        print(f"wrote {out / 'client_latency.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
