"""Small channel impairments for the PHY tests (kept local so the PHY tests do not depend on the
software channel being written in parallel); tests/phy/test_impairments.py checks them.

Conventions: SNR is Es/N0 on the payload (mtsc_sdr.conventions.noise_power); CFO in cycles/sample;
SRO in ppm, positive = the receiver's sample clock is faster than the transmitter's.
"""

from __future__ import annotations

import math

import numpy as np

from mtsc_sdr.conventions import noise_power


def complex_noise(rng: np.random.Generator, n: int, n0: float) -> np.ndarray:
    """Circular complex Gaussian noise, total power n0 per sample."""
    return math.sqrt(n0 / 2.0) * (rng.standard_normal(n) + 1j * rng.standard_normal(n))


def awgn(rng: np.random.Generator, x: np.ndarray, snr_db: float) -> np.ndarray:
    return x + complex_noise(rng, x.size, noise_power(snr_db))


def rician_gain(rng: np.random.Generator, k_factor: float) -> complex:
    """Flat Rician block-fading gain with E|h|^2 = 1 (LOS power K/(K+1), scattered 1/(K+1))."""
    los = math.sqrt(k_factor / (k_factor + 1.0)) * np.exp(2j * np.pi * rng.random())
    nlos = math.sqrt(1.0 / (k_factor + 1.0)) * (rng.standard_normal() + 1j * rng.standard_normal()) / math.sqrt(2)
    return complex(los + nlos)


def multipath_taps(rng: np.random.Generator, max_delay: int = 8, n_paths: int = 4,
                   decay_samples: float = 3.0) -> np.ndarray:
    """Random multipath: a path at delay 0 plus n_paths-1 at random delays <= max_delay, Rayleigh
    amplitudes with an exponential power-delay profile, normalised to unit energy."""
    h = np.zeros(max_delay + 1, dtype=np.complex128)
    delays = np.concatenate([[0], rng.integers(1, max_delay + 1, n_paths - 1)])
    for d in delays:
        h[d] += math.sqrt(math.exp(-d / decay_samples)) * (rng.standard_normal() + 1j * rng.standard_normal())
    return h / np.linalg.norm(h)


def normalize_in_band(h: np.ndarray) -> np.ndarray:
    """Scale taps so the mean |H_k|^2 over the 52 used OFDM subcarriers is 1: the received payload
    power then equals the transmitted one, so the frame's SNR is exactly the nominal SNR."""
    from mtsc_sdr.phy.ofdm import USED_BINS

    H = np.fft.fft(h, 64)[USED_BINS]
    return h / math.sqrt(np.mean(np.abs(H) ** 2))


def apply_cfo(x: np.ndarray, cfo: float, n0: int = 0) -> np.ndarray:
    """x[n] * exp(j 2 pi cfo (n0 + n))."""
    return x * np.exp(2j * np.pi * cfo * (n0 + np.arange(x.size)))


_PHASES = 4096
_SINC_TABLES: dict = {}


def _sinc_table(taps: int) -> np.ndarray:
    """Kaiser-windowed sinc (beta 8) for fractional delays k / _PHASES: shape (_PHASES + 1, taps)."""
    if taps not in _SINC_TABLES:
        half = taps // 2
        offs = np.arange(-half + 1, half + 1)
        frac = np.arange(_PHASES + 1) / _PHASES
        arg = frac[:, None] - offs[None, :]
        win = np.i0(8.0 * np.sqrt(np.clip(1 - (arg / (half + 0.5)) ** 2, 0, 1))) / np.i0(8.0)
        _SINC_TABLES[taps] = np.sinc(arg) * win
    return _SINC_TABLES[taps]


def resample_sro(x: np.ndarray, ppm: float, taps: int = 64, block: int = 1 << 14) -> np.ndarray:
    """Sample-rate offset: y[m] = x(m / (1 + ppm 1e-6)) by Kaiser-windowed sinc interpolation
    (fractional delay quantised to 1/4096 sample, error < -60 dB over the OFDM band).

    Positive ppm = the receiver samples faster (more output samples for the same signal)."""
    ratio = 1.0 + ppm * 1e-6
    n_out = int(math.floor((x.size - 1) * ratio)) + 1
    half = taps // 2
    table = _sinc_table(taps)
    xp = np.concatenate([np.zeros(half, dtype=np.complex128), np.asarray(x, np.complex128),
                         np.zeros(half + 1, dtype=np.complex128)])
    offs = np.arange(-half + 1, half + 1)
    out = np.empty(n_out, dtype=np.complex128)
    for b0 in range(0, n_out, block):
        m = np.arange(b0, min(b0 + block, n_out))
        t = m / ratio
        i = np.floor(t).astype(np.int64)
        ph = np.rint((t - i) * _PHASES).astype(np.int64)
        out[m] = np.einsum("mk,mk->m", xp[i[:, None] + offs[None, :] + half], table[ph])
    return out


def place_frames(rng: np.random.Generator, frames: list[np.ndarray], gap=(100, 800), lead: int = 500):
    """Concatenate frames with random noise-free gaps; returns (stream, start indices)."""
    gaps = rng.integers(gap[0], gap[1] + 1, len(frames))
    total = lead + sum(f.size for f in frames) + int(gaps.sum())
    out = np.zeros(total, dtype=np.complex128)
    starts = []
    pos = lead
    for f, g in zip(frames, gaps):
        out[pos:pos + f.size] = f
        starts.append(pos)
        pos += f.size + int(g)
    return out, np.array(starts)


# --------------------------------------------------------------------------- frame streams
class Truth:
    """What the test channel did to each frame: start index in the stream, CFO, taps, payload."""

    def __init__(self):
        self.starts: list[int] = []
        self.cfos: list[float] = []
        self.taps: list[np.ndarray] = []
        self.payloads: list[np.ndarray] = []


def random_payload(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-power complex Gaussian payload symbols (what a JSC encoder emits), complex64."""
    return ((rng.standard_normal(n) + 1j * rng.standard_normal(n)) / math.sqrt(2)).astype(np.complex64)


def make_stream(rng: np.random.Generator, n_frames: int, snr_db: float, *, payload_len: int = 96,
                channel: str = "awgn", max_cfo: float = 0.02, sro_ppm: float = 0.0, k_factor: float = 3.0,
                gap=(100, 800), session_id: int = 1, noise: bool = True):
    """Frames at random times between stretches of noise, through the chosen channel.

    channel: "awgn" (unit gain), "rician" (flat block fading, E|h|^2 = 1, K = k_factor), or
    "multipath" (random taps over 9 samples, unit mean gain over the used subcarriers). Each frame
    gets its own CFO, uniform in +-max_cfo (cycles/sample, phase referenced to the stream index).
    SRO resamples the whole stream. Returns (complex64 stream, Truth); with SRO, starts are rounded.
    """
    from mtsc_sdr.phy import FrameHeader, Transmitter

    tx = Transmitter()
    truth = Truth()
    rx_frames = []
    for i in range(n_frames):
        payload = random_payload(rng, payload_len)
        x = tx.build(payload, FrameHeader(session_id=session_id, seq=i % 65536, payload_len=payload_len))
        if channel == "awgn":
            h = np.array([1.0 + 0j])
        elif channel == "rician":
            h = np.array([rician_gain(rng, k_factor)])
        elif channel == "multipath":
            h = normalize_in_band(multipath_taps(rng))
        else:
            raise ValueError(channel)
        truth.payloads.append(payload)
        truth.taps.append(h)
        truth.cfos.append(float(rng.uniform(-max_cfo, max_cfo)))
        rx_frames.append(np.convolve(x.astype(np.complex128), h))
    stream, starts = place_frames(rng, rx_frames, gap=gap)
    for f, st, cfo in zip(rx_frames, starts, truth.cfos):
        stream[st:st + f.size] = apply_cfo(f, cfo, int(st))
    if sro_ppm:
        stream = resample_sro(stream, sro_ppm)
        starts = np.rint(starts * (1.0 + sro_ppm * 1e-6)).astype(np.int64)
    truth.starts = [int(s) for s in starts]
    if noise:
        stream = stream + complex_noise(rng, stream.size, noise_power(snr_db))
    return stream.astype(np.complex64), truth


def match(frames, truth: Truth, tol: int):
    """Map seq -> RxFrame for frames whose start is within tol samples of the truth."""
    out = {}
    for f in frames:
        i = f.header.seq
        if i < len(truth.starts) and abs(f.start - truth.starts[i]) <= tol:
            out[i] = f
    return out
