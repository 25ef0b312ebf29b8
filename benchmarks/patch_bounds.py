"""Reference points for natural-patch reconstruction: how hard is the patch target?

For the test patches (the balanced test split of :mod:`mtsc_sdr.data.patches`: the same number
of patches from every source photograph; the very items ``benchmarks/quality_vs_snr.py``
evaluates, chosen by the same ``--n-per-task`` and ``--seed``), at 512 complex symbols per
32x32x3 patch (bandwidth ratio 1/6), this prints the mean per-patch PSNR of

* ``capacity``: the codec-at-channel-capacity bound (:func:`mtsc_sdr.baselines.codec_at_capacity`,
  the same function the quality benchmark uses; ergodic capacity on Rician);
* ``linear``: the best *linear* analog scheme we know how to compute in closed form (SoftCast
  style): PCA of the training patches, the first 1024 real coefficients sent as 512 complex
  symbols with MSE-optimal linear power weights (``lambda^-1/4``) scaled to unit power per patch,
  and a per-coefficient LMMSE estimate at the receiver (prior: the PCA variances scaled by the
  patch's energy, assumed known: one number of side information), plus the error of rounding the
  result to 8 bits (:data:`OUTPUT_ROUNDING_MSE`, like every delivered image). On Rician block fading (K
  ``--k-factor-db``, E|h|^2 = 1, the receiver knowing h, as the model's genie equaliser does) each
  patch sees the SNR times |h|^2; its PSNR is the mean over :data:`FADING_DRAWS` seeded gains.

The quality benchmark asks the model to be at or above the ``linear`` row at every SNR. The
shipped models send patches with a linear code of this kind (:mod:`mtsc_sdr.model.analog`), which
has to send the patch's scale that this row assumes known, and in return designs its power split
for the SNR class instead of the high-SNR split used here at every SNR. The gap to ``capacity``
is what non-linear coding could still win. It also prints the bound per source photograph.

Run (both channels, all 176 test patches: 36 s of CPU on this 2-core machine, measured)::

    .venv/bin/python benchmarks/patch_bounds.py [--channel awgn rician] [--n-per-task N] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

SNRS_DB = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
#: MSE per pixel (pixels in [0, 1]) of rounding an image to 8 bits, as every system's delivered
#: image is (uniform rounding error: 1/12 of a level squared). The linear scheme's analytic MSE
#: gets it added, so that it is compared with our 8-bit outputs like for like (at 20 dB it moves
#: the mean PSNR by 0.15 dB, as rounding moves ours).
OUTPUT_ROUNDING_MSE = 1.0 / (12.0 * 255.0 ** 2)
SYMBOLS = 512
#: Rician gains drawn per patch for the linear scheme's PSNR (its mean over them).
FADING_DRAWS = 32


@dataclass(frozen=True)
class LinearScheme:
    """The PCA basis of the training patches (fit once, used at every SNR and channel).

    Attributes:
        mean: float64 (D,) mean patch; vec: float64 (D, D) eigenvectors, columns by decreasing
        variance; lam: float64 (D,) their variances (floored at 1e-12).
    """

    mean: np.ndarray
    vec: np.ndarray
    lam: np.ndarray

    @classmethod
    def fit(cls, train: np.ndarray) -> "LinearScheme":
        """train: float64 (N, D) pixels in [0, 1]."""
        mean = train.mean(0)
        lam, vec = np.linalg.eigh(np.cov((train - mean).T))
        order = np.argsort(lam)[::-1]
        return cls(mean, vec[:, order], np.maximum(lam[order], 1e-12))

    def psnr_db(self, test: np.ndarray, snr_db, symbols: int = SYMBOLS) -> np.ndarray:
        """Per-patch PSNR (dB) at ``snr_db`` (a number, or float (N,) per patch: Es/N0 per
        complex symbol, each patch's own with fading). test: float64 (N, D) in [0, 1]."""
        n_real = 2 * symbols
        lam = self.lam[:n_real]
        coef = (test - self.mean) @ self.vec                          # (N, D)
        kept, dropped = coef[:, :n_real], coef[:, n_real:]
        snr = np.broadcast_to(np.asarray(snr_db, dtype=np.float64), (len(test),))[:, None]
        noise = 10.0 ** (-snr / 10.0)                                 # per real, signal power 1 per real
        energy = (kept ** 2).sum(1, keepdims=True) / lam.sum()        # (N, 1) patch energy / average
        prior = lam[None, :] * energy                                 # (N, n_real)
        weight = prior ** -0.25
        gain = weight * np.sqrt(n_real / (weight ** 2 * kept ** 2).sum(1, keepdims=True))
        est = gain * prior / (gain ** 2 * prior + noise)              # LMMSE coefficient per real
        mse = ((1 - est * gain) ** 2 * kept ** 2 + est ** 2 * noise).sum(1) + (dropped ** 2).sum(1)
        return 10.0 * np.log10(1.0 / (mse / test.shape[1] + OUTPUT_ROUNDING_MSE))

    def channel_psnr_db(self, test: np.ndarray, snr_db: float, channel: str = "awgn",
                        k_factor_db: float = 6.0, seed: int = 0, symbols: int = SYMBOLS) -> np.ndarray:
        """Per-patch PSNR on ``channel`` (``awgn``, or ``rician``: mean over :data:`FADING_DRAWS`
        seeded block-fading gains per patch, the same draws at every SNR)."""
        if channel == "awgn":
            return self.psnr_db(test, snr_db, symbols)
        if channel != "rician":
            raise ValueError(f"channel must be 'awgn' or 'rician', got {channel!r}")
        from mtsc_sdr.channel import k_factor_linear, rician_gains

        rng = np.random.default_rng([seed, 0x11EA])
        g2 = np.abs(rician_gains(rng, FADING_DRAWS * len(test), k_factor_linear(k_factor_db))) ** 2
        g2 = g2.reshape(FADING_DRAWS, len(test))
        return np.mean([self.psnr_db(test, snr_db + 10.0 * np.log10(g), symbols) for g in g2], axis=0)


def linear_psnr_db(train: np.ndarray, test: np.ndarray, snr_db: float, symbols: int = SYMBOLS) -> np.ndarray:
    """Per-patch PSNR (dB) of the linear PCA scheme on AWGN (fit on ``train``, applied to
    ``test``; float64 (N, D) pixels in [0, 1]). Returns float64 (N_test,)."""
    return LinearScheme.fit(train).psnr_db(test, snr_db, symbols)


def pixels(items) -> np.ndarray:
    """float64 (N, 3072) in [0, 1] of items with a uint8 (32, 32, 3) ``image``."""
    return np.stack([q.image for q in items]).reshape(len(items), -1).astype(np.float64) / 255.0


def train_scheme() -> LinearScheme:
    """The scheme fit on every train patch (:func:`mtsc_sdr.data.natural_patches`)."""
    from mtsc_sdr.data import natural_patches

    return LinearScheme.fit(pixels(natural_patches("train")))


def eval_items(n_per_task: int | None = None, seed: int = 0) -> list:
    """The reconstruct examples of the test split that ``mtsc-sdr eval`` and the quality
    benchmark evaluate with these ``n_per_task`` (None: all) and ``seed``."""
    from mtsc_sdr.data import available
    from mtsc_sdr.data.sources import DataSource

    n = None if n_per_task is None else available("test", "reconstruct", n_per_task)
    return list(DataSource().examples("test", "reconstruct", n, seed))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--channel", nargs="+", choices=("awgn", "rician"), default=["awgn"])
    p.add_argument("--k-factor-db", type=float, default=6.0, help="Rician K")
    p.add_argument("--n-per-task", type=int, default=None, help="test patches (default: all)")
    p.add_argument("--seed", type=int, default=0, help="picks the patches, as the quality benchmark's --seed")
    p.add_argument("--json", action="store_true", help="print one {meta, rows} JSON object")
    args = p.parse_args(argv)

    from mtsc_sdr.baselines import codec_at_capacity
    from mtsc_sdr.report import row, run_meta

    scheme = train_scheme()
    items = eval_items(args.n_per_task, args.seed)
    test = pixels(items)
    sources = [q.item_id.split("/")[1] for q in items]
    rows, by_source = [], {}
    for ch in args.channel:
        for snr in SNRS_DB:
            lin = scheme.channel_psnr_db(test, snr, ch, args.k_factor_db, args.seed)
            cap = np.array([codec_at_capacity(q.image, snr, SYMBOLS, ch, args.k_factor_db)[1] for q in items])
            rows.append(row("linear", "reconstruct", ch, snr, "psnr_db", round(float(lin.mean()), 2)))
            rows.append(row("capacity", "reconstruct", ch, snr, "psnr_db", round(float(cap.mean()), 2)))
            groups = defaultdict(list)
            for s, v in zip(sources, cap):
                groups[s].append(v)
            by_source[ch, snr] = {s: (len(v), round(float(np.mean(v)), 1)) for s, v in sorted(groups.items())}
    report = {"meta": run_meta({"symbols": SYMBOLS, "split": "test", "patches": len(items),
                                "item_ids": [q.item_id for q in items], "k_factor_db": args.k_factor_db,
                                "fading_draws": FADING_DRAWS}, {"seed": args.seed}),
              "rows": rows}
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"test patches: {len(items)} ({len(set(sources))} photographs, balanced), {SYMBOLS} complex "
          "symbols each; mean per-patch PSNR dB")
    for ch in args.channel:
        print(f"{ch}:\n{'SNR dB':>7} {'linear':>8} {'capacity':>9}")
        for snr in SNRS_DB:
            v = {r["system"]: r["value"] for r in rows if r["snr_db"] == snr and r["channel"] == ch}
            print(f"{snr:>7.1f} {v['linear']:>8.2f} {v['capacity']:>9.2f}")
        print("  codec-at-capacity bound per source photograph at 0 dB (patches, mean PSNR dB):")
        print("  " + ", ".join(f"{s} {n}: {m}" for s, (n, m) in by_source[ch, 0.0].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
