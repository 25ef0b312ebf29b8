"""``mtsc-sdr calibrate``: measure a radio pair and write a calibration record.

Measurements (each an estimator on received samples, with its standard deviation from the same
data; only the :class:`~mtsc_sdr.radio.driver.Radio` interface is used, so Pluto, USRP and the
simulated :class:`~mtsc_sdr.radio.sim.SimRadio` are measured alike):

1. **Noise floor and DC offset** (:func:`estimate_noise`), TX off: ``dc = mean(x)`` (std
   ``sqrt(N0 / 2N)`` per component) and ``N0 = mean |x - dc|^2`` in dBFS (std ``10/ln10 / sqrt(N)``
   dB: ``|n|^2`` is exponential).
2. **CFO and IQ imbalance** (:func:`estimate_tone`) from a cyclic complex tone at ``rate/8``:
   coarse frequency from the peak of a 4x zero-padded FFT near the tone, fine frequency from the
   slope of the unwrapped phases of 64 block sums, fitted by generalised least squares under a
   white + random-walk phase model estimated from the same phases by REML (:func:`_phase_slope`):
   near the Cramer-Rao bound ``6 / ((2 pi)^2 snr N^3)`` on thermal noise, and with an honest std
   when oscillator phase noise dominates. ``cfo = f_measured - f_tone`` (TX LO - RX LO; a sample-rate
   offset adds ``f_tone * sro``, 5e-5 of the CFO for one crystal). IQ imbalance from the
   second-order statistics of the same capture (:func:`estimate_iq_imbalance`); in a loopback
   with CFO ~0 a TX imbalance lands on the receiver's image and is measured with it.
3. **TX gain -> SNR table** (:func:`measure_snr`): a cyclic train of PHY frames at each TX gain,
   DC offset and IQ imbalance removed with the estimates of 1 and 2 (so the table holds the noise,
   and a channel built from the record does not count them twice; with a CFO, an uncorrected DC
   or image differs between the LTF copies and would count as noise), received by
   :class:`~mtsc_sdr.phy.rx.Receiver`, whose per-frame estimate is the project's SNR
   (Es/N0 per payload symbol, conventions.py); the point's SNR is mean signal over mean noise of
   the frames (less biased than averaging ratios), its std the frames' spread / sqrt(count); the
   mean signal is also the payload's received power (dBFS).

Radios may offer, beyond the interface, ``serial`` (str), ``temperature_c()`` (-> float or None)
and ``xo_correction_hz`` (a Pluto's current ``xo_correction``); what a radio lacks is recorded as
its address, null and the 40 MHz nominal.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import numpy as np

from mtsc_sdr import __version__
from mtsc_sdr.capture import SigMFWriter
from mtsc_sdr.channel.frontend import IQImbalance
from mtsc_sdr.config import check, from_dict
from mtsc_sdr.options import add_json, add_seed
from mtsc_sdr.phy.header import FrameHeader
from mtsc_sdr.phy.rx import Receiver
from mtsc_sdr.phy.tx import Transmitter

from .calibration import (
    DEFAULT_DIR,
    SCHEMA_VERSION,
    CalibrationRecord,
    CfoResult,
    DcOffsetResult,
    GainPoint,
    IqImbalanceResult,
    RadioIdentity,
    Results,
    iq_correction_matrix,
    record_from_dict,
    remove_dc_iq,
    save_record,
    utc_now,
    xo_correction_hz,
)
from .discovery import find_radios
from .driver import Radio, RadioDisconnected, open_radio
from .links import RadioNotFound
from .profiles import RadioSettings
from .registry import RADIOS

#: Nominal reference crystal of radios with an ``xo_correction`` (the Pluto's AD936x: 40 MHz). The
#: simulated radio mirrors a Pluto so the demo record shows the field.
XO_NOMINAL_HZ = {"pluto": 40.0e6, "sim": 40.0e6}
#: Session id in the headers of the gain sweep's frames.
CALIBRATION_SESSION = 0xCA1
#: Gain points with fewer frames received than this are left out of the table (SNR too low).
MIN_FRAMES = 3


# -- estimators on samples ---------------------------------------------------------------------------


@dataclass
class NoiseEstimate:
    """Noise floor (dBFS: total complex power per sample, full scale |x| = 1) and DC offset."""

    noise_floor_dbfs: float
    noise_floor_std_db: float
    dc: complex
    dc_std: float        # per component (I or Q)
    n: int


def estimate_noise(x: np.ndarray) -> NoiseEstimate:
    """Noise floor and DC offset of samples received with nothing transmitted.

    x: complex (N,), full scale 1.0.
    """
    x = np.asarray(x, np.complex128)
    n = x.size
    if n < 2:
        raise ValueError(f"x: need at least 2 samples, got {n}")
    dc = complex(x.mean())
    n0 = float(np.mean(np.abs(x - dc) ** 2)) * n / (n - 1)
    return NoiseEstimate(10.0 * math.log10(max(n0, 1e-30)), 10.0 / math.log(10.0) / math.sqrt(n), dc,
                         math.sqrt(n0 / (2 * n)), n)


@dataclass
class ToneEstimate:
    """What :func:`estimate_tone` finds: the tone's frequency and its std, cycles per sample."""

    freq: float
    freq_std: float


def estimate_tone(x: np.ndarray, freq: float, *, max_offset: float = 1.0 / 16, blocks: int = 64) -> ToneEstimate:
    """Frequency of one received complex tone (module docstring).

    Args:
        x: complex (N,) received samples, N >= 4 * blocks.
        freq: the transmitted tone's frequency, cycles per sample.
        max_offset: the tone is searched within ``freq +- max_offset`` (cycles per sample).
        blocks: number of block sums of the fine estimate.
    """
    x = np.asarray(x, np.complex128)
    n = x.size
    if n < 4 * blocks:
        raise ValueError(f"x: need at least {4 * blocks} samples, got {n}")
    # coarse: periodogram peak near the tone (4x zero padding)
    nfft = 1 << int(math.ceil(math.log2(4 * n)))
    spec = np.abs(np.fft.fft(x - x.mean(), nfft))
    f_bins = np.fft.fftfreq(nfft)
    near = np.flatnonzero(np.abs(((f_bins - freq) + 0.5) % 1.0 - 0.5) <= max_offset)
    f0 = float(f_bins[near[np.argmax(spec[near])]])
    # fine: GLS slope of the unwrapped phases of block sums of the derotated tone
    length = n // blocks
    t = np.arange(blocks * length)
    z = (x[:blocks * length] * np.exp(-2j * np.pi * f0 * t)).reshape(blocks, length).sum(axis=1)
    slope, slope_var = _phase_slope(np.unwrap(np.angle(z)))
    return ToneEstimate(freq=f0 + slope / (2 * np.pi * length), freq_std=math.sqrt(slope_var) / (2 * np.pi * length))


def _phase_slope(ph: np.ndarray) -> tuple[float, float]:
    """(slope, its variance) of phases (M,) = intercept + slope m + white noise + random walk.

    White phase noise (variance ``s_w`` per point: thermal noise on each block sum) and a random
    walk (variance ``r s_w`` per step: oscillator phase noise, the jumps of block fading) give the
    covariance ``s_w (I + r W)``, ``W[i, j] = min(i, j) + 1``. ``r`` is chosen by restricted
    maximum likelihood (REML, the trend removed) over a grid, ``s_w`` profiled out; the slope is
    then the generalised least-squares fit and its variance the GLS one. With no random walk this is
    ordinary least squares; when phase noise dominates, the std grows with it instead of being
    read off residuals that a random walk leaves correlated.
    """
    m_count = ph.size
    idx = np.arange(m_count)
    walk = np.minimum.outer(idx, idx) + 1.0
    design = np.stack([np.ones(m_count), idx - (m_count - 1) / 2.0], axis=1)
    best = None
    for r in np.concatenate([[0.0], np.logspace(-4, 8, 49)]):
        k = np.eye(m_count) + r * walk
        chol = np.linalg.cholesky(k)
        wx = np.linalg.solve(chol, design)          # whitened design and phases
        wy = np.linalg.solve(chol, ph)
        info = wx.T @ wx                            # X^T K^-1 X
        beta = np.linalg.solve(info, wx.T @ wy)
        res = wy - wx @ beta
        s_w = max(float(res @ res) / (m_count - 2), 1e-300)
        reml = -0.5 * ((m_count - 2) * math.log(s_w) + 2.0 * float(np.sum(np.log(np.diag(chol))))
                       + float(np.linalg.slogdet(info)[1]))
        if best is None or reml > best[0]:
            best = (reml, float(beta[1]), s_w * float(np.linalg.inv(info)[1, 1]))
    return best[1], best[2]


@dataclass
class IqEstimate:
    """Receiver IQ imbalance (``I' = I, Q' = g (Q cos(phi) - I sin(phi))``) and the stds of the
    estimates (batch means over blocks)."""

    gain_db: float
    phase_deg: float
    gain_std_db: float
    phase_std_deg: float

    @property
    def image_rejection_db(self) -> float:
        return IQImbalance(self.gain_db, self.phase_deg).image_rejection_db


def _iq_moments(x: np.ndarray) -> tuple[float, float]:
    """(g, phi rad) from second-order statistics of (N,) or (B, N) samples with the DC removed."""
    i, q = x.real, x.imag
    ii, qq, iq = (i * i).mean(-1), (q * q).mean(-1), (i * q).mean(-1)
    return np.sqrt(qq / ii), np.arcsin(np.clip(-iq / np.sqrt(ii * qq), -1.0, 1.0))


def estimate_iq_imbalance(x: np.ndarray, *, blocks: int = 32) -> IqEstimate:
    """IQ gain and phase imbalance from any received signal that was circular before the receiver's
    mixer (a tone spanning many periods, noise, OFDM): with ``E[I^2] = E[Q^2] = P/2, E[IQ] = 0``
    before it, ``E[I'^2] = P/2``, ``E[Q'^2] = g^2 P/2``, ``E[I'Q'] = -g sin(phi) P/2``, so
    ``g = sqrt(E[Q'^2] / E[I'^2])`` and ``sin(phi) = -E[I'Q'] / sqrt(E[I'^2] E[Q'^2])``. Insensitive
    to CFO, phase noise and fading (they keep the signal circular). Stds: the spread of the
    estimates of ``blocks`` equal blocks, divided by sqrt(blocks).

    x: complex (N,), N >= 16 * blocks; its mean (the DC offset, added after the mixer) is removed.
    """
    x = np.asarray(x, np.complex128)
    if x.ndim != 1 or x.size < 16 * blocks:
        raise ValueError(f"x: need a 1-D array of at least {16 * blocks} samples, got shape {x.shape}")
    x = x - x.mean()
    g, phi = _iq_moments(x)
    length = x.size // blocks
    gb, pb = _iq_moments(x[:blocks * length].reshape(blocks, length))
    gdb = 20.0 * np.log10(gb)
    return IqEstimate(gain_db=20.0 * math.log10(g), phase_deg=math.degrees(phi),
                      gain_std_db=float(np.std(gdb, ddof=1)) / math.sqrt(blocks),
                      phase_std_deg=math.degrees(float(np.std(pb, ddof=1))) / math.sqrt(blocks))


def measure_snr(frames) -> tuple[float, float, float]:
    """(Es/N0 dB, its std dB, payload power dBFS) from :class:`~mtsc_sdr.phy.rx.RxFrame` s: the
    mean signal power (each frame's SNR times its noise power N0) over the mean N0."""
    if len(frames) < 2:
        raise ValueError(f"frames: need at least 2, got {len(frames)}")
    snr = np.array([f.snr_db for f in frames])
    n0 = np.array([f.noise_power for f in frames])
    signal = float(np.mean(10.0 ** (snr / 10.0) * n0))
    std = float(np.std(snr, ddof=1)) / math.sqrt(len(frames))
    return 10.0 * math.log10(signal / float(np.mean(n0))), std, 10.0 * math.log10(signal)


# -- signals sent ---------------------------------------------------------------------------------------


def tone(n: int, cycles: int, amplitude: float = 0.5) -> np.ndarray:
    """A complex tone of ``cycles`` whole periods in ``n`` samples (repeats seamlessly when cyclic):
    complex64 (n,), frequency ``cycles / n`` cycles per sample, |x| = amplitude (full scale 1)."""
    return (amplitude * np.exp(2j * np.pi * cycles * np.arange(n) / n)).astype(np.complex64)


def frame_train(frames: int, payload_len: int, gap: int, seed: int) -> np.ndarray:
    """``frames`` PHY frames of random unit-power payloads, ``gap`` zeros before each: complex64."""
    rng = np.random.default_rng(seed)
    tx = Transmitter()
    parts = []
    for seq in range(frames):
        payload = (rng.standard_normal(payload_len) + 1j * rng.standard_normal(payload_len)) / math.sqrt(2)
        parts += [np.zeros(gap, np.complex64),
                  tx.build(payload, FrameHeader(session_id=CALIBRATION_SESSION, seq=seq, payload_len=payload_len))]
    return np.concatenate(parts)


# -- measuring radios -----------------------------------------------------------------------------------


@dataclass
class CalibrateSettings:
    """What ``mtsc-sdr calibrate`` does. Units in the names; gains in the radios' own dB."""

    freq_hz: float = 2.4e9
    rate_sps: float = 1.0e6
    rx_gain_db: float = 30.0
    gains_db: list[float] = field(default_factory=lambda: [-40.0, -30.0, -20.0, -10.0])
    tone_tx_gain_db: Optional[float] = None    # None: the highest of gains_db
    capture_samples: int = 65536               # per noise / tone capture
    frames: int = 40                           # per gain point
    payload_len: int = 256
    gap_samples: int = 200
    seed: int = 0
    note: str = ""

    def validate(self, path: str = "") -> None:
        p = (lambda n: f"{path}.{n}" if path else n)  # noqa: E731
        check(self.freq_hz > 0, p("freq_hz"), "must be > 0")
        check(self.rate_sps > 0, p("rate_sps"), "must be > 0")
        check(bool(self.gains_db) and len(set(self.gains_db)) == len(self.gains_db), p("gains_db"),
              f"must be distinct TX gains, got {self.gains_db}")
        check(self.capture_samples >= 4096, p("capture_samples"), "must be >= 4096")
        check(self.frames >= MIN_FRAMES, p("frames"), f"must be >= {MIN_FRAMES}")
        check(1 <= self.payload_len <= 4096, p("payload_len"), "must be in 1..4096")


def identity(radio: Radio) -> RadioIdentity:
    """The record's description of ``radio`` (serial: the driver's ``serial`` or the address)."""
    return RadioIdentity(kind=radio.kind, serial=str(getattr(radio, "serial", None) or radio.address),
                         address=radio.address, profile=radio.profile.name)


def read_temperature(radio: Radio) -> Optional[float]:
    """The radio's ``temperature_c()`` if it has one and it answers, else None."""
    read = getattr(radio, "temperature_c", None)
    try:
        value = read() if callable(read) else None
        return None if value is None else float(value)
    except Exception:       # a sensor that cannot be read is recorded as null, not a failure
        return None


def fresh_samples(rx: Radio, n: int) -> np.ndarray:
    """``n`` samples after one discarded buffer (stale samples from before the last change)."""
    rx.receive(rx.settings.rx_buffer_samples)
    return rx.receive(n)


def calibrate(tx: Radio, rx: Radio, s: CalibrateSettings,
              progress: Optional[Callable[[str], None]] = None) -> tuple[CalibrationRecord, list[str]]:
    """Measure the pair (``tx`` may be ``rx``: a loopback) and return (record, warnings).

    The radios must be open; they are configured here and left configured, not transmitting.
    """
    s.validate()
    say = progress or (lambda msg: None)
    warnings: list[str] = []
    tone_gain = max(s.gains_db) if s.tone_tx_gain_db is None else s.tone_tx_gain_db
    base = RadioSettings(freq_hz=s.freq_hz, rate_sps=s.rate_sps, tx_gain_db=tone_gain, rx_gain_db=s.rx_gain_db)
    radios = [tx] if tx is rx else [tx, rx]

    def configure(tx_gain_db: float) -> None:
        for r in radios:
            r.configure(replace(base, tx_gain_db=tx_gain_db))

    try:
        configure(tone_gain)
        # 1. noise floor and DC, TX off
        say("noise floor and DC offset (TX off)")
        tx.stop_transmit()
        noise = estimate_noise(fresh_samples(rx, s.capture_samples))
        # 2. tone: CFO and IQ imbalance
        say(f"CFO and IQ imbalance (tone at rate/8, TX gain {tone_gain:g} dB)")
        period = 1024
        tx.transmit(tone(period, period // 8), cyclic=True)
        f_tone = (period // 8) / period
        x = fresh_samples(rx, s.capture_samples)
        est, iq_est = estimate_tone(x, f_tone), estimate_iq_imbalance(x)
        correction = iq_correction_matrix(iq_est.gain_db, iq_est.phase_deg)
        tx.stop_transmit()
        # 3. gain sweep
        points = []
        train = frame_train(s.frames, s.payload_len, s.gap_samples, s.seed)
        for g in sorted(s.gains_db):
            say(f"SNR at TX gain {g:g} dB")
            configure(g)
            tx.transmit(train, cyclic=True)
            frames = receive_frames(rx, train.size * 2 + 4096, s.rate_sps, noise.dc, correction)
            tx.stop_transmit()
            if len(frames) < MIN_FRAMES:
                warnings.append(f"TX gain {g:g} dB: {len(frames)} frames received (< {MIN_FRAMES}), left out "
                                f"of the table (SNR too low?)")
                continue
            snr, std, power = measure_snr(frames)
            points.append(GainPoint(tx_gain_db=float(g), snr_db=snr, snr_std_db=std, rx_power_dbfs=power,
                                    frames=len(frames)))
        if not points:
            raise RuntimeError("calibrate: no frame came through at any TX gain: " + "; ".join(warnings))
    finally:
        for r in radios:
            r.stop_transmit()
    for a, b in zip(points, points[1:]):
        if b.snr_db <= a.snr_db:
            warnings.append(f"SNR does not increase from TX gain {a.tx_gain_db:g} to {b.tx_gain_db:g} dB "
                            f"({a.snr_db:.2f} -> {b.snr_db:.2f} dB): saturation? gains_for_snr will refuse")
    cfo_hz = (est.freq - f_tone) * s.rate_sps
    xo_ref = getattr(rx, "xo_correction_hz", None) or XO_NOMINAL_HZ.get(rx.kind)
    cfo = CfoResult(cfo_hz=cfo_hz, std_hz=est.freq_std * s.rate_sps, ppm=cfo_hz / s.freq_hz * 1e6,
                    tone_hz=f_tone * s.rate_sps, xo_reference_hz=xo_ref,
                    xo_correction_hz=None if xo_ref is None else xo_correction_hz(cfo_hz, s.freq_hz, xo_ref),
                    rx_tune_offset_hz=cfo_hz)
    iq = IqImbalanceResult(gain_db=iq_est.gain_db, phase_deg=iq_est.phase_deg, gain_std_db=iq_est.gain_std_db,
                           phase_std_deg=iq_est.phase_std_deg, image_rejection_db=iq_est.image_rejection_db,
                           correction=correction)
    results = Results(cfo=cfo, noise_floor_dbfs=noise.noise_floor_dbfs, noise_floor_std_db=noise.noise_floor_std_db,
                      gain_table=points, dc_offset=DcOffsetResult(noise.dc.real, noise.dc.imag, noise.dc_std),
                      iq_imbalance=iq)
    rec = CalibrationRecord(schema_version=SCHEMA_VERSION, note=s.note, tx=identity(tx), rx=identity(rx),
                            freq_hz=s.freq_hz, rate_sps=s.rate_sps, rx_gain_db=s.rx_gain_db, tone_tx_gain_db=tone_gain,
                            temperature_c=read_temperature(rx), timestamp=utc_now(),
                            software_version=f"mtsc-sdr {__version__}", results=results)
    return _plain(rec), warnings


def _plain(rec: CalibrationRecord) -> CalibrationRecord:
    """The record with numpy scalars turned into Python floats (YAML-safe), re-validated."""
    def conv(v):
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, (np.floating, float)):
            return float(v)
        if isinstance(v, np.integer):
            return int(v)
        return v

    return record_from_dict(conv(rec.to_dict()))


def receive_frames(rx: Radio, n: int, rate_sps: float, dc: complex, correction: list[list[float]]) -> list:
    """The calibration frames (first copy of each seq) in ``n`` received samples, DC and IQ
    imbalance removed first."""
    receiver = Receiver(sample_rate_hz=rate_sps)
    got = receiver.process(remove_dc_iq(fresh_samples(rx, n), dc, correction)) + receiver.flush()
    seen, frames = set(), []
    for f in got:
        if f.header.session_id == CALIBRATION_SESSION and f.header.seq not in seen:
            seen.add(f.header.seq)
            frames.append(f)
    return frames


# -- command line ---------------------------------------------------------------------------------------


def parse_radio(spec: str) -> tuple[str, str]:
    """``KIND[:ADDRESS]`` -> (kind, address); the address may itself hold colons (``pluto:ip:192.168.2.1``)."""
    kind, _, address = spec.partition(":")
    if kind not in RADIOS:
        *first, last = RADIOS
        raise ValueError(f"--tx/--rx: expected KIND[:ADDRESS] with KIND {', '.join(first)} or {last}, got {spec!r}")
    return kind, address


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = CalibrateSettings()
    p.add_argument("--tx", required=True, metavar="KIND[:ADDRESS]",
                   help="transmitting radio: pluto:ip:192.168.2.1, usrp:type=b200, sim (simulated loopback)")
    p.add_argument("--rx", metavar="KIND[:ADDRESS]", help="receiving radio (default: the --tx radio, a loopback)")
    p.add_argument("--profile", help="radio profile name or YAML (default: the kind's default profile)")
    p.add_argument("--freq-hz", type=float, default=d.freq_hz)
    p.add_argument("--rate-sps", type=float, default=d.rate_sps)
    p.add_argument("--rx-gain-db", type=float, default=d.rx_gain_db, help="receive gain (manual) of every measurement")
    p.add_argument("--gains", type=float, nargs="+", default=d.gains_db, metavar="DB", help="TX gains of the SNR table")
    p.add_argument("--tone-tx-gain-db", type=float, help="TX gain of the CFO / IQ tone (default: the highest --gains)")
    p.add_argument("--capture-samples", type=int, default=d.capture_samples)
    p.add_argument("--frames", type=int, default=d.frames, help="PHY frames per gain point")
    add_seed(p, d.seed, help="seed of the frames' payloads")
    p.add_argument("--out", default=str(DEFAULT_DIR), help="directory (or .yaml file) of the record")
    p.add_argument("--name", help="record id / file stem (default: <tx>__<rx>__<MHz>MHz)")
    p.add_argument("--note", default="", help="free text stored in the record")
    p.add_argument("--sim-profile", help="sim radios: impairment profile (ChannelProfile YAML)")
    p.add_argument("--sim-seed", type=int, default=0, help="sim radios: seed of noise and random impairments")
    p.add_argument("--sim-noise-floor-dbfs", type=float, help="sim radios: noise floor at the ADC (dBFS)")
    p.add_argument("--sim-path-loss-db", type=float, help="sim radios: path loss (default from the profile's SNR)")
    p.add_argument("--sim-temperature-c", type=float, help="sim radios: what the simulated sensor reads")
    p.add_argument("--capture", metavar="PREFIX",
                   help="also record everything the receiving radio delivered as the SigMF recording PREFIX "
                        "(annotated per step: noise, tone, each TX gain)")
    add_json(p, help="print one JSON object (record, path, warnings)")


def _open_pair(args: argparse.Namespace) -> tuple[Radio, Radio]:
    tx_kind, tx_addr = parse_radio(args.tx)
    rx_kind, rx_addr = parse_radio(args.rx or args.tx)
    same = (tx_kind, tx_addr) == (rx_kind, rx_addr)
    kw: dict = {}
    if tx_kind == "sim" or rx_kind == "sim":
        kw = {"impairments": args.sim_profile, "seed": args.sim_seed, "path_loss_db": args.sim_path_loss_db,
              "temperature_c": args.sim_temperature_c}
        if args.sim_noise_floor_dbfs is not None:
            kw["noise_floor_dbfs"] = args.sim_noise_floor_dbfs
        if not same:
            kw["air"] = "calibrate"          # two simulated radios hear each other
    if same and tx_kind != "sim" and not tx_addr:
        found = _discover(tx_kind)              # one radio: a loopback; two: transmitter and receiver
        tx_addr, rx_addr, same = found[0].address, found[-1].address, len(found) == 1
    else:
        if tx_kind != "sim" and not tx_addr:
            tx_addr = _discover(tx_kind)[0].address
        if rx_kind != "sim" and not rx_addr:
            rx_addr = _discover(rx_kind)[-1].address
    tx = open_radio(tx_kind, tx_addr, args.profile, **(kw if tx_kind == "sim" else {}))
    if same:
        return tx, tx
    try:
        rx = open_radio(rx_kind, rx_addr, args.profile, **(kw if rx_kind == "sim" else {}))
    except BaseException:
        tx.close()
        raise
    return tx, rx


class RecordedRadio:
    """A radio whose received samples also go into a SigMF recording (``calibrate --capture``),
    each receive annotated with the calibration step it belongs to (:attr:`step`). Everything
    else is the wrapped radio's. A disconnect keeps what had arrived (``RadioDisconnected.received``)."""

    def __init__(self, radio: Radio, writer):
        self._radio, self.writer, self.step = radio, writer, "setup"

    def __getattr__(self, name: str):
        return getattr(self._radio, name)

    def receive(self, n: int) -> np.ndarray:
        try:
            x = self._radio.receive(n)
        except RadioDisconnected as exc:
            self._keep(exc.received)
            raise
        self._keep(x)
        return x

    def _keep(self, x: np.ndarray) -> None:
        self.writer.write(x)
        self.writer.annotate(self.writer.samples_written - len(x), len(x), "calibration", self.step)


def _discover(kind: str):
    found = find_radios(kind)
    if not found:
        raise RadioNotFound(f"calibrate: {found.summary()}; give the address as {kind}:ADDRESS")
    return found


def format_table(rec: CalibrationRecord, path, warnings: list[str]) -> str:
    r = rec.results
    lines = [
        f"calibration {rec.id}: tx {rec.tx.kind} {rec.tx.serial} -> rx {rec.rx.kind} {rec.rx.serial}, "
        f"{rec.freq_hz / 1e6:g} MHz, {rec.rate_sps / 1e6:g} Msps, rx gain {rec.rx_gain_db:g} dB",
        f"  CFO              {r.cfo.cfo_hz:+.2f} Hz (std {r.cfo.std_hz:.3g} Hz, {r.cfo.ppm:+.4f} ppm)"
        + (f"; xo_correction {r.cfo.xo_correction_hz:.1f} Hz (from {r.cfo.xo_reference_hz:.1f})"
           if r.cfo.xo_correction_hz is not None else ""),
        f"  noise floor      {r.noise_floor_dbfs:.2f} dBFS (std {r.noise_floor_std_db:.3f} dB)",
        f"  DC offset        I {r.dc_offset.i:+.5f}  Q {r.dc_offset.q:+.5f} (std {r.dc_offset.std:.2g})",
        f"  IQ imbalance     gain {r.iq_imbalance.gain_db:+.3f} dB (std {r.iq_imbalance.gain_std_db:.2g}), "
        f"phase {r.iq_imbalance.phase_deg:+.3f} deg (std {r.iq_imbalance.phase_std_deg:.2g}), "
        f"image rejection {r.iq_imbalance.image_rejection_db:.1f} dB",
        f"  temperature      {'n/a' if rec.temperature_c is None else f'{rec.temperature_c:.1f} C'}",
        "  TX gain (dB)   SNR Es/N0 (dB)   std (dB)   payload (dBFS)   frames",
    ]
    for p in r.gain_table:
        lines.append(f"  {p.tx_gain_db:>12g}   {p.snr_db:>14.2f}   {p.snr_std_db:>8.3f}   {p.rx_power_dbfs:>14.2f}"
                     f"   {p.frames:>6d}")
    lines += [f"  warning: {w}" for w in warnings]
    lines.append(f"wrote {path}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    settings = from_dict(CalibrateSettings, {
        "freq_hz": args.freq_hz, "rate_sps": args.rate_sps, "rx_gain_db": args.rx_gain_db,
        "gains_db": list(args.gains), "tone_tx_gain_db": args.tone_tx_gain_db,
        "capture_samples": args.capture_samples, "frames": args.frames, "seed": args.seed, "note": args.note})
    try:
        tx, rx = _open_pair(args)
    except (RuntimeError, ValueError, OSError, ImportError) as exc:
        print(f"mtsc-sdr calibrate: {exc}", file=sys.stderr)
        return 1
    writer = None
    if args.capture:
        writer = SigMFWriter(args.capture, sample_rate_sps=settings.rate_sps, source="calibration",
                             frequency_hz=settings.freq_hz, hw=f"{rx.kind} {rx.address}", rx_gain_db=settings.rx_gain_db,
                             description=f"mtsc-sdr calibrate: {tx.kind} {tx.address} -> {rx.kind} {rx.address}")
        recorded = RecordedRadio(rx, writer)
        tx, rx = (recorded, recorded) if tx is rx else (tx, recorded)
    tty = not args.json and sys.stderr.isatty()

    def step(message: str) -> None:
        if writer is not None:
            rx.step = message
        if tty:
            print(f"calibrate: {message}", file=sys.stderr, flush=True)

    end = "complete"
    try:
        rec, warnings = calibrate(tx, rx, settings, progress=step)
    except BaseException as exc:
        end = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, RuntimeError):
            print(f"mtsc-sdr calibrate: {exc}", file=sys.stderr)
            return 1
        raise
    finally:
        tx.close()
        rx.close()
        if writer is not None:
            writer.close(end)
            print(f"calibrate: recorded {writer.samples_written} samples to {writer.data_path}", file=sys.stderr)
    if writer is not None:
        rec = replace(rec, note=(rec.note + " " if rec.note else "") + f"recording: {writer.meta_path.name}")
    path = save_record(rec, args.out, args.name)
    if args.json:
        print(json.dumps({"record_id": rec.id, "path": str(path), "record": rec.to_dict(), "warnings": warnings}))
    else:
        print(format_table(rec, path, warnings))
    return 0
