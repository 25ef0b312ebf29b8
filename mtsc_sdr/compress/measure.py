"""What an artifact's manifest records, measured: accuracy per task, encode latency, peak memory.

* **Accuracy** (:func:`quality`): validation items of every task, encoded by the client's runtime,
  sent through the torch channel (AWGN at ``snr_db``, the same seeded noise for every client, so
  two clients' scores pair item by item) to the source checkpoint's server half, decoded by the
  client's task decoders; each task's main metric (VQA accuracy %, CIDEr-D x100, PSNR dB),
  per item.
* **Latency** (:func:`encode_latency`): one item at a time (batch 1), the runtime's whole encode
  (input front end, network, symbols; not the PHY framing), after warm-up items; p50 / p90 in ms
  over all tasks' items.
* **Peak memory** (:func:`peak_memory_mb`): peak RSS of a fresh process that loads the client and
  encodes a few items of every task (``python -m mtsc_sdr.compress.measure``): what a device
  must hold for the client, torch and the runtime included; on a Jetson also the board RAM's rise
  that ``tegrastats`` sees (GPU allocations are not in a process's RSS there).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Optional

import numpy as np

from mtsc_sdr import tasks as task_table
from mtsc_sdr.data import collate, examples
from mtsc_sdr.metrics import score_task_items
from mtsc_sdr.report import machine, peak_rss_mb, percentiles


def quality(model, loaded, tasks, n_items: int = 200, snr_db: float = 10.0, seed: int = 0,
            batch_size: int = 25, budget: Optional[int] = None) -> dict[str, np.ndarray]:
    """Per-item main-metric scores float64 (n_items,) per task (see the module docstring).

    Args:
        model: the source checkpoint's MTSCModel (its server half decodes).
        loaded: a :class:`~.artifact.LoadedClient` (its encoder encodes, its model decodes).
    """
    import torch

    out = {}
    for task in tasks:
        spec = task_table.get(task)
        items = examples("val", [task], n_per_task=n_items, seed=seed)
        gen = torch.Generator().manual_seed(seed + spec.id)
        hyps, refs = [], []
        with torch.no_grad():
            for i in range(0, len(items), batch_size):
                chunk = items[i:i + batch_size]
                batch = collate(chunk)
                snr = torch.full((len(chunk),), float(snr_db))
                up, _ = loaded.encoder.encode(batch, task, snr, budget)
                down = model.transmit(up, snr, fading=None, generator=gen).downlink
                pred = loaded.model.decode(task, down, questions=batch.get("question"))
                if spec.output == "image":
                    hyps.append(pred.numpy())
                    refs.append(batch["image"].numpy())
                else:
                    hyps += list(pred)
                    refs += [list(ex.references) for ex in chunk]
        if spec.output == "image":
            hyps, refs = np.concatenate(hyps), np.concatenate(refs)
        out[task] = score_task_items(task, hyps, refs)[spec.main_metric]
    return out


def encode_latency(clients: dict, tasks, items: int = 30, rounds: int = 1, warmup: int = 5,
                   seed: int = 1) -> dict[str, dict[str, list[float]]]:
    """Encode times in ms, ``{client name: {task: [ms, ...]}}``, of ``clients`` (name ->
    :class:`~.artifact.LoadedClient`): per round ``r`` and task, ``warmup + items`` validation items
    (seed ``seed + r``) one at a time, every client timing the same item in turn (so drift on a
    shared machine hits all alike); the first ``warmup`` are not kept."""
    import torch

    snr = torch.tensor([10.0])
    times = {name: {t: [] for t in tasks} for name in clients}
    for rnd in range(rounds):
        for task in tasks:
            for i, ex in enumerate(examples("val", [task], n_per_task=warmup + items, seed=seed + rnd)):
                batch = collate([ex])
                for name, loaded in clients.items():
                    t0 = time.perf_counter()
                    loaded.encoder.encode(batch, task, snr)
                    if i >= warmup:
                        times[name][task].append(1e3 * (time.perf_counter() - t0))
    return times


def summary(times: dict[str, list[float]]) -> dict[str, float]:
    """p50 / p90 (ms) over every task's items."""
    pooled = percentiles([t for v in times.values() for t in v])
    return {"p50": pooled["p50"], "p90": pooled["p90"]}


def peak_memory_mb(checkpoint, artifact=None, runtime: str = "torch", precision: str = "fp32",
                   threads: int = 1) -> float:
    """Peak memory (MiB) of a fresh process that loads the client and encodes 3 items per task:
    its own peak RSS (VmHWM); on a Jetson, where the GPU's allocations live in the same RAM but not
    in the process's RSS, the larger of that and the rise of the board's RAM in use that
    ``tegrastats`` sees while the probe runs."""
    from mtsc_sdr.memory import TegraStats

    cmd = [sys.executable, "-m", "mtsc_sdr.compress.measure", "--checkpoint", str(checkpoint),
           "--runtime", runtime, "--precision", precision, "--threads", str(threads)]
    if artifact is not None:
        cmd += ["--artifact", str(artifact)]
    board = None
    if TegraStats.available():
        with TegraStats() as before:
            time.sleep(0.5)
        with TegraStats() as board:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        baseline = before.peak_used_mb
    else:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    rss = float(json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"])
    if board is not None and board.peak_used_mb is not None and baseline is not None:
        return max(rss, float(board.peak_used_mb - baseline))
    return rss


def measure(checkpoint, artifact_dir, device: str = "x86-cpu", n_items: int = 200, snr_db: float = 10.0,
            latency_items: int = 30, threads: int = 1, seed: int = 0, log=print):
    """Fill ``artifact_dir``'s manifest with accuracy (validation split, per task), peak memory
    and encode latency on this machine, recorded under ``device`` (a device profile name).

    Returns:
        (the artifact, :func:`quality`'s per-item scores)."""
    import torch

    from mtsc_sdr.model import load

    from .artifact import load_client, read

    torch.set_num_threads(threads)
    art = read(artifact_dir)
    loaded = load_client(checkpoint, art.runtime, art.directory, threads=threads)
    model = load(checkpoint).eval()
    tasks = list(art.manifest["tasks"])
    scores = quality(model, loaded, tasks, n_items, snr_db, seed)
    times = encode_latency({art.name: loaded}, tasks, latency_items)[art.name]
    m = art.manifest
    m["accuracy"] = {t: round(float(v.mean()), 3) for t, v in scores.items()}
    m["accuracy_setup"] = {"split": "val", "items_per_task": n_items, "snr_db": snr_db, "channel": "awgn",
                           "seed": seed, "metrics": {t: task_table.get(t).main_metric for t in tasks}}
    m["latency_ms"][device] = {k: round(v, 4) for k, v in summary(times).items()}
    m["peak_memory_mb"][device] = peak_memory_mb(checkpoint, art.directory, art.runtime, threads=threads)
    m["measured_on"][device] = {**machine(), "threads": threads}
    art.save()
    log(f"compress: measured {art.name}: accuracy {m['accuracy']}, latency {m['latency_ms'][device]} ms, "
        f"peak memory {m['peak_memory_mb'][device]} MiB")
    return art, scores


def _probe(argv=None) -> int:
    """The memory probe's process (see :func:`peak_memory_mb`): prints ``{"peak_rss_mb"}``."""
    import torch

    p = argparse.ArgumentParser(prog="python -m mtsc_sdr.compress.measure")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--artifact")
    p.add_argument("--runtime", default="torch")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    from .artifact import load_client

    loaded = load_client(args.checkpoint, args.runtime, args.artifact, args.precision, args.threads)
    for task in task_table.names():
        for ex in examples("val", [task], n_per_task=3, seed=2):
            loaded.encoder.encode(collate([ex]), task, torch.tensor([10.0]))
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))
    return 0


if __name__ == "__main__":
    sys.exit(_probe())
