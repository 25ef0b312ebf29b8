"""Reference points for natural-patch reconstruction: how hard is the patch target?

For the test patches, at 512 complex symbols per 32x32x3 patch (bandwidth ratio 1/6) on AWGN,
this prints the mean per-patch PSNR of

* ``capacity``: the codec-at-channel-capacity bound (:func:`mtsc_sdr.baselines.codec_at_capacity`,
  the same function the quality benchmark uses);
* ``linear``: the best *linear* analog scheme we know how to compute in closed form (SoftCast
  style): PCA of the training patches, the first 1024 real coefficients sent as 512 complex
  symbols with MSE-optimal linear power weights (``lambda^-1/4``) scaled to unit power per patch,
  and a per-coefficient LMMSE estimate at the receiver (prior: the PCA variances scaled by the
  patch's energy, assumed known: one number of side information).

A learned JSCC that is no better than linear lands near the ``linear`` row; the quality benchmark's
``patches_vs_capacity`` target asks for the ``capacity`` row. The gap between them is what the
learned model has to win by non-linear coding. It also prints the bound per source photograph:
smooth photographs (retina, chelsea) have bounds far above the rest.

Run (45 s on 2 cores, measured)::

    .venv/bin/python benchmarks/patch_bounds.py [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

import numpy as np

SNRS_DB = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
SYMBOLS = 512


def linear_psnr_db(train: np.ndarray, test: np.ndarray, snr_db: float, symbols: int = SYMBOLS) -> np.ndarray:
    """Per-patch PSNR (dB) of the linear PCA scheme described in the module docstring.

    train, test: float64 (N, D) pixels in [0, 1]. Returns float64 (N_test,).
    """
    n_real = 2 * symbols
    mean = train.mean(0)
    lam, vec = np.linalg.eigh(np.cov((train - mean).T))
    order = np.argsort(lam)[::-1]
    lam, vec = np.maximum(lam[order][:n_real], 1e-12), vec[:, order]
    coef = (test - mean) @ vec                                    # (N, D)
    kept, dropped = coef[:, :n_real], coef[:, n_real:]
    noise = 10.0 ** (-snr_db / 10.0)                              # per real, signal power 1 per real
    energy = (kept ** 2).sum(1, keepdims=True) / lam.sum()        # (N, 1) patch energy / average
    prior = lam[None, :] * energy                                 # (N, n_real)
    weight = prior ** -0.25
    gain = weight * np.sqrt(n_real / (weight ** 2 * kept ** 2).sum(1, keepdims=True))
    est = gain * prior / (gain ** 2 * prior + noise)              # LMMSE coefficient per real
    mse = ((1 - est * gain) ** 2 * kept ** 2 + est ** 2 * noise).sum(1) + (dropped ** 2).sum(1)
    return 10.0 * np.log10(test.shape[1] / mse)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true", help="print one {meta, rows} JSON object")
    args = p.parse_args(argv)

    from mtsc_sdr.baselines import codec_at_capacity
    from mtsc_sdr.data import natural_patches
    from mtsc_sdr.report import row, run_meta

    train = np.stack([q.image for q in natural_patches("train")]).reshape(-1, 3072) / 255.0
    test_patches = natural_patches("test")
    test = np.stack([q.image for q in test_patches]).reshape(-1, 3072) / 255.0
    sources = [q.item_id.split("/")[1] for q in test_patches]
    rows, by_source = [], {}
    for snr in SNRS_DB:
        lin = linear_psnr_db(train, test, snr)
        cap = np.array([codec_at_capacity(q.image, snr, SYMBOLS)[1] for q in test_patches])
        rows.append(row("linear", "reconstruct", "awgn", snr, "psnr_db", round(float(lin.mean()), 2)))
        rows.append(row("capacity", "reconstruct", "awgn", snr, "psnr_db", round(float(cap.mean()), 2)))
        groups = defaultdict(list)
        for s, v in zip(sources, cap):
            groups[s].append(v)
        by_source[snr] = {s: (len(v), round(float(np.mean(v)), 1)) for s, v in sorted(groups.items())}
    report = {"meta": run_meta({"symbols": SYMBOLS, "split": "test", "patches": len(test_patches)}, {}),
              "rows": rows}
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"test patches: {len(test_patches)}, {SYMBOLS} complex symbols each, AWGN; mean per-patch PSNR dB")
    print(f"{'SNR dB':>7} {'linear':>8} {'capacity':>9}")
    for snr in SNRS_DB:
        v = {r["system"]: r["value"] for r in rows if r["snr_db"] == snr}
        print(f"{snr:>7.1f} {v['linear']:>8.2f} {v['capacity']:>9.2f}")
    print("codec-at-capacity bound per source photograph at 0 dB (patches, mean PSNR dB):")
    print("  " + ", ".join(f"{s} {n}: {m}" for s, (n, m) in by_source[0.0].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
