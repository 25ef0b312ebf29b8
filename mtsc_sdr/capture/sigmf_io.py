"""SigMF recordings of IQ streams: written as the samples arrive, read back with checks.

A recording is the SigMF pair ``NAME.sigmf-data`` + ``NAME.sigmf-meta``:

* ``.sigmf-data``: raw samples, datatype ``cf32_le`` (complex64: interleaved little-endian
  float32 I, Q; 8 bytes per sample; full scale 1.0 as everywhere in mtsc-sdr). Each chunk is
  appended with unbuffered ``os.write`` calls as it arrives, so the writer never holds more than
  one chunk and a killed process leaves every sample it had written.
* ``.sigmf-meta``: JSON (SigMF 1.2, valid for ``sigmf``'s validator). Written at open, rewritten
  at most every ``meta_interval_s`` while samples arrive and at close, always atomically (temp
  file + rename), so there is never a half-written meta file.

Global fields: ``core:datatype``, ``core:sample_rate`` (samples/s), ``core:version``,
``core:recorder`` (``"mtsc-sdr <version>"``), ``core:hw``, ``core:description``,
``core:extensions`` (declares ``mtsc``), ``core:sha512`` (at close) and the project's extension
fields:

==========================  ===============================================================
``mtsc:source``             what was recorded: ``"bs input"``, ``"link-test"``, ``"calibration"``...
``mtsc:rx_gain_db``         receive gain, dB (radios; absent when not known)
``mtsc:tx_gain_db``         transmit gain, dB (radios; absent when not known)
``mtsc:calibration_id``     the calibration record in use (``""``: none)
``mtsc:sample_count``       samples in the data file when the meta file was written
``mtsc:end``                ``"open"`` (still recording, or the recorder was killed: the data
                            file may hold more samples than ``mtsc:sample_count``),
                            ``"complete"``, or the error that ended the stream
==========================  ===============================================================

plus what the recorder adds (the base station: ``mtsc:checkpoint``, ``mtsc:sessions``; see
:mod:`mtsc_sdr.capture.hooks`). One capture segment starts at sample 0 with ``core:datetime``
(UTC at open) and ``core:frequency`` (Hz, when known). Annotations mark what the recorder found
(``core:sample_start``, ``core:sample_count`` in the recording's own sample index,
``core:label``, ``core:comment``, structured ``mtsc:*`` fields).

:func:`read_recording` refuses a corrupt recording with :class:`RecordingError` naming the file
and the field. Nothing is ever unpickled: the meta file is JSON, the data file raw floats.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import numpy as np

from mtsc_sdr import __version__

# sigmf and jsonschema (~0.1-0.5 s) are imported when a recording is read or its meta written: the
# base station and the link test import this module and record only with --capture.

#: The one datatype mtsc-sdr writes and reads.
DATATYPE = "cf32_le"
SAMPLE_BYTES = 8
DATA_EXT, META_EXT = ".sigmf-data", ".sigmf-meta"
#: ``mtsc:end`` of a recording whose writer has not closed it (still recording, or killed).
END_OPEN = "open"
END_COMPLETE = "complete"
#: The SigMF extension holding the project's fields.
EXTENSION = {"name": "mtsc", "version": "1.0.0", "optional": True}


class RecordingError(ValueError):
    """A recording cannot be read (or written) as asked; the message names the file and field."""


def recording_paths(path: str | Path) -> tuple[Path, Path]:
    """``(NAME.sigmf-meta, NAME.sigmf-data)`` for ``NAME``, ``NAME.sigmf-meta`` or ``NAME.sigmf-data``."""
    p = Path(path)
    if p.name.endswith((DATA_EXT, META_EXT)):
        p = p.with_name(p.name.rsplit(".", 1)[0])
    return p.with_name(p.name + META_EXT), p.with_name(p.name + DATA_EXT)


def _version() -> str:
    return __version__


def _write_atomic(path: Path, text: str, *, sync: bool = False) -> None:
    """Replace ``path`` with ``text`` so that a reader sees the old or the new file, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        if sync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


class SigMFWriter:
    """Streams complex64 chunks into a SigMF recording (see the module docstring).

    Args:
        path: ``NAME`` (or ``NAME.sigmf-meta`` / ``NAME.sigmf-data``); parent folders are made,
            an existing recording of that name is replaced.
        sample_rate_sps: the stream's sample rate, samples/s.
        source: what is recorded (``"bs input"``, ``"link-test"``, ``"calibration"``, ...).
        frequency_hz: centre frequency of the capture segment (radios), None when meaningless.
        hw: the hardware (``core:hw``), e.g. ``"ADALM-Pluto ip:192.168.2.1"`` or ``"software channel"``.
        rx_gain_db, tx_gain_db: radio gains, dB (None: not recorded).
        calibration_id: id of the calibration record in use (``""``: none).
        description: free text (``core:description``).
        fields: more global fields, each key ``"mtsc:<name>"``.
        meta_interval_s: rewrite the meta file at most this often while samples arrive.

    Use as a context manager, or call :meth:`close` (``end``: ``"complete"`` or what ended the
    stream); :func:`record` does that for a chunk iterator that may fail.
    """

    def __init__(self, path: str | Path, *, sample_rate_sps: float, source: str,
                 frequency_hz: Optional[float] = None, hw: str = "", rx_gain_db: Optional[float] = None,
                 tx_gain_db: Optional[float] = None, calibration_id: str = "", description: str = "",
                 fields: Optional[dict[str, Any]] = None, meta_interval_s: float = 5.0):
        if not sample_rate_sps > 0:
            raise RecordingError(f"{path}: sample_rate_sps must be positive, got {sample_rate_sps!r}")
        for key in fields or {}:
            if not key.startswith("mtsc:"):
                raise RecordingError(f"{path}: extra field {key!r} must be in the mtsc: namespace")
        self.meta_path, self.data_path = recording_paths(path)
        self.meta_path.parent.mkdir(parents=True, exist_ok=True)
        self.samples_written = 0
        self.closed = False
        self.meta_interval_s = meta_interval_s
        self._sha = hashlib.sha512()
        self._annotations: list[dict[str, Any]] = []
        self._global: dict[str, Any] = {
            "core:datatype": DATATYPE, "core:sample_rate": float(sample_rate_sps), "core:version": _spec_version(),
            "core:num_channels": 1, "core:recorder": f"mtsc-sdr {_version()}", "core:hw": hw,
            "core:extensions": [dict(EXTENSION)], "mtsc:source": source, "mtsc:calibration_id": calibration_id,
        }
        if description:
            self._global["core:description"] = description
        if rx_gain_db is not None:
            self._global["mtsc:rx_gain_db"] = float(rx_gain_db)
        if tx_gain_db is not None:
            self._global["mtsc:tx_gain_db"] = float(tx_gain_db)
        self._global.update(fields or {})
        self._capture: dict[str, Any] = {
            "core:sample_start": 0,
            "core:datetime": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        if frequency_hz is not None:
            self._capture["core:frequency"] = float(frequency_hz)
        self._fd = os.open(self.data_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._t_meta = time.monotonic()
        self._write_meta(END_OPEN)

    # -- writing ------------------------------------------------------------------------------------

    def write(self, samples: np.ndarray) -> None:
        """Append complex samples (1-D, any length; cast to complex64 little-endian) to the data file."""
        self._check_open()
        x = np.asarray(samples)
        if x.ndim != 1:
            raise ValueError(f"{self.data_path}: samples must be 1-D, got shape {x.shape}")
        if not x.size:
            return
        x = np.ascontiguousarray(x, dtype="<c8")
        buf = memoryview(x).cast("B")
        done = 0
        while done < len(buf):                    # os.write may write less than asked (signals, pipes)
            done += os.write(self._fd, buf[done:])
        self._sha.update(buf)
        self.samples_written += x.size
        if time.monotonic() - self._t_meta >= self.meta_interval_s:
            self._write_meta(END_OPEN)

    def annotate(self, start: int, count: int, label: str, comment: str = "", **fields: Any) -> None:
        """Mark samples ``[start, start + count)`` of this recording with ``label`` and ``comment``;
        ``fields`` become ``mtsc:<name>`` keys (JSON values)."""
        self.add_annotation(annotation(start, count, label, comment, **fields))

    def add_annotation(self, ann: dict[str, Any]) -> None:
        """Add a SigMF annotation dict (see :func:`annotation`), clipped to the samples written so far."""
        self._check_open()
        start = min(max(int(ann["core:sample_start"]), 0), self.samples_written)
        count = max(min(int(ann.get("core:sample_count", 0)), self.samples_written - start), 0)
        self._annotations.append(dict(ann, **{"core:sample_start": start, "core:sample_count": count}))

    def set_field(self, key: str, value: Any) -> None:
        """Set a global ``mtsc:`` field (JSON value); it is in the next meta file written."""
        if not key.startswith("mtsc:"):
            raise RecordingError(f"{self.meta_path}: field {key!r} must be in the mtsc: namespace")
        self._global[key] = value

    def get_field(self, key: str, default: Any = None) -> Any:
        return self._global.get(key, default)

    def close(self, end: str = END_COMPLETE) -> None:
        """Close the data file (fsync) and write the final meta file with ``mtsc:end = end`` and
        the data's SHA-512. Idempotent."""
        if self.closed:
            return
        self.closed = True
        try:
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
        self._global["core:sha512"] = self._sha.hexdigest()
        self._write_meta(end or END_COMPLETE, sync=True)

    def __enter__(self) -> "SigMFWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(END_COMPLETE if exc is None else _describe(exc))

    # -- internals ----------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise RecordingError(f"{self.meta_path}: the recording is closed")

    def meta(self, end: str = END_OPEN) -> dict[str, Any]:
        """The metadata as it would be written now (a new dict)."""
        glob = dict(self._global, **{"mtsc:sample_count": self.samples_written, "mtsc:end": end})
        annotations = sorted(self._annotations, key=lambda a: a["core:sample_start"])   # stable
        return {"global": glob, "captures": [dict(self._capture)], "annotations": annotations}

    def _write_meta(self, end: str, sync: bool = False) -> None:
        _write_atomic(self.meta_path, json.dumps(self.meta(end), indent=1) + "\n", sync=sync)
        self._t_meta = time.monotonic()


def annotation(start: int, count: int, label: str, comment: str = "", **fields: Any) -> dict[str, Any]:
    """A SigMF annotation: samples ``[start, start + count)``, ``core:label``, ``core:comment``
    and ``fields`` as ``mtsc:<name>`` keys."""
    ann: dict[str, Any] = {"core:sample_start": int(start), "core:sample_count": int(count), "core:label": label}
    if comment:
        ann["core:comment"] = comment
    ann.update({f"mtsc:{k}": v for k, v in fields.items()})
    return ann


def _spec_version() -> str:
    import sigmf

    return sigmf.__specification__


def _describe(exc: BaseException) -> str:
    """How a stream ended, for ``mtsc:end``: the exception's type and message."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def record(chunks: Iterable[np.ndarray], writer: SigMFWriter) -> int:
    """Write every chunk of ``chunks`` into ``writer`` and close it; returns the samples written.

    When the iterator raises (a radio unplugged: :class:`~mtsc_sdr.radio.driver.RadioDisconnected`,
    whose ``received`` holds what arrived in the interrupted call; Ctrl-C; ...), the samples it
    carries in ``received`` are written too, the recording is closed with ``mtsc:end`` set to the
    error, and the exception propagates: the recording stays intact up to that point.
    """
    try:
        for chunk in chunks:
            writer.write(chunk)
    except BaseException as exc:
        received = getattr(exc, "received", None)
        try:
            if received is not None and len(received):
                writer.write(received)
        finally:
            writer.close(_describe(exc))
        raise
    writer.close(END_COMPLETE)
    return writer.samples_written


# -- reading ------------------------------------------------------------------------------------------


@dataclass
class Recording:
    """A recording that passed :func:`read_recording`'s checks.

    Attributes:
        meta_path, data_path: its two files.
        meta: the parsed metadata ``{"global", "captures", "annotations"}``.
        sample_count: samples in the data file.
    """

    meta_path: Path
    data_path: Path
    meta: dict[str, Any]
    sample_count: int

    @property
    def name(self) -> str:
        return self.meta_path.name[:-len(META_EXT)]

    def field(self, key: str, default: Any = None) -> Any:
        """A global field (``core:...`` or ``mtsc:...``)."""
        return self.meta["global"].get(key, default)

    @property
    def sample_rate_sps(self) -> float:
        return float(self.field("core:sample_rate"))

    @property
    def end(self) -> str:
        """``"complete"``, ``"open"`` (never closed: killed) or the error that ended the stream."""
        return str(self.field("mtsc:end", END_OPEN))

    @property
    def annotations(self) -> list[dict[str, Any]]:
        return self.meta["annotations"]

    def samples(self, start: int = 0, count: Optional[int] = None) -> np.ndarray:
        """complex64 (count,) samples from ``start`` (a read-only memory map of the data file)."""
        count = self.sample_count - start if count is None else count
        if start < 0 or count < 0 or start + count > self.sample_count:
            raise IndexError(f"{self.data_path}: samples [{start}, {start + count}) outside 0..{self.sample_count}")
        if count == 0:
            return np.zeros(0, np.complex64)
        mm = np.memmap(self.data_path, dtype="<c8", mode="r", offset=start * SAMPLE_BYTES, shape=(count,))
        return mm.view(np.complex64) if np.dtype("<c8") == np.complex64 else mm.astype(np.complex64)

    def chunks(self, chunk_samples: int = 65536) -> Iterator[np.ndarray]:
        """The samples in chunks of ``chunk_samples`` (complex64 (<= chunk_samples,) each), read
        one at a time from disk."""
        for lo in range(0, self.sample_count, chunk_samples):
            yield np.array(self.samples(lo, min(chunk_samples, self.sample_count - lo)))


def read_recording(path: str | Path, *, verify_hash: bool = True) -> Recording:
    """Open a recording after checking it; :class:`RecordingError` names what is wrong.

    Checks: the meta file exists and is a JSON object valid for SigMF's schema (via
    :meth:`sigmf.SigMFFile.validate`); ``core:datatype`` is ``cf32_le`` with one channel; the data
    file exists and holds whole 8-byte samples; ``mtsc:sample_count`` matches the data (a recording
    left ``open`` by a killed recorder may hold more samples than its last meta file says);
    annotations lie inside the data; ``core:sha512`` matches (when present and ``verify_hash``).
    """
    import jsonschema
    from sigmf import SigMFFile
    from sigmf.error import SigMFError

    meta_path, data_path = recording_paths(path)
    if not meta_path.is_file():
        raise RecordingError(f"{meta_path}: no such file (a recording is NAME{META_EXT} + NAME{DATA_EXT})")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:   # RecursionError: nested too deep
        raise RecordingError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise RecordingError(f"{meta_path}: expected a JSON object, got {type(meta).__name__}")
    for key, kind in (("global", dict), ("captures", list), ("annotations", list)):
        if not isinstance(meta.get(key), kind):
            raise RecordingError(f"{meta_path}: {key!r} must be a JSON {'object' if kind is dict else 'array'} "
                                 f"(SigMF), got {type(meta.get(key)).__name__}")
    try:
        SigMFFile(metadata=meta).validate()
    except (jsonschema.exceptions.ValidationError, SigMFError, KeyError, TypeError, AttributeError) as exc:
        detail = exc.message if isinstance(exc, jsonschema.exceptions.ValidationError) else str(exc)
        where = "/".join(str(p) for p in getattr(exc, "absolute_path", [])) or "metadata"
        raise RecordingError(f"{meta_path}: not valid SigMF metadata at {where}: {detail}") from None
    glob = meta["global"]
    if glob.get("core:datatype") != DATATYPE:
        raise RecordingError(f"{meta_path}: core:datatype is {glob.get('core:datatype')!r}; mtsc-sdr reads "
                             f"{DATATYPE!r} (complex64) recordings only")
    if glob.get("core:num_channels", 1) != 1:
        raise RecordingError(f"{meta_path}: core:num_channels is {glob.get('core:num_channels')}; expected 1")
    rate = glob.get("core:sample_rate")
    if not isinstance(rate, (int, float)) or not rate > 0:
        raise RecordingError(f"{meta_path}: core:sample_rate must be a positive number, got {rate!r}")
    if not data_path.is_file():
        raise RecordingError(f"{data_path}: no such file (the data of {meta_path.name})")
    size = data_path.stat().st_size
    if size % SAMPLE_BYTES:
        raise RecordingError(f"{data_path}: {size} bytes is not a whole number of {SAMPLE_BYTES}-byte complex64 "
                             f"samples (truncated or not {DATATYPE})")
    n = size // SAMPLE_BYTES
    said = glob.get("mtsc:sample_count")
    end = glob.get("mtsc:end", END_OPEN)
    if said is not None:
        if not isinstance(said, int) or isinstance(said, bool) or said < 0:
            raise RecordingError(f"{meta_path}: mtsc:sample_count must be a non-negative integer, got {said!r}")
        if (n != said) if end != END_OPEN else (n < said):
            raise RecordingError(f"{meta_path}: mtsc:sample_count says {said} samples, {data_path.name} holds {n}")
    for i, ann in enumerate(meta["annotations"]):
        stop = ann["core:sample_start"] + ann.get("core:sample_count", 0)
        if ann["core:sample_start"] < 0 or stop > n:
            raise RecordingError(f"{meta_path}: annotations[{i}] covers samples up to {stop}, beyond the "
                                 f"{n} samples of {data_path.name}")
    if verify_hash and glob.get("core:sha512"):
        h = hashlib.sha512()
        with open(data_path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != glob["core:sha512"].lower():
            raise RecordingError(f"{data_path}: SHA-512 differs from core:sha512 in {meta_path.name} "
                                 f"(the data changed after recording)")
    return Recording(meta_path, data_path, meta, n)
