"""Streaming receiver: continuous complex64 samples in, equalised frames out.

Pipeline per frame (all estimates come from known training: the preamble, the pilots and the
header once its CRC has passed; the analog payload is never used for decisions):

1. **Detection** (vectorised over the stream with cumulative sums): normalised lag-16
   autocorrelation of the STF, ``M(d) = |P(d)|^2 / (E_a(d) E_b(d))`` over a 128-sample window
   (Schmidl-Cox style; scale-invariant, unaffected by CFO and by multipath shorter than the STF).
   A trigger is the first ``d`` from which ``M > detect_threshold`` holds for 16 consecutive
   offsets (a frame's ragged end makes M jump about; the STF holds it up). The STF position is
   the centre of the half-maximum region of the unnormalised ``|P(d)|`` around the trigger (a
   trapezoid centred on the STF at any SNR, unlike ``M`` whose top widens as noise vanishes).
   The threshold is deliberately low (0.03: ~0.06 is reached at -5 dB); stage 2 rejects noise.
2. **Coarse CFO** from the phase of the lag-16 correlation inside the STF: unambiguous to
   +-fs/32 (+-3.1 %).
3. **Fine timing**: cross-correlation of the coarsely derotated signal with the known 64-sample
   LTF symbol over +-48 samples, the three copies combined, with a penalty on a fourth copy
   (which would mean locking one LTF symbol early). Timing follows the first path: the latest
   start of a (16 - fft_backoff)-lag window that still holds 90 % of the best window's
   correlation energy; the FFT window starts ``fft_backoff`` samples earlier, inside the cyclic
   prefix, so paths from ``fft_backoff`` samples before to ``16 - fft_backoff`` after the detected
   first path are free of inter-symbol interference and inside the channel model.
4. **Fine CFO** from the lag-64 autocorrelation over guard interval + LTF (+-fs/128 around
   coarse), then the lag-128 autocorrelation (twice the lever arm, +-fs/256 around that).
   **Confirmation** ("detected"): with the CFO removed, the three LTF copies are correlated
   coherently with the known symbol over the 16 lags of the channel model; the frame is confirmed
   when that explains more than ``confirm_threshold`` of the region's energy (S/(S+N) for a real
   frame, about Gamma(16)/192 for noise), and when the LTF's energy is spread over the band (at
   least 8 effective subcarriers: a tone or spur is periodic too, but narrow). Coherent combining
   is what keeps detection alive near -5 dB while false alarms stay below one per 10^4 frames.
5. **Channel estimate**: LS on the 52 used subcarriers (average of the three LTF symbols), then
   the LMMSE estimate of a ``channel_taps``-long impulse response whose per-tap prior powers are
   learnt from the same data (sparse Bayesian learning, 10 EM iterations): taps holding only
   noise are driven to zero. This is DFT-domain truncation to the cyclic-prefix length done
   properly for a band with guard carriers and an empty DC bin (where plain truncation is
   ill-conditioned). Its error is about 5 % of the payload noise, 0.2 dB of EVM.
6. **SNR estimate**: noise N0 from the spread of the three LTF symbols around their mean, signal
   from the mean minus its remaining noise, converted to the project's definition (Es/N0 per
   complex payload symbol on the wire, conventions.py): ``snr = mean_k |H_k X_k|^2 * 52/64 / N0``,
   the 52/64 mapping per-bin power of the 52 used subcarriers to time-domain power.
7. **Pilot tracking** (:meth:`Receiver._track`): a linear phase model, residual CFO and the timing
   drift of the sample-rate offset, fitted to all pilots at once by maximising their coherent
   sum plus the LTF as a phase anchor, with the LTF's predicted CFO error as a Gaussian prior
   (so pilots sitting in fades cannot drag the phase away); the drift is only fitted when it
   is significant. Optionally (``track_window``) a moving average of the residual follows phase
   noise.
8. **Header**: tracking (no drift fit over 7 symbols), ZF equalisation, QPSK LLRs, soft Viterbi,
   CRC. A CRC failure, an unknown version or an invalid length drops the frame and counts it
   (``stats``, ``drops``); its payload is never decoded.
9. **Header as training** (:meth:`Receiver._refine_with_header`): the CRC-checked header,
   re-encoded, is 7 more known symbols per subcarrier beside the LTF's 3: the channel estimate is
   redone over all 10 (its error, which adds to every payload symbol's noise and leaves a common
   gain error, falls about 3x: at 0 dB the payload's error against the genie receiver's went from
   +0.13 to +0.08 dB on AWGN and from +0.21 to +0.07 dB on Rician, 100 frames of 480 symbols),
   and the noise estimate pools the header's residuals with the LTF's spread.
10. **Payload**: tracking over header and payload pilots together, then undoing the transmitter's
   scaling so the payload comes back in the transmitter's units: version 2 (DFT-spread,
   :mod:`mtsc_sdr.phy.spreading`) by per-subcarrier MMSE, despreading and division by the mean
   MMSE gain, with the same noise variance on every symbol; version 1 by ZF with the LMMSE channel
   estimate, per-symbol noise variances.

Units: ``cfo`` is in cycles per sample (fraction of the sample rate; the received signal is
``x[n] * exp(j 2 pi cfo n)``), ``cfo_hz = cfo * sample_rate_hz`` when the rate is known. ``start``
is the absolute index (in the stream given to :meth:`Receiver.process`, counting from 0) of the
frame's first sample as it arrives on the first path. ``sro_ppm`` is the receiver's sample clock
error relative to the transmitter's (positive: the receiver samples faster; 0 when not
significant). ``noise_var`` is the per-symbol noise variance of the equalised payload in the
transmitter's units (unit-power payload), so ``1/noise_var`` is that symbol's SNR; on AWGN it is
``1 / (snr * 64/52)``.

Long frames: the FFT windows stay where the LTF put them; the pilots correct the phase of the
sample-rate drift but not the window position, so ``|sro| * frame_length`` should stay below
``fft_backoff`` samples (16384 payload symbols at 50 ppm drift 1.4 samples).

Chunking does not change results: the detector's sums are anchored at fixed absolute block
boundaries, runs are judged only once complete, and every per-frame computation works on slices
at absolute positions, so feeding the stream in any chunk sizes gives identical frames.

Speed: the per-frame work is hundreds of operations on arrays of 3 to 64 values (one LTF symbol,
52 subcarriers, 16 taps, a 16 x 16 posterior ten times per channel estimate), so with numpy alone a
frame was some 800 Python-level calls (cProfile), most of them numpy calls costing microseconds of
overhead around nanoseconds of arithmetic: 0.6-0.7 ms of CPU per frame, 3.3-3.7 Msamples/s on
back-to-back 512-symbol frames on the VM below. Batching
across frames does not fit a streaming receiver (whether there is a frame, and how long it is, is
known only once its own header has decoded), so the inner loops are compiled with numba
(:mod:`mtsc_sdr.phy.rx_kernels`: detection sums, STF plateau, LTF timing/CFO/confirmation, LTF
channel and noise estimates, the SBL channel fit, the pilot tracker's sums, fit and correction,
FFT windows, payload MMSE); numpy keeps the FFTs and the glue. Profile of a 512-symbol frame after
the change (~215 us of CPU): SBL fits 2 x 11 us, LTF sync 16, tracker 2 x 26 (its FFT over
symbols included), header Viterbi/CRC 21 and re-encoding 13, despreading 18, detection ~18.
The kernels compile once per process on first use (10-12 s measured) or load from numba's on-disk
cache (0.3-0.4 s); every Receiver shares them.

Measured (benchmarks/phy_receiver.py --parts throughput back_to_back --runs 7; process CPU time,
one thread, best of 7; ours and the receiver before the kernels, c036413, timed in the same run;
shared 2-core VM under load from other jobs, two runs): back-to-back 512-symbol frames with
500-sample gaps 10.7 Msamples/s (~4600 frames/s) against 3.3-3.4 (3.2x); the link test's
256-symbol train 8.8-10.1 against 2.8-3.1; noise only 64-67 against 13-14 (4.8x). Detection,
false-alarm, EVM and SNR-estimate figures are unchanged to the fourth decimal (same benchmark,
--frames 400 --evm-frames 100, both trees). Keep BLAS single-threaded: OpenBLAS threading of tiny
products costs milliseconds on a busy machine.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from mtsc_sdr.config import check
from mtsc_sdr.phy import header as hdr
from mtsc_sdr.phy import ofdm, rx_kernels, spreading
from mtsc_sdr.phy.ofdm import (AMP_USED, DATA_POS, LTF_GI, N_CP, N_FFT, N_LTF, N_USED, PILOT_BINS, PILOT_POS, PILOTS,
                               STF_LEN, STF_PERIOD, SYM_LEN, USED, USED_BINS)


@dataclass
class ReceiverConfig:
    """Receiver settings. Thresholds are normalised correlations in (0, 1)."""

    #: Stage 1: lag-16 autocorrelation metric M over the STF, held for 16 consecutive offsets
    #: (0.25 at 0 dB SNR, 0.06 at -5 dB, ~1/128 on noise).
    detect_threshold: float = 0.03
    #: Stage 2: share of the LTF region's energy explained by the known LTF after CFO removal,
    #: over the 16 lags of the channel model (0.5 at 0 dB, 0.24 at -5 dB, 0.08 +- 0.02 on noise).
    confirm_threshold: float = 0.25
    #: FFT window starts this many samples before the detected first path (inside the CP).
    fft_backoff: int = 4
    #: Length of the impulse response the channel estimator fits (<= cyclic prefix).
    channel_taps: int = 16
    #: Half-width (symbols) of a moving average of the pilot phase residuals left by the linear
    #: phase model (tracks oscillator phase noise on long frames); 0 = linear model only.
    track_window: int = 0
    #: Largest sample-rate offset the pilot tracker searches, in ppm.
    max_sro_ppm: float = 150.0
    #: Frames announcing a longer payload are dropped (counted as header_bad_length).
    max_payload_len: int = 16384
    #: Sample rate, only used to report cfo_hz.
    sample_rate_hz: Optional[float] = None
    #: How many drop records to keep in ``Receiver.drops``.
    drop_log_size: int = 256

    def validate(self, path: str = "") -> None:
        p = f"{path}." if path else ""
        for name in ("detect_threshold", "confirm_threshold"):
            v = getattr(self, name)
            check(0.0 < v < 1.0, p + name, f"must be in (0, 1), got {v!r}")
        check(0 <= self.fft_backoff <= N_CP // 2, p + "fft_backoff", f"must be in 0..{N_CP // 2}")
        check(1 <= self.channel_taps <= N_CP, p + "channel_taps", f"must be in 1..{N_CP}")
        check(0 <= self.track_window <= 64, p + "track_window", "must be in 0..64")
        check(0.0 <= self.max_sro_ppm <= 1000.0, p + "max_sro_ppm", "must be in 0..1000")
        check(1 <= self.max_payload_len <= 65535, p + "max_payload_len", "must be in 1..65535")
        check(self.sample_rate_hz is None or self.sample_rate_hz > 0, p + "sample_rate_hz",
              "must be positive")
        check(self.drop_log_size >= 0, p + "drop_log_size", "must be >= 0")


@dataclass
class RxFrame:
    """One received frame. Shapes: payload and noise_var (header.payload_len,); channel (64,)."""

    header: hdr.FrameHeader
    #: complex64, equalised payload in the transmitter's units.
    payload: np.ndarray
    #: float32, noise variance of each equalised payload symbol (transmitter's units).
    noise_var: np.ndarray
    #: Estimated SNR, Es/N0 per complex payload symbol on the wire (conventions.py), dB.
    snr_db: float
    #: Estimated CFO in cycles per sample (fraction of the sample rate).
    cfo: float
    #: CFO in Hz when the receiver knows the sample rate, else None.
    cfo_hz: Optional[float]
    #: Absolute stream index of the frame's first sample (first path).
    start: int
    #: Estimated sample-rate offset, ppm (receiver clock relative to transmitter).
    sro_ppm: float
    #: complex64 (64,) channel estimate per FFT bin (numpy order), 0 on unused bins; 1.0 = unit channel.
    channel: np.ndarray
    #: Estimated per-sample noise power N0 at the receiver input (receiver's units).
    noise_power: float


@dataclass
class DropRecord:
    """A confirmed preamble whose frame was dropped. reason: header_crc_fail, header_bad_version,
    header_bad_length or truncated."""

    start: int
    reason: str
    snr_db: float
    cfo: float
    version: Optional[int] = None


@dataclass
class _Sync:
    start: int  # absolute index of frame start (first path)
    u: int  # absolute index of the first LTF FFT window
    cfo: float
    h_used: np.ndarray  # (52,) channel estimate on USED
    h_ls: np.ndarray  # (52,) its least-squares input (the LTF symbols' mean over their values)
    n0: float
    snr_db: float
    omega_std: float  # predicted std of the residual CFO after the LTF estimate, rad/sample


#: the largest sample magnitude the receiver takes as signal: full scale is 1.0 (DESIGN.md
#: conventions), so anything 60 dB above it is a glitch, not a signal
MAX_SAMPLE_ABS = 1e3
_TINY = float(np.finfo(np.float32).tiny)


def _sanitised(x: np.ndarray, stats: dict, after_bad: bool = False) -> tuple[np.ndarray, bool]:
    """``x`` (complex64 (n,)) with non-finite and oversized samples zeroed (counted in ``stats``;
    a span that goes on from the previous chunk, ``after_bad``, is not counted again) and
    denormals flushed to zero; ``x`` itself when it is clean (the common case: one pass). Returns
    it and whether its last sample was bad."""
    mag = np.abs(x)
    bad = ~(mag <= MAX_SAMPLE_ABS)                 # NaN compares False: bad too
    tiny = (mag < _TINY) & (mag > 0)
    if not bad.any() and not tiny.any():
        return x, False
    x = x.copy()
    if bad.any():
        stats["samples_bad"] += int(bad.sum())
        stats["bad_spans"] += int(bad[0] and not after_bad) + int(np.count_nonzero(bad[1:] & ~bad[:-1]))
        x[bad] = 0
    x[tiny] = 0
    return x, bool(bad[-1])


class Receiver:
    """Streaming OFDM receiver. Feed samples with :meth:`process`; call :meth:`flush` at the end.

    ``Receiver(config=None, *, sample_rate_hz=None)``; ``process(samples)`` takes a 1-D complex
    chunk (any length, any dtype castable to complex64, full scale 1.0) and returns the
    :class:`RxFrame` s completed by it, in stream order; frames may span any number of chunks.
    ``stats`` counters: samples, triggers (stage-1 detections), detected (confirmed preambles),
    header_ok, header_crc_fail, header_bad_version, header_bad_length, frames (delivered),
    truncated (stream ended inside a frame). ``drops`` keeps the last ``drop_log_size`` DropRecords.
    """

    _BLOCK = 8192
    _WIN = 128  # detection window (lag-16 products)
    _RUN = 16  # consecutive offsets above the threshold that make a trigger
    _PEAK_WIN = 384  # samples after a trigger searched for the STF plateau
    _PEAK_PRE = 192  # ... and before it
    _SEARCH = 48  # +- LTF timing search around the STF-based prediction
    _ENERGY_SLACK = 0.1  # first-path timing: energy a later window start may lose
    _SBL_ITERS = 10
    _SRO_MIN_GAIN = 4.0  # log-likelihood gain needed to fit a timing drift rather than none
    _FLUSH_PAD = 2048
    _MIN_SPREAD = 8.0  # effective number of subcarriers a confirmed LTF must occupy
    _MAX_RESIDUAL_CFO = 0.002  # cycles/sample left after the LTF fine estimate, searched by the tracker

    def __init__(self, config: ReceiverConfig | None = None, *, sample_rate_hz: float | None = None):
        self.config = dataclasses.replace(config) if config is not None else ReceiverConfig()
        if sample_rate_hz is not None:
            self.config.sample_rate_hz = float(sample_rate_hz)
        self.config.validate("ReceiverConfig")
        cfg = self.config
        self.stats = dict.fromkeys(("samples", "triggers", "detected", "header_ok", "header_crc_fail",
                                    "header_bad_version", "header_bad_length", "frames", "truncated",
                                    "samples_bad", "bad_spans"), 0)
        self.drops: collections.deque[DropRecord] = collections.deque(maxlen=cfg.drop_log_size)
        self._buf = np.zeros(0, dtype=np.complex64)
        self._base = 0  # absolute index of _buf[0]; always a multiple of _BLOCK
        self._scan = 0  # absolute index where detection resumes
        self._pending: tuple | None = None  # (trigger, sync, header) waiting for payload samples
        self._limit: int | None = None  # end of the real samples while flushing
        self._runs_cache: tuple | None = None  # (block start, end, run counts) of the last block
        self._after_bad = False  # the last sample of the previous chunk was bad (spans are counted once)
        # channel estimator matrices
        taps = np.arange(cfg.channel_taps)
        self._A = np.exp(-2j * np.pi * np.outer(USED, taps) / N_FFT)  # (52, taps): taps -> USED bins
        # USED is symmetric about DC, so A^H A (a sum of cosines) is real: the SBL iterations run on
        # real symmetric matrices (Cholesky)
        self._AhA = (self._A.conj().T @ self._A).real.copy()
        self._ltf_x = ofdm.LTF_VALUES * AMP_USED
        self._ltf_sym = ofdm.LTF_SYMBOL.astype(np.complex128)
        # demodulation tables
        # (64, 52) unitary DFT onto the used bins: time samples @ it = bins on USED (for 3 LTF symbols a
        # matrix product is cheaper than an FFT and a gather)
        self._dft_used = np.exp(-2j * np.pi * np.outer(np.arange(N_FFT), USED_BINS) / N_FFT) / math.sqrt(N_FFT)
        n_sym_max = hdr.N_HEADER_SYM + ofdm.n_payload_symbols(cfg.max_payload_len)
        self._pilots = ofdm.pilot_values(n_sym_max)  # (n_sym_max, 4) known pilot values
        self._track_cache: dict[tuple[int, int, bool], tuple] = {}

    # ------------------------------------------------------------------ public API
    def process(self, samples: np.ndarray) -> list[RxFrame]:
        """Append a chunk of complex baseband samples (1-D) and return the frames completed so far.

        Samples that are not finite, or larger in magnitude than :data:`MAX_SAMPLE_ABS` (a driver
        glitch, a corrupt recording), are counted (``samples_bad``, and ``bad_spans`` for each run
        of them) and replaced by zeros, as if the stream had gone quiet there: one NaN would
        otherwise poison every running sum of the detector's block, and a huge sample their
        precision. A frame overlapping such a span fails its header or is not detected; detection
        resumes at the next clean preamble. Denormal samples are flushed to zero (they carry no
        signal and slow every operation on them)."""
        x = np.asarray(samples)
        if x.ndim != 1:
            raise ValueError(f"samples: expected a 1-D array, got shape {x.shape}")
        if x.size:
            x, self._after_bad = _sanitised(x.astype(np.complex64, copy=False), self.stats, self._after_bad)
            self._buf = np.concatenate([self._buf, x])
            self.stats["samples"] += x.size
        frames = self._run(final=False)
        self._trim()
        return frames

    def flush(self) -> list[RxFrame]:
        """End of stream: decode every frame that is complete, count confirmed frames cut off by
        the end as ``truncated``. Stream positions keep counting if more samples follow."""
        end = self._avail()
        self._limit = end
        # zeros after the end let the detector's windows run past the last real sample; nothing
        # that needs a sample beyond ``end`` is decoded
        self._buf = np.concatenate([self._buf, np.zeros(self._FLUSH_PAD, dtype=np.complex64)])
        try:
            frames = self._run(final=True)
        finally:
            self._limit = None
            new_base = (end // self._BLOCK) * self._BLOCK
            self._buf = self._buf[new_base - self._base:end - self._base].copy()
            self._base = new_base
            self._scan = end
            self._pending = None
            self._runs_cache = None  # computed over the padding
        return frames

    @property
    def position(self) -> int:
        """Absolute index of the next sample the receiver expects."""
        return self._base + self._buf.size

    # ------------------------------------------------------------------ stream handling
    def _avail(self) -> int:
        return self._base + self._buf.size

    def _end(self) -> int:
        """End of the real samples (flush pads zeros after it)."""
        return self._avail() if self._limit is None else self._limit

    def _slice(self, lo: int, hi: int) -> np.ndarray:
        return self._buf[lo - self._base:hi - self._base]

    def _trim(self) -> None:
        keep_from = self._scan
        if self._pending is not None:
            keep_from = min(keep_from, self._pending[0])
        new_base = (max(keep_from - 4 * self._PEAK_PRE, 0) // self._BLOCK) * self._BLOCK
        if new_base > self._base:
            self._buf = self._buf[new_base - self._base:].copy()
            self._base = new_base

    def _find_trigger(self) -> Optional[int]:
        """First offset >= scan where M stays above detect_threshold for _RUN offsets, or None.

        M is computed block by block with sums anchored at absolute multiples of _BLOCK, and a run
        is only judged once all its offsets are available, so the answer does not depend on how
        the stream was chunked."""
        W, D, R = self._WIN, STF_PERIOD, self._RUN
        d_end = self._avail() - (W + D)  # exclusive bound on offsets with a full window
        d = max(self._scan, self._base)
        thr = self.config.detect_threshold
        while True:
            b = (d // self._BLOCK) * self._BLOCK
            i_end = min(b + self._BLOCK, d_end - R + 1)  # run starts decidable now
            if d >= i_end:
                break
            if self._runs_cache is not None and self._runs_cache[:2] == (b, i_end):
                runs = self._runs_cache[2]
            else:
                # runs[i]: offsets of [b + i, b + i + R) where M > threshold (a frame's end, a few
                # signal samples in an otherwise quiet window, makes M jump about for a few
                # offsets; the STF keeps it up over its whole plateau)
                n_m = i_end - b + R - 1
                runs = rx_kernels.lag_metric_runs(self._slice(b, b + n_m + W + D), n_m, W, D, thr, R)
                self._runs_cache = (b, i_end, runs)
            hits = np.flatnonzero(runs[d - b:i_end - b] == R)
            if hits.size:
                return d + int(hits[0])
            d = i_end
        self._scan = max(self._scan, d)
        return None

    def _run(self, final: bool) -> list[RxFrame]:
        frames: list[RxFrame] = []
        while True:
            if self._pending is not None:
                trig, sync, header = self._pending
                status = self._finish(sync, header, frames, final)
                if status == "wait":
                    return frames
                self._pending = None
                continue
            trig = self._find_trigger()
            if trig is None:
                return frames
            status = self._attempt(trig, frames, final)
            if status == "wait":
                return frames

    def _attempt(self, trig: int, frames: list[RxFrame], final: bool) -> str:
        """Try a frame at trigger ``trig``. Returns 'wait' (needs more samples) or 'done'."""
        W, D = self._WIN, STF_PERIOD
        # STF position: centre of the half-maximum region of |P(d)|, a trapezoid whose flat top
        # d in [s, s + 16] is centred at s + 8 whatever the SNR (the normalised metric's top
        # widens with SNR, |P| does not). A trigger can come early (noise in a quiet gap just
        # before the frame): if the region runs into the window's edge, look again around it.
        centre = trig
        for _ in range(4):
            lo = max(centre - self._PEAK_PRE, self._base)
            hi = centre + self._PEAK_WIN
            if hi + W + D > self._avail():
                return "wait"
            n_p = hi - lo
            i_max, a, b = rx_kernels.lag_plateau(self._slice(lo, hi + W + D), n_p, W, D)
            if (b < n_p - 1 or n_p < 2) and (a > 0 or lo == self._base):
                break
            centre = lo + i_max
        stf_start = lo + int(round(0.5 * (a + b))) - (STF_LEN - W - D) // 2
        need = stf_start + ofdm.PREAMBLE_LEN + self._SEARCH + SYM_LEN * hdr.N_HEADER_SYM + N_FFT
        if need > self._end():
            return "wait"
        self.stats["triggers"] += 1
        sync = self._sync(stf_start)
        if sync is None:
            self._scan = trig + 64
            return "done"
        self.stats["detected"] += 1
        header = self._decode_header(sync)
        if header is None:
            self._scan = sync.u + self.config.fft_backoff + N_LTF * N_FFT + SYM_LEN * hdr.N_HEADER_SYM
            return "done"
        self._pending = (trig, sync, header)
        status = self._finish(sync, header, frames, final)
        if status != "wait":
            self._pending = None
        return status if status == "wait" else "done"

    def _finish(self, sync: _Sync, header: hdr.FrameHeader, frames: list[RxFrame], final: bool) -> str:
        n_sym = hdr.N_HEADER_SYM + ofdm.n_payload_symbols(header.payload_len)
        end = sync.u + N_LTF * N_FFT + SYM_LEN * n_sym
        if end > self._end():
            if final:
                self.stats["truncated"] += 1
                self.drops.append(DropRecord(sync.start, "truncated", sync.snr_db, sync.cfo,
                                             header.version))
                self._scan = self._end()
                return "done"
            return "wait"
        frames.append(self._decode_payload(sync, header))
        self.stats["frames"] += 1
        frame_end = sync.start + ofdm.PREAMBLE_LEN + SYM_LEN * n_sym
        self._scan = max(self._scan, frame_end - N_CP)
        return "done"

    # ------------------------------------------------------------------ synchronisation
    def _sync(self, s: int) -> Optional[_Sync]:
        """Stages 2-6 for an STF starting at absolute index s: None when not confirmed."""
        cfg = self.config
        t_first, u, cfo, rho, n_fine, seg = rx_kernels.ltf_sync(
            self._buf, s - self._base, self._ltf_sym, N_LTF, STF_LEN, LTF_GI, STF_PERIOD, self._SEARCH, N_CP,
            cfg.fft_backoff, self._ENERGY_SLACK)
        t_first += self._base
        u += self._base
        if rho < cfg.confirm_threshold:
            return None
        # a periodic narrowband signal (a tone, a spur) also correlates with the LTF over all
        # lags; a frame spreads its energy over the 52 subcarriers (effective count: 52 flat,
        # ~20+ under multipath)
        h_ls, n0, e_ls, narrow = rx_kernels.ltf_estimates(seg, self._dft_used, self._ltf_x, N_LTF, self._MIN_SPREAD)
        if narrow:
            return None
        h_used, snr_db = self._estimate_channel(h_ls, n0, e_ls)
        start = t_first - (STF_LEN + LTF_GI)
        # phase noise of the lag-128 correlation over its a.size - 128 products (high-SNR-exact
        # variance (2/snr + 1/snr^2) / (2 M)), with a 1.5x margin and a floor for oscillator drift
        snr = 10.0 ** (snr_db / 10.0)
        var_ph = (2.0 / snr + 1.0 / snr ** 2) / (2.0 * n_fine)
        omega_std = 1.5 * math.sqrt(var_ph) / (2 * N_FFT) + 2 * np.pi * 1e-6
        return _Sync(start=start, u=u, cfo=cfo, h_used=h_used, h_ls=h_ls, n0=n0, snr_db=snr_db, omega_std=omega_std)

    def _estimate_channel(self, h_ls: np.ndarray, n0: float, e_ls: float) -> tuple[np.ndarray, float]:
        """LMMSE (impulse response of channel_taps taps) from the LTF's LS estimate h_ls (52,), the
        noise power per bin n0 and the mean |h_ls|^2 e_ls. Returns (H on USED (52,) complex, SNR dB
        per conventions)."""
        sig_bin = e_ls * AMP_USED ** 2 - n0 / N_LTF  # mean |ym|^2 minus its noise
        snr = max(sig_bin, 1e-3 * n0) * (N_USED / N_FFT) / n0
        h, _ = self._smooth(h_ls, n0 / (N_LTF * AMP_USED ** 2))
        return h, 10.0 * math.log10(snr)

    def _smooth(self, h_ls: np.ndarray, var_h: float) -> tuple[np.ndarray, float]:
        """LMMSE of a channel_taps-long impulse response from the LS estimate h_ls (52,) on USED,
        whose noise variance per subcarrier is var_h. Returns (H on USED (52,), the number of taps
        the data determined: sum over taps of 1 - posterior / prior variance)."""
        return rx_kernels.sbl_channel(self._A, self._AhA, np.ascontiguousarray(h_ls, dtype=np.complex128),
                                      float(var_h), self._SBL_ITERS)

    def _refine_with_header(self, sync: _Sync, Yc: np.ndarray, header: hdr.FrameHeader) -> _Sync:
        """The channel and noise estimates again, with the header as training: once its CRC has
        passed, its N_HEADER_SYM symbols are known (re-encoded), 7 more per subcarrier beside the
        LTF's 3. Yc: the header's tracked used bins (N_HEADER_SYM, 52). The channel estimate's error
        falls by (N_LTF + N_HEADER_SYM) / N_LTF, and with it the noise it adds to every payload
        symbol and the common gain error the analog image code is sensitive to; the noise estimate
        gets the header's residuals. Returns the sync with h_used, h_ls and n0 replaced."""
        n_h = hdr.N_HEADER_SYM
        x = np.empty((n_h, N_USED), dtype=np.complex128)  # (7, 52) what was sent
        x[:, DATA_POS] = hdr.encode(header)
        x[:, PILOT_POS] = self._pilots[:n_h]
        x *= AMP_USED
        h_ls = rx_kernels.header_training(Yc, x, sync.h_ls, N_LTF)
        h, fitted = self._smooth(h_ls, sync.n0 / ((N_LTF + n_h) * AMP_USED ** 2))
        dof_ltf = (N_LTF - 1) * N_USED
        dof_hdr = max(n_h * N_USED - fitted, 1.0)
        n0 = (sync.n0 * dof_ltf + rx_kernels.residual_energy(Yc, h, x)) / (dof_ltf + dof_hdr)
        return dataclasses.replace(sync, h_used=h, h_ls=h_ls, n0=max(n0, 1e-30))

    # ------------------------------------------------------------------ demodulation
    def _symbols(self, sync: _Sync, first: int, n_sym: int) -> np.ndarray:
        """Unitary FFTs (n_sym, 64) of header/payload symbols first..first+n_sym-1, CFO removed.

        Only the 64 FFT samples of each symbol are derotated; the rotation of sample k of symbol i
        factors into a per-symbol phasor times a per-sample ramp (an outer product of two short
        exponentials), the unitary 1/8 folded into the ramp."""
        lo = sync.u + N_LTF * N_FFT + SYM_LEN * first
        x = rx_kernels.fft_windows(self._buf, lo - self._base, n_sym, SYM_LEN, N_CP, N_FFT, sync.cfo,
                                   float(lo - sync.u + N_CP))
        return np.fft.fft(x, axis=1)

    def _track_plan(self, first: int, n: int, fit_sro: bool) -> tuple:
        """What :meth:`_track` needs for symbols first..first+n-1 beyond the samples, cached per
        (first, n, fit_sro): (t, the window centres (n,); z_step and n_grid, the timing-drift grid
        ``(g - n_grid // 2) z_step``; n_fft, the FFT length over symbols; bins, its bins with
        |omega| <= _MAX_RESIDUAL_CFO in increasing omega; omegas (rad/sample) and phasors
        exp(-j omega t[0]) referring the FFT to the time of symbol ``first`` on those bins)."""
        key = (first, n, fit_sro)
        plan = self._track_cache.get(key)
        if plan is None:
            t = self._t_sym(first, n)
            zmax = self.config.max_sro_ppm * 1e-6 if fit_sro else 0.0
            if zmax > 0 and n >= 2:
                step = 0.1 * N_FFT / (2 * np.pi * 21.0 * float(t[-1]))  # <= 0.1 rad at the outer pilots
                n_grid = int(min(max(math.ceil(2 * zmax / step), 4), 400)) | 1
                z_step = zmax / (n_grid // 2)
            else:
                n_grid, z_step = 1, 0.0
            n_fft = 8 * (1 << max(int(n - 1).bit_length(), 3))
            omegas = 2 * np.pi * np.fft.fftfreq(n_fft) / SYM_LEN
            bins = np.flatnonzero(np.abs(omegas) <= self._MAX_RESIDUAL_CFO * 2 * np.pi)
            bins = bins[np.argsort(omegas[bins])]
            plan = (t, z_step, n_grid, n_fft, bins, omegas[bins], np.exp(-1j * omegas[bins] * t[0]))
            self._track_cache[key] = plan
        return plan

    @staticmethod
    def _t_sym(first: int, n: int) -> np.ndarray:
        """Window centres (n,) of symbols first..first+n-1 in samples after the LTF centre:
        u + 192 + 80 i + 16 + 32 relative to u + 96."""
        return N_LTF * N_FFT / 2 + N_CP + N_FFT / 2 + SYM_LEN * (first + np.arange(n, dtype=np.float64))

    def _track(self, Y: np.ndarray, sync: _Sync, first: int, fit_sro: bool = True) -> tuple[np.ndarray, float]:
        """Remove the common phase and the sample-rate-offset timing drift using the pilots.

        Y: (n, 64) bins of symbols first..first+n-1. Model for pilot k of symbol i at time t_i after
        the LTF centre (where the channel estimate fixes phase 0 and phase slope 0)::

            phase = theta0 + omega t_i + 2 pi k zeta t_i / 64   (+ a slowly varying residual)

        omega is the residual CFO (rad/sample), zeta the timing drift per sample (SRO). Both are
        found by maximising the log-likelihood of the coherent sum of all pilots plus the LTF anchor
        (a phasor at phase 0 weighted by the channel estimate's reliability), with a Gaussian prior
        on omega whose width is the LTF's predicted CFO error, over a grid (FFT over symbols for
        omega), refined parabolically; theta0 is the phase of that sum. This is robust at low SNR where
        per-symbol phase estimates wrap. A drift is only fitted when it raises the log-likelihood
        by _SRO_MIN_GAIN over zeta = 0 (otherwise fitting it would add more noise than it removes). The optional residual is smoothed over +-track_window
        symbols (oscillator phase noise). Returns (corrected Y on USED (n, 52), sro_ppm).
        """
        cfg = self.config
        n = Y.shape[0]
        t, z_step, n_grid, n_fft, bins, omegas, ref = self._track_plan(first, n, fit_sro)
        anchor = N_LTF * AMP_USED ** 2 * float(np.vdot(sync.h_used, sync.h_used).real)  # LTF phase reference
        # z (n, 4): pilots matched to their known values and the channel; cz (G, n_fft): their sums
        # per symbol with each drift of the grid removed, zero-padded
        z, cz = rx_kernels.pilot_sums(Y, PILOT_BINS, self._pilots[first:first + n], sync.h_used[PILOT_POS] * AMP_USED,
                                      t, z_step, n_grid, PILOTS, n_fft)
        # sum_i cz_i exp(-j omega 80 i), omega = 2 pi b / (80 n_fft); the kernel maximises the
        # log-likelihood (2/N0)|anchor + sum| plus a Gaussian prior on omega (the residual CFO the
        # LTF left, so faded pilots cannot drag the phase away from what the LTF measured)
        spec = np.fft.fft(cz)  # (G, n_fft)
        Yc, zeta = rx_kernels.track_fit(spec, bins, ref, omegas, anchor, 2.0 / max(sync.n0, 1e-30), sync.omega_std,
                                        z_step, self._SRO_MIN_GAIN, Y, USED_BINS, USED, PILOT_POS, z, cz, t,
                                        cfg.track_window)
        # a receiver clock faster than the transmitter's makes the windows drift early (zeta < 0)
        return Yc, 0.0 - zeta * 1e6

    def _equalise(self, Yc: np.ndarray, sync: _Sync) -> tuple[np.ndarray, np.ndarray]:
        """ZF on USED: values (n, 52) in transmitter units and their noise variances (52,)."""
        h = sync.h_used * AMP_USED
        g2 = np.maximum(np.abs(h) ** 2, 1e-30)
        return Yc * (np.conj(h) / g2)[None, :], sync.n0 / g2

    def _despread(self, Yc: np.ndarray, sync: _Sync, L: int) -> tuple[np.ndarray, np.ndarray]:
        """A DFT-spread payload (:mod:`mtsc_sdr.phy.spreading`) of L symbols from its tracked used
        bins Yc (n, 52): per-subcarrier MMSE, despreading, division by the mean MMSE gain c.
        Returns the payload in transmitter units (L,) complex64 and its noise variance (L,)
        float32, the same ``(1 - c) / c`` for every symbol."""
        y, mean_c = rx_kernels.mmse_data(Yc, sync.h_used * AMP_USED, DATA_POS, sync.n0, L)
        mean_c = min(max(mean_c, 1e-12), 1.0 - 1e-12)
        payload = (spreading.despread(y) / mean_c).astype(np.complex64)
        return payload, np.full(L, (1.0 - mean_c) / mean_c, dtype=np.float32)

    def _decode_header(self, sync: _Sync) -> Optional[hdr.FrameHeader]:
        Y = self._symbols(sync, 0, hdr.N_HEADER_SYM)
        # over the header's 7 symbols even 50 ppm moves the window by only 0.03 samples: no SRO fit
        Yc, _ = self._track(Y, sync, 0, fit_sro=False)
        X, nv = self._equalise(Yc, sync)
        llr = hdr.slot_llrs(X[:, DATA_POS], np.broadcast_to(nv[DATA_POS], (hdr.N_HEADER_SYM, ofdm.N_DATA)))
        header, version, crc_ok = hdr.decode(llr)
        if not crc_ok:
            self.stats["header_crc_fail"] += 1
            self.drops.append(DropRecord(sync.start, "header_crc_fail", sync.snr_db, sync.cfo))
            return None
        if version not in hdr.SUPPORTED_VERSIONS:
            self.stats["header_bad_version"] += 1
            self.drops.append(DropRecord(sync.start, "header_bad_version", sync.snr_db, sync.cfo, version))
            return None
        if header is None or header.payload_len > self.config.max_payload_len:
            self.stats["header_bad_length"] += 1
            self.drops.append(DropRecord(sync.start, "header_bad_length", sync.snr_db, sync.cfo, version))
            return None
        self.stats["header_ok"] += 1
        return header

    def _decode_payload(self, sync: _Sync, header: hdr.FrameHeader) -> RxFrame:
        L = header.payload_len
        n_sym = hdr.N_HEADER_SYM + ofdm.n_payload_symbols(L)
        Y = self._symbols(sync, 0, n_sym)
        Yc, sro_ppm = self._track(Y, sync, 0)
        sync = self._refine_with_header(sync, Yc[:hdr.N_HEADER_SYM], header)
        if hdr.spreads_payload(header.version):
            payload, noise_var = self._despread(Yc[hdr.N_HEADER_SYM:], sync, L)
        else:
            X, nv = self._equalise(Yc[hdr.N_HEADER_SYM:], sync)
            payload = X[:, DATA_POS].reshape(-1)[:L].astype(np.complex64)
            noise_var = np.tile(nv[DATA_POS].astype(np.float32), X.shape[0])[:L]
        channel = np.zeros(N_FFT, dtype=np.complex64)
        channel[USED_BINS] = sync.h_used
        rate = self.config.sample_rate_hz
        return RxFrame(header=header, payload=payload, noise_var=noise_var, snr_db=sync.snr_db,
                       cfo=sync.cfo, cfo_hz=None if rate is None else sync.cfo * rate, start=sync.start,
                       sro_ppm=sro_ppm, channel=channel, noise_power=sync.n0)


def warm_up(seed: int = 0) -> float:
    """Compile, or load from numba's disk cache, every kernel the receiver runs, by decoding one
    noisy frame (64 payload symbols at about 30 dB). A process that takes live samples (the base
    station, the link test's receiver) calls it before it listens, so the first frames of a fresh
    install do not wait for compilation (10-12 s cold on a 2-core machine, under 1 s cached) and
    time out. Returns the seconds it took; raises RuntimeError if the frame does not decode."""
    import time

    from mtsc_sdr.phy.tx import Transmitter

    t0 = time.monotonic()
    rng = np.random.default_rng(seed)
    payload = ((rng.standard_normal(64) + 1j * rng.standard_normal(64)) / np.sqrt(2)).astype(np.complex64)
    frame = Transmitter().build(payload, hdr.FrameHeader(session_id=1, seq=0, payload_len=payload.size))
    stream = np.concatenate([np.zeros(400, np.complex64), frame, np.zeros(400, np.complex64)])
    stream += (0.02 * (rng.standard_normal(stream.size) + 1j * rng.standard_normal(stream.size))).astype(np.complex64)
    rx = Receiver()
    frames = rx.process(stream) + rx.flush()
    if len(frames) != 1:
        raise RuntimeError(f"receiver warm-up: decoded {len(frames)} frames of 1")
    return time.monotonic() - t0
