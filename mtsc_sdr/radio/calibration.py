"""Calibration records: what ``mtsc-sdr calibrate`` measured on one radio pair, as typed YAML.

One record per (TX radio, RX radio, frequency) in ``calibration/``; its id is the file stem. The
schema (every field is required; validation errors name the file and the dotted field, e.g.
``calibration/x.yaml: results.cfo.cfo_hz: expected a number, got 'abc'``)::

    schema_version: 1                    # int, == SCHEMA_VERSION
    note: str                            # free text, may be empty ("simulated example, not a lab ...")
    tx: {kind, serial, address, profile} # kind: pluto | usrp | sim; serial: the driver's serial
    rx: {kind, serial, address, profile} #   number, or the address where it reports none
    freq_hz: float > 0                   # carrier frequency of the measurement
    rate_sps: float > 0                  # sample rate of the measurement
    rx_gain_db: float                    # receive gain of every measurement (manual gain)
    tone_tx_gain_db: float               # TX gain of the CFO / IQ-imbalance tone
    temperature_c: float | null          # the RX radio's temperature sensor, null if unreadable
    timestamp: str                       # UTC ISO 8601, e.g. 2025-01-31T12:00:00+00:00
    software_version: str                # "mtsc-sdr 0.1.0"
    results:
      cfo:
        cfo_hz: float                    # received minus transmitted baseband frequency
                                         #   (= TX LO - RX LO: the received signal is x e^{+j2 pi cfo t})
        std_hz: float >= 0               # the estimator's standard deviation
        ppm: float                       # cfo_hz / freq_hz * 1e6
        tone_hz: float                   # frequency of the tone that was sent
        xo_reference_hz: float | null    # Pluto: the RX radio's xo_correction when measured (40 MHz
                                         #   nominal); null for radios without one
        xo_correction_hz: float | null   # Pluto: write to the RX radio's xo_correction (see below)
        rx_tune_offset_hz: float         # any radio (USRP): tune the RX to freq_hz + this (see below)
      noise_floor_dbfs: float            # complex noise power with TX off, dBFS (|x| = 1 is 0 dBFS)
      noise_floor_std_db: float >= 0
      gain_table:                        # >= 1 points, tx_gain_db strictly increasing
        - {tx_gain_db, snr_db, snr_std_db, rx_power_dbfs, frames}
                                         # snr_db: Es/N0 per payload symbol (conventions.py),
                                         #   measured after removing the DC offset and IQ
                                         #   imbalance below (they are not counted as noise);
                                         #   rx_power_dbfs: the payload's power at the ADC
      dc_offset: {i, q, std}             # full-scale units (|i|, |q| <= 1); std: of one component
                                         #   (rms of I's and Q's)
      iq_imbalance:
        gain_db: float                   # Q-branch gain relative to I (|.| < 20)
        phase_deg: float                 # quadrature phase error (|.| < 45)
        gain_std_db, phase_std_deg: float >= 0
        image_rejection_db: float        # of the measured imbalance
        correction: [[1, 0], [c21, c22]] # real 2x2 matrix M with [I, Q] = M [I' - dc_i, Q' - dc_q];
                                         #   c21 = tan(phase), c22 = 1 / (g cos(phase)), g = 10^(gain_db/20)

Models (the software channel's, :mod:`mtsc_sdr.channel.frontend`): the receiver's IQ imbalance is
``I' = I, Q' = g (Q cos(phi) - I sin(phi))`` and the DC offset is added after it, so
:func:`correct_iq` subtracts the DC and applies ``correction``.

CFO corrections (``cfo = f_TX_LO - f_RX_LO`` at the carrier ``f_c = freq_hz``)
------------------------------------------------------------------------------
**Pluto** (AD936x): LO and sample clock come from one reference crystal (nominally 40 MHz). The
driver's ``xo_correction`` attribute (``ad9361-phy``, Hz) is the frequency it *believes* the crystal
has; it programs the synthesiser for ``f_c`` with that belief, so the LO comes out at
``f_LO = f_c * f_xo_true / xo_correction``. To bring the RX LO onto the TX LO
(``f_RX' = f_RX + cfo``)::

    xo_correction_rx' = xo_correction_rx * f_RX / (f_RX + cfo) = xo_reference_hz / (1 + cfo / f_c)

(``f_RX = f_c (1 + eps)`` with ``eps`` a few ppm; dropping it errs by ``eps * cfo / f_c`` relative,
4e-12 or 0.2 mHz of the 40 MHz at 2 ppm, and leaves a CFO of ``cfo * eps``, 0.01 Hz.) Correcting the TX radio instead:
``xo_correction_tx' = xo_correction_tx / (1 - cfo / f_c)`` (~ ``nominal * (1 + cfo / f_c)``). The
crystal also clocks the ADC/DAC, so this fixes the sample-rate offset too. A single Pluto looped
back to itself shares one crystal: its CFO is ~0 whatever the crystal's error, so an absolute
correction needs a second radio or a reference source.

**USRP** (and any radio without ``xo_correction``): tune the receiver to ``freq_hz + cfo`` (UHD:
``uhd.tune_request(freq_hz + rx_tune_offset_hz)``, or the TX to ``freq_hz - cfo``); the residual is
``cfo * eps``. With a shared 10 MHz reference / PPS (or a GPSDO) the CFO is ~0 and this is moot.
``cfo`` grows in proportion to the carrier: at another frequency scale it by ``f_new / freq_hz``.

Functions: :func:`load_record`, :func:`save_record`, :func:`find_record` (the record for a radio pair
and frequency, with warnings when it is old or taken at another frequency: :func:`record_warnings`;
:func:`use_record` for ``run``), :func:`gains_for_snr` / :func:`snr_for_gain` (the measured TX gain
-> SNR table and its interpolated inverse), :func:`correct_iq`, :func:`channel_profile` (the
software channel with the measured impairments), :func:`load_impairment_profile` (a ``profile:``
value, channel profile or calibration record, as the software channel to run).
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import yaml

from mtsc_sdr.channel.profile import ChannelProfile
from mtsc_sdr.config import YAML_ERRORS, ConfigError, check, from_dict, read_yaml, to_dict, yaml_loader
from mtsc_sdr.conventions import PAYLOAD_POWER

from .registry import RadioKindName

SCHEMA_VERSION = 1
#: Default directory of the records (relative to the working directory, like ``configs/``).
DEFAULT_DIR = Path("calibration")
#: A record taken farther than this from the asked frequency gets a warning (Hz).
DEFAULT_FREQ_TOLERANCE_HZ = 1.0e6
#: A record older than this gets a warning (days).
DEFAULT_MAX_AGE_DAYS = 30.0


class CalibrationError(ConfigError):
    """A record that cannot be used: ``file`` and ``field`` name where (the message says what)."""

    def __init__(self, file: Optional[Path], field: str, message: str):
        self.file = file
        where = f"{file}: " if file is not None else ""
        super().__init__(f"{where}{field}" if field else where.rstrip(": "), message)
        self.field = field


def _p(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _finite(obj, path: str, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        check(v is None or math.isfinite(v), _p(path, n), f"must be finite, got {v!r}")


@dataclass
class RadioIdentity:
    """Which radio: its kind, serial number (or address when the driver reports none), address and
    radio profile name."""

    kind: RadioKindName
    serial: str
    address: str
    profile: str

    def validate(self, path: str) -> None:
        check(bool(self.serial), _p(path, "serial"), "must not be empty")

    def matches(self, ident: Optional[str]) -> bool:
        """``ident`` (a serial or an address) names this radio; None matches any."""
        return ident is None or ident in (self.serial, self.address)


@dataclass
class CfoResult:
    """Carrier frequency offset and its corrections (module docstring)."""

    cfo_hz: float
    std_hz: float
    ppm: float
    tone_hz: float
    xo_reference_hz: Optional[float]
    xo_correction_hz: Optional[float]
    rx_tune_offset_hz: float

    def validate(self, path: str) -> None:
        _finite(self, path, "cfo_hz", "std_hz", "ppm", "tone_hz", "xo_reference_hz", "xo_correction_hz",
                "rx_tune_offset_hz")
        check(self.std_hz >= 0, _p(path, "std_hz"), "must be >= 0")
        check((self.xo_reference_hz is None) == (self.xo_correction_hz is None), _p(path, "xo_correction_hz"),
              "xo_reference_hz and xo_correction_hz are given together or both null")
        check(self.xo_reference_hz is None or self.xo_reference_hz > 0, _p(path, "xo_reference_hz"), "must be > 0")


@dataclass
class GainPoint:
    """One point of the TX gain sweep: the measured Es/N0 per payload symbol (dB) at ``tx_gain_db``,
    its std, the payload's received power (dBFS) and how many frames were measured."""

    tx_gain_db: float
    snr_db: float
    snr_std_db: float
    rx_power_dbfs: float
    frames: int

    def validate(self, path: str) -> None:
        _finite(self, path, "tx_gain_db", "snr_db", "snr_std_db", "rx_power_dbfs")
        check(self.snr_std_db >= 0, _p(path, "snr_std_db"), "must be >= 0")
        check(self.frames >= 1, _p(path, "frames"), f"must be >= 1, got {self.frames}")


@dataclass
class DcOffsetResult:
    """Receiver DC offset in full-scale units; ``std``: the estimate's standard deviation of one
    component (rms of I's and Q's)."""

    i: float
    q: float
    std: float

    def validate(self, path: str) -> None:
        _finite(self, path, "i", "q", "std")
        check(abs(self.i) <= 1, _p(path, "i"), "must be within +-1 (full scale)")
        check(abs(self.q) <= 1, _p(path, "q"), "must be within +-1 (full scale)")
        check(self.std >= 0, _p(path, "std"), "must be >= 0")


def iq_correction_matrix(gain_db: float, phase_deg: float) -> list[list[float]]:
    """The 2x2 real matrix that undoes ``I' = I, Q' = g (Q cos(phi) - I sin(phi))``."""
    g, phi = 10.0 ** (gain_db / 20.0), math.radians(phase_deg)
    return [[1.0, 0.0], [math.tan(phi), 1.0 / (g * math.cos(phi))]]


@dataclass
class IqImbalanceResult:
    """Receiver IQ imbalance (the software channel's model) and the matrix that corrects it."""

    gain_db: float
    phase_deg: float
    gain_std_db: float
    phase_std_deg: float
    image_rejection_db: float
    correction: list[list[float]]

    def validate(self, path: str) -> None:
        _finite(self, path, "gain_db", "phase_deg", "gain_std_db", "phase_std_deg")
        check(abs(self.gain_db) < 20, _p(path, "gain_db"), "must be within +-20 dB")
        check(abs(self.phase_deg) < 45, _p(path, "phase_deg"), "must be within +-45 degrees")
        check(self.gain_std_db >= 0 and self.phase_std_deg >= 0, _p(path, "gain_std_db"), "stds must be >= 0")
        m = self.correction
        check(len(m) == 2 and all(len(r) == 2 for r in m), _p(path, "correction"), "must be a 2x2 matrix")
        want = iq_correction_matrix(self.gain_db, self.phase_deg)
        check(np.allclose(m, want, rtol=1e-6, atol=1e-9), _p(path, "correction"),
              f"does not match gain_db and phase_deg (expected {want})")


@dataclass
class Results:
    """What was measured (see the module docstring for units and definitions)."""

    cfo: CfoResult
    noise_floor_dbfs: float
    noise_floor_std_db: float
    gain_table: list[GainPoint]
    dc_offset: DcOffsetResult
    iq_imbalance: IqImbalanceResult

    def validate(self, path: str) -> None:
        _finite(self, path, "noise_floor_dbfs", "noise_floor_std_db")
        check(self.noise_floor_dbfs < 0, _p(path, "noise_floor_dbfs"), "must be below full scale (< 0 dBFS)")
        check(bool(self.gain_table), _p(path, "gain_table"), "needs at least one point")
        gains = [p.tx_gain_db for p in self.gain_table]
        for k in range(1, len(gains)):
            check(gains[k] > gains[k - 1], _p(path, f"gain_table[{k}].tx_gain_db"),
                  f"tx gains must increase strictly ({gains[k - 1]:g} then {gains[k]:g})")


@dataclass
class CalibrationRecord:
    """One calibration (module docstring). ``id`` (the file stem) and ``path`` are set by
    :func:`load_record` / :func:`save_record`; they are not part of the YAML."""

    schema_version: int
    note: str
    tx: RadioIdentity
    rx: RadioIdentity
    freq_hz: float
    rate_sps: float
    rx_gain_db: float
    tone_tx_gain_db: float
    temperature_c: Optional[float]
    timestamp: str
    software_version: str
    results: Results

    def validate(self, path: str = "") -> None:
        check(self.schema_version == SCHEMA_VERSION, _p(path, "schema_version"),
              f"this software reads version {SCHEMA_VERSION}, the record is version {self.schema_version}")
        _finite(self, path, "freq_hz", "rate_sps", "rx_gain_db", "tone_tx_gain_db", "temperature_c")
        check(self.freq_hz > 0, _p(path, "freq_hz"), "must be > 0")
        check(self.rate_sps > 0, _p(path, "rate_sps"), "must be > 0")
        try:
            t = _dt.datetime.fromisoformat(self.timestamp)
        except ValueError:
            t = None
        check(t is not None and t.utcoffset() == _dt.timedelta(0), _p(path, "timestamp"),
              f"expected UTC ISO 8601 such as 2025-01-31T12:00:00+00:00, got {self.timestamp!r}")

    @property
    def time(self) -> _dt.datetime:
        """The timestamp as an aware UTC datetime."""
        return _dt.datetime.fromisoformat(self.timestamp)

    def to_dict(self) -> dict:
        return to_dict(self)


def utc_now() -> str:
    """The current time, UTC ISO 8601 to the second (the record's ``timestamp`` format)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# -- files ---------------------------------------------------------------------------------------------


def record_from_dict(data, file: Optional[Path] = None) -> CalibrationRecord:
    """A validated record from a mapping; errors are :class:`CalibrationError` naming file and field."""
    try:
        return from_dict(CalibrationRecord, data)
    except CalibrationError:
        raise
    except ConfigError as exc:
        msg = str(exc)[len(exc.field) + 2:] if exc.field else str(exc)
        raise CalibrationError(file, exc.field, msg) from None


def is_record_data(data) -> bool:
    """Whether parsed YAML looks like a calibration record (a mapping with ``schema_version`` and
    ``results``) rather than a channel profile."""
    return isinstance(data, dict) and "schema_version" in data and "results" in data


def _read_yaml(file: Path):
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CalibrationError(file, "", f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise CalibrationError(file, "", f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return yaml.load(text, Loader=yaml_loader())  # safe: a SafeLoader subclass
    except YAML_ERRORS as exc:
        raise CalibrationError(file, "", f"not valid YAML: {str(exc)[:300]}") from None


def load_record(file: str | Path) -> CalibrationRecord:
    """Read and validate a record; ``record.id`` is the file stem. A corrupt file raises
    :class:`CalibrationError` naming the file and the field."""
    file = Path(file)
    rec = record_from_dict(_read_yaml(file), file)
    rec.id, rec.path = file.stem, file
    return rec


def record_name(rec: CalibrationRecord) -> str:
    """Default file stem: ``<tx kind>-<tx serial>__<rx kind>-<rx serial>__<MHz>MHz`` (safe characters)."""
    def safe(s: str) -> str:
        return "".join(c if c.isalnum() or c in "-." else "-" for c in s).strip("-") or "x"
    mhz = f"{rec.freq_hz / 1e6:.6g}"
    return f"{safe(rec.tx.kind + '-' + rec.tx.serial)}__{safe(rec.rx.kind + '-' + rec.rx.serial)}__{safe(mhz)}MHz"


def save_record(rec: CalibrationRecord, out: str | Path = DEFAULT_DIR, name: Optional[str] = None) -> Path:
    """Write ``rec`` (re-validated) as YAML: to ``out`` itself when it ends in ``.yaml``, else to
    ``out/<name or record_name(rec)>.yaml``. Returns the path; sets ``rec.id`` and ``rec.path``."""
    data = rec.to_dict()
    record_from_dict(data)  # refuse to write what could not be read back
    out = Path(out)
    file = out if out.suffix in (".yaml", ".yml") else out / f"{name or record_name(rec)}.yaml"
    file.parent.mkdir(parents=True, exist_ok=True)
    head = ("# Calibration record written by `mtsc-sdr calibrate` (schema and formulas: the docstring of\n"
            "# mtsc_sdr/radio/calibration.py). SNR is Es/N0 per complex payload symbol (conventions.py).\n")
    file.write_text(head + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100))
    rec.id, rec.path = file.stem, file
    return file


# -- finding the record of a radio pair -------------------------------------------------------------


@dataclass
class RecordMatch:
    """What :func:`find_record` found: the record (None when none matches) and warnings in words."""

    record: Optional[CalibrationRecord]
    warnings: list[str]

    @property
    def id(self) -> Optional[str]:
        return None if self.record is None else self.record.id


def find_record(directory: str | Path, tx_serial: Optional[str], rx_serial: Optional[str], freq_hz: float, *,
                kind: Optional[str] = None, max_age_days: float = DEFAULT_MAX_AGE_DAYS,
                freq_tolerance_hz: float = DEFAULT_FREQ_TOLERANCE_HZ,
                now: Optional[_dt.datetime] = None) -> RecordMatch:
    """The best record in ``directory`` for a radio pair at ``freq_hz``.

    ``tx_serial`` / ``rx_serial`` are compared with each record's ``serial`` and ``address`` (None:
    any radio, then ``kind`` must match the records' radios when given). Best: the nearest
    frequency, then the newest. Warnings: the record is older than ``max_age_days``; it was taken
    more than ``freq_tolerance_hz`` from ``freq_hz``; files that are not valid records (skipped,
    each named with its bad field); none matched.
    """
    directory = Path(directory)
    warnings: list[str] = []
    candidates = []
    for file in sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml")):
        try:
            rec = load_record(file)
        except CalibrationError as exc:
            warnings.append(f"skipped {exc}")
            continue
        if not (rec.tx.matches(tx_serial) and rec.rx.matches(rx_serial)):
            continue
        if kind is not None and (rec.tx.kind != kind or rec.rx.kind != kind):
            continue
        candidates.append(rec)
    if not candidates:
        who = f"tx {tx_serial or 'any ' + (kind or 'radio')}, rx {rx_serial or 'any ' + (kind or 'radio')}"
        warnings.append(f"no calibration record for {who} in {directory}")
        return RecordMatch(None, warnings)
    best = min(candidates, key=lambda r: (abs(r.freq_hz - freq_hz), -r.time.timestamp()))
    warnings += record_warnings(best, freq_hz, max_age_days=max_age_days, freq_tolerance_hz=freq_tolerance_hz,
                                now=now)
    if tx_serial is None or rx_serial is None:
        warnings.append(f"calibration {best.id} matched by radio kind only (no radio address given)")
    return RecordMatch(best, warnings)


def record_warnings(rec: CalibrationRecord, freq_hz: float, *, max_age_days: float = DEFAULT_MAX_AGE_DAYS,
                    freq_tolerance_hz: float = DEFAULT_FREQ_TOLERANCE_HZ,
                    now: Optional[_dt.datetime] = None) -> list[str]:
    """Why ``rec`` may not describe a link at ``freq_hz`` today: older than ``max_age_days``, or
    taken more than ``freq_tolerance_hz`` away (empty when neither)."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    out = []
    rid = getattr(rec, "id", "?")
    age_days = (now - rec.time).total_seconds() / 86400.0
    if age_days > max_age_days:
        out.append(f"calibration {rid} is {age_days:.1f} days old (older than {max_age_days:g} days): "
                   f"recalibrate with mtsc-sdr calibrate")
    if abs(rec.freq_hz - freq_hz) > freq_tolerance_hz:
        out.append(f"calibration {rid} was taken at {rec.freq_hz / 1e6:.6g} MHz, not {freq_hz / 1e6:.6g} MHz "
                   f"(tolerance {freq_tolerance_hz / 1e6:g} MHz): its CFO scales with frequency, its gain "
                   f"table may not hold")
    return out


def use_record(spec: str, kind: str, address: Optional[str], freq_hz: float, *,
               max_age_days: float = DEFAULT_MAX_AGE_DAYS, directory: str | Path = DEFAULT_DIR) -> RecordMatch:
    """The record a run over ``kind`` radios at ``address`` (TX and RX; None: not known) names with
    ``spec``: ``"auto"`` searches ``directory`` (:func:`find_record`), anything else is a record's
    path (loaded, so a corrupt one raises :class:`CalibrationError`), with the same warnings."""
    if spec == "auto":
        return find_record(directory, address, address, freq_hz, kind=kind, max_age_days=max_age_days)
    rec = load_record(spec)
    warnings = record_warnings(rec, freq_hz, max_age_days=max_age_days)
    for role, ident in (("tx", rec.tx), ("rx", rec.rx)):
        if ident.kind != kind or not ident.matches(address):
            warnings.append(f"calibration {rec.id} is for {role} {ident.kind} {ident.serial} ({ident.address}), "
                            f"not the {kind} {address or '(discovered)'} in use")
    return RecordMatch(rec, warnings)


# -- the gain table -------------------------------------------------------------------------------------


def _table(rec: CalibrationRecord) -> tuple[np.ndarray, np.ndarray]:
    g = np.array([p.tx_gain_db for p in rec.results.gain_table])
    s = np.array([p.snr_db for p in rec.results.gain_table])
    return g, s


def snr_for_gain(rec: CalibrationRecord, tx_gain_db: float) -> float:
    """Measured Es/N0 (dB) at ``tx_gain_db``, interpolated linearly in dB between table points;
    outside the measured gains raises ValueError."""
    g, s = _table(rec)
    if not g[0] <= tx_gain_db <= g[-1]:
        raise ValueError(f"tx_gain_db {tx_gain_db:g} dB is outside the measured gains {g[0]:g} .. {g[-1]:g} dB "
                         f"of calibration {getattr(rec, 'id', '?')}")
    return float(np.interp(tx_gain_db, g, s))


def gains_for_snr(rec: CalibrationRecord, snr_db: float) -> tuple[float, float]:
    """(tx_gain_db, rx_gain_db) that give Es/N0 ``snr_db``: the TX gain interpolated linearly (dB)
    on the measured table at the record's RX gain.

    Raises ValueError when ``snr_db`` is outside the measured range, or when the table's SNR does
    not increase with the gain (then it cannot be inverted: saturation, or a bad measurement).
    """
    g, s = _table(rec)
    rid = getattr(rec, "id", "?")
    bad = np.flatnonzero(np.diff(s) <= 0)
    if bad.size:
        k = int(bad[0])
        raise ValueError(f"calibration {rid}: the SNR does not increase from tx {g[k]:g} to {g[k + 1]:g} dB "
                         f"({s[k]:.2f} -> {s[k + 1]:.2f} dB; saturation?), so it cannot be inverted")
    if not s[0] <= snr_db <= s[-1]:
        raise ValueError(f"snr_db {snr_db:g} dB is outside the range measured by calibration {rid}: "
                         f"{s[0]:.2f} .. {s[-1]:.2f} dB (tx gains {g[0]:g} .. {g[-1]:g} dB at rx gain "
                         f"{rec.rx_gain_db:g} dB); measure more gains with mtsc-sdr calibrate --gains")
    return float(np.interp(snr_db, s, g)), rec.rx_gain_db


# -- using a record -------------------------------------------------------------------------------------


def correct_iq(x: np.ndarray, rec: CalibrationRecord) -> np.ndarray:
    """Remove the record's DC offset and IQ imbalance from received samples.

    x: complex (N,), full scale 1.0, as received at the record's settings. Returns complex64 (N,):
    ``[I, Q] = correction @ [I' - dc_i, Q' - dc_q]``.
    """
    dc = rec.results.dc_offset
    return remove_dc_iq(x, complex(dc.i, dc.q), rec.results.iq_imbalance.correction)


def remove_dc_iq(x: np.ndarray, dc: complex, correction: list[list[float]]) -> np.ndarray:
    """``[I, Q] = correction @ [I' - Re dc, Q' - Im dc]`` for complex (N,) ``x``; complex64 (N,)."""
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"x: expected a 1-D array, got shape {x.shape}")
    m = correction
    i = x.real.astype(np.float64) - dc.real
    q = x.imag.astype(np.float64) - dc.imag
    return ((m[0][0] * i + m[0][1] * q) + 1j * (m[1][0] * i + m[1][1] * q)).astype(np.complex64)


def channel_profile(rec: CalibrationRecord, *, tx_gain_db: Optional[float] = None,
                    snr_db: Optional[float] = None) -> ChannelProfile:
    """The software channel with the record's CFO, IQ imbalance and DC offset at the record's rate.

    The operating point is ``tx_gain_db`` (default: the table's highest gain; refused outside the
    measured gains). The software channel carries the payload at ``PAYLOAD_POWER`` while the radio
    received it at ``rx_power_dbfs`` (interpolated on the table), so the DC offset is scaled by
    ``sqrt(PAYLOAD_POWER / rx_power)`` to keep the lab's DC-to-payload ratio; the AWGN is the SNR
    measured there, or ``snr_db`` (a later ``snr_db`` override of the profile, e.g. a run's SNR
    sweep, changes only the noise). Raises ValueError when the scaled DC would exceed full scale
    (choose a higher gain). Returns a :class:`~mtsc_sdr.channel.profile.ChannelProfile`.
    """
    r = rec.results
    g, _ = _table(rec)
    gain = float(g[-1]) if tx_gain_db is None else float(tx_gain_db)
    snr = snr_for_gain(rec, gain) if snr_db is None else float(snr_db)
    p_rx = 10.0 ** (float(np.interp(gain, g, [p.rx_power_dbfs for p in r.gain_table])) / 10.0)
    scale = math.sqrt(PAYLOAD_POWER / p_rx)
    dc_i, dc_q = r.dc_offset.i * scale, r.dc_offset.q * scale
    if max(abs(dc_i), abs(dc_q)) > 1.0:
        raise ValueError(f"calibration {getattr(rec, 'id', '?')}: at TX gain {gain:g} dB its DC offset would be "
                         f"{max(abs(dc_i), abs(dc_q)):.3g} x full scale in the software channel; use a higher "
                         f"tx_gain_db")
    return ChannelProfile.from_dict({
        "rate_sps": rec.rate_sps,
        "cfo": {"cfo_hz": r.cfo.cfo_hz},
        "awgn": {"snr_db": snr},
        "iq_imbalance": {"gain_db": r.iq_imbalance.gain_db, "phase_deg": r.iq_imbalance.phase_deg},
        "dc_offset": {"i": dc_i, "q": dc_q},
    })


#: Prefix of a ``profile`` value naming a calibration record instead of a channel profile.
CALIBRATION_PREFIX = "calibration:"


def load_impairment_profile(spec: str | Path) -> ChannelProfile:
    """The channel profile a ``profile:`` value (run / link-test configs, ``mtsc-sdr channel
    --profile``) names: a ChannelProfile YAML, or a calibration record (``calibration/*.yaml``),
    recognised by the ``calibration:`` prefix or by its content (:func:`is_record_data`). A record
    becomes the software channel of :func:`channel_profile`: the measured CFO, IQ imbalance and DC
    offset at the record's rate, with the SNR of its highest-gain point (override it with ``snr_db``).
    """
    text = str(spec)
    if text.startswith(CALIBRATION_PREFIX) or _is_record_file(Path(text)):
        return channel_profile(load_record(text.removeprefix(CALIBRATION_PREFIX)))
    return ChannelProfile.from_yaml(text)


def _is_record_file(file: Path) -> bool:
    if not file.is_file():
        return False
    try:
        return is_record_data(read_yaml(file))
    except ConfigError:
        return False      # unreadable: ChannelProfile.from_yaml reports it


def xo_correction_hz(cfo_hz: float, freq_hz: float, reference_hz: float = 40.0e6, *, apply_to: str = "rx") -> float:
    """The Pluto ``xo_correction`` that removes ``cfo_hz`` (TX LO - RX LO) at ``freq_hz``, for the RX
    radio (``reference_hz / (1 + cfo/f)``) or the TX radio (``reference_hz / (1 - cfo/f)``), where
    ``reference_hz`` is that radio's current ``xo_correction`` (40 MHz nominal). Module docstring."""
    if apply_to == "rx":
        return reference_hz / (1.0 + cfo_hz / freq_hz)
    if apply_to == "tx":
        return reference_hz / (1.0 - cfo_hz / freq_hz)
    raise ValueError(f"apply_to: expected 'rx' or 'tx', got {apply_to!r}")
