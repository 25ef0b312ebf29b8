"""``mtsc-sdr replay RECORDING``: feed a recording into a real base station as if it were live.

Processes (the recording replaces the clients' transmitters, the channel and the radios)::

    recording --IQ (IQPush, binds; paced at the recording's rate, or --fast)--> mtsc-sdr bs --rx
    replay clients (one per recorded session) <------ control link (hello, semantics) ------ bs

A base station only serves sessions that said ``hello`` with its checkpoint, so the replay side
plays the clients of the recorded sessions: for each session with frames in the recording it
opens the control link under that session id, says hello with what the original client said
(:class:`~mtsc_sdr.runtime.client.Client` without a transmitter), and waits for the answers to
the items those frames carried. Which item a frame carried comes from the recording's meta, as
written by ``mtsc-sdr bs --capture`` (so by ``run`` with ``capture: true`` and by
``benchmarks/make_recordings.py``): ``mtsc:checkpoint`` (the identity the frames were encoded
with; another checkpoint is refused here, exit 4), ``mtsc:sessions`` (per session: precision, SNR
label, and where its items came from, :func:`~mtsc_sdr.runtime.client.item_source`; the client's
k-th item went out with seq k), and the ``frame`` annotations (session, seq, task of each frame
the live receiver decoded). The answers go through the client's task decoders
(:func:`~mtsc_sdr.runtime.client.decode_item`), one record per item as ``mtsc-sdr client`` writes
it (latencies: only the stages timed during the replay).

The replay's base station records its own input (``work/bs-rx0``): its frame annotations are the
frame statistics of the replay and are compared with the recording's (``matching_recording``:
frames found again at the same sample with the same session and seq).

A recording without session info (a link-test or calibration capture), or ``--frames-only``,
replays to frame statistics only: the PHY receiver runs in this process, no model is needed.

Outputs in ``--out`` (default ``results/replay/<name>``): ``report.json`` (``meta``, ``rows``: task
metrics as ``run`` reports them and the frame counts, ``recording``, ``frames``, ``sessions``,
``failures``), ``items.jsonl``, ``images/`` (reconstructions), ``work/``. Exit status: 0 when
every recorded item was decoded (frames only: when a frame was found), 1 when some were not or a
process failed, 2 for a bad recording or arguments, 3 when no frame was found, 4 when the
checkpoint is not the recording's.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import numpy as np

from mtsc_sdr import tasks
from mtsc_sdr.capture.hooks import AnnotatingReceiver
from mtsc_sdr.capture.sigmf_io import Recording, RecordingError, read_recording
from mtsc_sdr.link import IQPush, IQSendTimeout, free_tcp_endpoint
from mtsc_sdr.model.checkpoint import read_config, shipped_model_dir
from mtsc_sdr.model.config import ModelConfig
from mtsc_sdr.options import add_checkpoint, add_json
from mtsc_sdr.phy.rx import Receiver, ReceiverConfig
from mtsc_sdr.process import ChildProcess, ProcessFailed
from mtsc_sdr.report import row, run_meta
from mtsc_sdr.runtime import protocol
from mtsc_sdr.runtime.bs import bs_argv
from mtsc_sdr.runtime.client import Client, ClientSettings, Refused, examples_from_source
from mtsc_sdr.runtime.run import task_metric_rows

# The quantized client (torch) is imported where the replay decodes: `--frames-only` and
# `replay --help` need no model.

#: Samples per message pushed into the base station.
CHUNK_SAMPLES = 8192
#: Zero samples pushed after the recording: the receiver needs a little beyond a frame's end.
TAIL_SAMPLES = 4096
#: Stages of a replayed item's latency that mean something (timed during the replay).
REPLAY_STAGES = ("rx_sync", "jsc_decoder", "lam_decoder", "downlink", "task_decoders")
EXIT_NO_FRAMES = 3


class ReplayError(RuntimeError):
    """The replay cannot go on; ``status`` is the exit status it ends with."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def _frames(annotations: list[dict]) -> list[dict]:
    return [a for a in annotations if a.get("core:label") == "frame"]


def _is_int(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v < hi


def check_session_fields(rec: Recording, n_rates: Optional[int] = None) -> None:
    """The ``mtsc:`` fields replay trusts, checked: ``mtsc:sessions`` an object of objects, and each
    frame annotation's session / seq / task id / rate index (below ``n_rates`` when given) / payload
    length whole numbers in range. Raises :class:`RecordingError` naming the file and the field."""
    said = rec.field("mtsc:sessions")
    if said is not None and not (isinstance(said, dict) and all(isinstance(v, dict) for v in said.values())):
        raise RecordingError(f"{rec.meta_path}: mtsc:sessions must be an object of session objects")
    limits = {"mtsc:session": 1 << 16, "mtsc:seq": 1 << 32, "mtsc:task_id": tasks.table_size(),
              "mtsc:rate_idx": n_rates or 256, "mtsc:payload_len": 1 << 24}
    for i, ann in enumerate(rec.annotations):
        if ann.get("core:label") != "frame":
            continue
        for key, hi in limits.items():
            if not _is_int(ann.get(key), 0, hi):
                raise RecordingError(f"{rec.meta_path}: annotations[{i}].{key} must be a whole number in "
                                     f"0..{hi - 1}, got {ann.get(key)!r}")


# -- what the recording says ---------------------------------------------------------------------------


def recorded_items(rec: Recording, model_cfg) -> tuple[dict[int, dict], dict[int, dict[int, tuple]], list[str]]:
    """Sessions and items to decode from a recording's meta and frame annotations.

    Returns ``(sessions, items, notes)``: ``sessions[s]`` what session ``s``'s client said in its
    hello; ``items[s][seq] = (example, info)`` for each frame of a recorded session (``info``:
    rate_idx, n_tokens, n_symbols of the frame); ``notes``: frames that cannot be decoded and why.
    Raises :class:`ReplayError` (status 2) when a session's items cannot be rebuilt.
    """
    check_session_fields(rec, len(model_cfg.rate_table))
    said = rec.field("mtsc:sessions") or {}
    sessions: dict[int, dict] = {}
    items: dict[int, dict[int, tuple]] = {}
    notes: list[str] = []
    examples: dict[int, list] = {}
    for ann in _frames(rec.annotations):
        s, seq = ann.get("mtsc:session"), ann.get("mtsc:seq")
        about = said.get(str(s))
        if about is None:
            notes.append(f"frame at sample {ann['core:sample_start']}: session {s} never said hello to the recorder")
            continue
        if not isinstance(about.get("items"), dict):
            notes.append(f"frame at sample {ann['core:sample_start']}: session {s}'s client did not say where its "
                         "items came from (recorded before clients told it)")
            continue
        if s not in examples:
            try:
                examples[s] = examples_from_source(about["items"], model_cfg)
            except (ValueError, OSError) as exc:
                raise ReplayError(f"{rec.meta_path}: the items of session {s} cannot be rebuilt from "
                                  f"{about['items']}: {exc}", 2) from None
        if seq >= len(examples[s]):
            notes.append(f"frame at sample {ann['core:sample_start']}: session {s} seq {seq} is beyond its "
                         f"{len(examples[s])} items")
            continue
        example = examples[s][seq]
        if tasks.get(example.task).id != ann.get("mtsc:task_id"):
            raise ReplayError(f"{rec.meta_path}: session {s} seq {seq} carried task id {ann.get('mtsc:task_id')}, "
                              f"but its item {example.item_id} is {example.task}: the recorded item source does not "
                              "describe what was sent", 2)
        rate = model_cfg.rate_table[ann["mtsc:rate_idx"]]
        info = {"rate_idx": ann["mtsc:rate_idx"], "n_tokens": ann["mtsc:payload_len"] // rate,
                "n_symbols": ann["mtsc:payload_len"]}
        sessions[s] = about
        items.setdefault(s, {})[seq] = (example, info)
    return sessions, items, notes


def check_checkpoint(rec: Recording, checkpoint: str) -> dict:
    """The checkpoint's identity; :class:`ReplayError` (status 4) when it is not the recording's."""
    ident = protocol.checkpoint_identity(checkpoint)
    differs = protocol.identity_differences(rec.field("mtsc:checkpoint"), ident)
    if differs:
        text = "; ".join(f"{k}: recording {a!r}, {checkpoint} {b!r}" for k, (a, b) in differs.items())
        raise ReplayError(f"{rec.name} was recorded with another checkpoint ({text}); pass --checkpoint with the "
                          "one it was made with", protocol.EXIT_REFUSED)
    return ident


# -- frame statistics ----------------------------------------------------------------------------------


def frame_statistics(annotations: list[dict], receiver_stats: dict, recorded: list[dict]) -> dict[str, Any]:
    """Frame counts and estimates of a replay from its annotations (:mod:`.hooks`) and receiver
    counters, compared with the recording's own annotations ``recorded``."""
    frames = _frames(annotations)
    drops = Counter(a.get("mtsc:reason") for a in annotations if a.get("core:label") == "dropped")
    snr = [a["mtsc:snr_db"] for a in frames]
    cfo = [a["mtsc:cfo_hz"] for a in frames if "mtsc:cfo_hz" in a]
    key = (lambda a: (a["core:sample_start"], a.get("mtsc:session"), a.get("mtsc:seq")))  # noqa: E731
    found = {key(a) for a in frames}
    rec_frames = _frames(recorded)
    return {
        "frames_recorded": len(rec_frames),
        "frames_detected": int(receiver_stats.get("detected", 0)),
        "frames_header_ok": int(receiver_stats.get("header_ok", 0)),
        "frames_dropped": dict(drops),
        "matching_recording": sum(key(a) in found for a in rec_frames),
        "snr_est_db_mean": round(float(np.mean(snr)), 3) if snr else None,
        "cfo_hz_mean": round(float(np.mean(cfo)), 1) if cfo else None,
        "frames": [{"start": a["core:sample_start"], "session": a.get("mtsc:session"), "seq": a.get("mtsc:seq"),
                    "task_id": a.get("mtsc:task_id"), "snr_db": a["mtsc:snr_db"], "cfo_hz": a.get("mtsc:cfo_hz")}
                   for a in frames],
    }


def frames_in_process(rec: Recording) -> dict[str, Any]:
    """Frame statistics of a recording from a PHY receiver in this process (no model needed)."""
    annotations: list[dict] = []
    rx = AnnotatingReceiver(Receiver(ReceiverConfig(sample_rate_hz=rec.sample_rate_sps)), annotations.append)
    for chunk in rec.chunks():
        rx.process(chunk)
    rx.flush()
    return frame_statistics(annotations, rx.stats, rec.annotations)


# -- through a base station ----------------------------------------------------------------------------


def _push_all(push, x: np.ndarray, bs, poll) -> None:
    """Send ``x`` (complex64), retrying while the base station is slow; fail if it died."""
    while x.size:
        try:
            push.send(x)
            return
        except IQSendTimeout as exc:
            x = x[exc.samples_sent:]
            bs.check()
            poll()


def _handshake(client, bs, timeout_s: float) -> None:
    """The client's hello handshake, failing at once if the base station process dies meanwhile."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.handshake()          # one hello every 2 s for client.s.hello_timeout_s
            return
        except TimeoutError:
            bs.check()
            if time.monotonic() > deadline:
                raise ReplayError(f"the base station did not answer hello within {timeout_s:g} s") from None


def replay_through_bs(rec: Recording, checkpoint: str, out: Path, *, rate_sps: Optional[float],
                      answer_timeout_s: float = 30.0, hello_timeout_s: float = 120.0,
                      progress: bool = False) -> tuple[list[dict], dict, dict]:
    """Decode the recorded sessions again through a base-station process.

    Args:
        rate_sps: pace the samples at this rate (samples/s); None: as fast as the base station takes them.
        answer_timeout_s: after the last sample, how long to wait for an answer before giving up.
        hello_timeout_s: how long the base station may take to start and answer hello.
    Returns:
        ``(records, frames, sessions)``: one client record per recorded item (results and error
        records), :func:`frame_statistics` of the replay's base station, and per session what
        was replayed.
    """
    from mtsc_sdr.compress.artifact import load_client

    identity = check_checkpoint(rec, checkpoint)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    models: dict[str, Any] = {}

    def model(precision: str):
        if precision not in models:
            models[precision] = load_client(checkpoint, precision=precision).model
        return models[precision]

    records: list[dict] = []

    def write(r: dict) -> None:
        r["latency_ms"] = {k: v for k, v in r.get("latency_ms", {}).items() if k in REPLAY_STAGES}
        records.append(dict(r, channel="replay", recording=rec.name))

    push = IQPush(free_tcp_endpoint(), send_timeout_ms=500)
    control = free_tcp_endpoint()
    bs = ChildProcess("base station (mtsc-sdr bs)", bs_argv(
        checkpoint, control, [push.endpoint], rec.sample_rate_sps, work / "bs.json",
        capture=work / "bs")).start()          # starts while this process loads the client half
    clients: list[Client] = []
    try:
        sessions, items, notes = recorded_items(rec, ModelConfig.from_dict(read_config(checkpoint)["model"]))
        for s, about in sorted(sessions.items()):
            precision = about.get("precision") if about.get("precision") in ("fp32", "int8") else "fp32"
            settings = ClientSettings(session=s, snr_db=float(about.get("snr_db") or 0.0), precision=precision,
                                      images_dir=str(out / "images"), items=about.get("items"), hello_timeout_s=2.0)
            client = Client(model(precision), identity, None, control, settings)
            clients.append(client)
            for seq, (example, info) in sorted(items[s].items()):
                client.expect(seq, example, info)

        def poll() -> None:
            for c in clients:
                while c.waiting and c.poll(0, write):
                    pass

        for c in clients:
            _handshake(c, bs, hello_timeout_s)      # the base station serves only sessions that said hello
        t0 = time.monotonic()
        sent = 0
        for chunk in rec.chunks(CHUNK_SAMPLES):
            if rate_sps:
                time.sleep(max(0.0, t0 + sent / rate_sps - time.monotonic()))
            _push_all(push, chunk, bs, poll)
            sent += chunk.size
            poll()
            if progress:
                print(f"\r  replayed {sent / rec.sample_rate_sps:.2f} of "
                      f"{rec.sample_count / rec.sample_rate_sps:.2f} s", end="", file=sys.stderr, flush=True)
        _push_all(push, np.zeros(TAIL_SAMPLES, np.complex64), bs, poll)
        if progress:
            print(file=sys.stderr)
        last = time.monotonic()
        while any(c.waiting for c in clients) and time.monotonic() - last < answer_timeout_s:
            bs.check()
            for c in clients:
                if c.waiting and c.poll(20, write):
                    last = time.monotonic()
        for c in clients:
            c.give_up(write, f"no answer from the base station within {answer_timeout_s:g} s after the recording ended")
    finally:
        for c in clients:
            c.close()
        push.close(linger_ms=0)
        bs.stop()
    stats = json.loads((work / "bs.json").read_text()) if (work / "bs.json").is_file() else {}
    own = read_recording(work / "bs-rx0", verify_hash=False)
    frames = frame_statistics(own.annotations, (stats.get("receivers") or [{}])[0], rec.annotations)
    frames["not_decodable"] = notes
    frames["base_station"] = stats.get("bs", {})
    summary = {str(s): {**{k: sessions[s].get(k) for k in ("precision", "snr_db", "items")},
                        "items_expected": len(items[s]),
                        "items_ok": sum(1 for r in records if r["session"] == s and "error" not in r)}
               for s in sorted(sessions)}
    return records, frames, summary


# -- report and command line ---------------------------------------------------------------------------


def replay(path: str, *, checkpoint: Optional[str] = None, out: Optional[str] = None,
           rate_sps: Optional[float] = None, fast: bool = False, frames_only: bool = False,
           progress: bool = False) -> dict[str, Any]:
    """Replay one recording (see the module docstring); returns the report, also written to ``out``.

    Raises :class:`~.sigmf_io.RecordingError` for a corrupt recording, :class:`ReplayError` when
    the replay cannot run (wrong checkpoint, items that cannot be rebuilt, a process failed).
    """
    rec = read_recording(path)
    check_session_fields(rec)
    out_dir = Path(out) if out else Path("results/replay") / rec.name
    out_dir.mkdir(parents=True, exist_ok=True)
    rate = None if fast else (rate_sps or rec.sample_rate_sps)
    checkpoint = checkpoint or str(shipped_model_dir())
    said = rec.field("mtsc:sessions") or {}
    has_sessions = any(str(a.get("mtsc:session")) in said for a in _frames(rec.annotations))
    records: list[dict] = []
    sessions: dict = {}
    if frames_only or not has_sessions:
        if frames_only:
            why = "--frames-only"
        elif not said:
            why = (f"{rec.name} has no session info (source: {rec.field('mtsc:source', 'unknown')}; only "
                   "base-station captures of sessions that said hello have it)")
        else:
            why = f"none of the frames in {rec.name} belongs to a session that said hello to the recorder"
        mode = "frames"
        message = f"{why}: replaying to frame statistics only (PHY receiver in this process, no model)"
        frames = frames_in_process(rec)
    else:
        mode = "base station"
        message = f"replaying {rec.name} into a base station ({checkpoint}) as the clients of its sessions"
        if progress:
            print(message, file=sys.stderr, flush=True)
        try:
            records, frames, sessions = replay_through_bs(rec, checkpoint, out_dir, rate_sps=rate, progress=progress)
        except Refused as exc:
            raise ReplayError(str(exc), protocol.EXIT_REFUSED) from None
        except ProcessFailed as exc:
            raise ReplayError(str(exc)) from None
    rows = task_metric_rows(records, "replay") if records else []
    for metric in ("frames_recorded", "frames_detected", "frames_header_ok", "matching_recording"):
        rows.append(row("mtsc", "link", "replay", None, metric, frames[metric], recording=rec.name))
    if frames["snr_est_db_mean"] is not None:
        rows.append(row("mtsc", "link", "replay", None, "snr_est_db", frames["snr_est_db_mean"], unit="dB",
                        recording=rec.name))
    failures = [f"{r['item_id']} ({r['task']}, session {r['session']} seq {r['seq']}): {r['error']}"
                for r in records if "error" in r]
    report = {
        "meta": run_meta({"recording": str(rec.meta_path), "checkpoint": checkpoint if mode != "frames" else None,
                          "rate_sps": rate, "mode": mode}, {}),
        "rows": rows, "message": message,
        "recording": {"name": rec.name, "source": rec.field("mtsc:source"), "end": rec.end,
                      "sample_rate_sps": rec.sample_rate_sps, "samples": rec.sample_count,
                      "seconds": round(rec.sample_count / rec.sample_rate_sps, 6), "hw": rec.field("core:hw"),
                      "recorder": rec.field("core:recorder"),
                      "frequency_hz": rec.meta["captures"][0].get("core:frequency") if rec.meta["captures"] else None},
        "frames": frames, "sessions": sessions, "failures": failures,
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    with open(out_dir / "items.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return report


def format_report(report: dict) -> str:
    """A few lines for the terminal: the recording, the frames, the items per task."""
    rec, fr = report["recording"], report["frames"]
    lines = [report["message"],
             f"recording {rec['name']}: {rec['seconds']:.3f} s at {rec['sample_rate_sps'] / 1e6:g} Msps, "
             f"source {rec['source']}, ended {rec['end']}",
             f"  frames recorded {fr['frames_recorded']}, detected {fr['frames_detected']}, header OK "
             f"{fr['frames_header_ok']}, dropped {sum(fr['frames_dropped'].values())} {fr['frames_dropped'] or ''}",
             f"  found again at the recorded sample: {fr['matching_recording']} of {fr['frames_recorded']}",
             f"  SNR estimate {fr['snr_est_db_mean']} dB, CFO {fr['cfo_hz_mean']} Hz (means over the frames)"]
    for s, info in report["sessions"].items():
        lines.append(f"  session {s}: {info['items_ok']} of {info['items_expected']} items decoded "
                     f"({info['precision']}, SNR label {info['snr_db']} dB)")
    for r in report["rows"]:
        if r["task"] != "link" and r["metric"] not in ("error_items", "snr_est_db"):
            lines.append(f"  {r['task']:<14} {r['metric']:<9} {r['value']:.3f}  (n={r.get('n')})")
    for f in report["failures"]:
        lines.append(f"FAILED: {f}")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recording", help="SigMF recording: NAME, NAME.sigmf-meta or NAME.sigmf-data")
    add_checkpoint(p, help="checkpoint the recording was made with (default: the shipped model models/default, "
                           "or $MTSC_MODELS/default when set)")
    p.add_argument("--out", help="output directory (default: results/replay/<name>)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--rate-sps", type=float, help="push the samples at this rate (default: the recording's)")
    pace.add_argument("--fast", action="store_true", help="push the samples as fast as the base station takes them")
    p.add_argument("--frames-only", action="store_true",
                   help="frame statistics only (PHY receiver in this process; no base station, no model)")
    add_json(p)


def run(args: argparse.Namespace) -> int:
    if args.rate_sps is not None and not args.rate_sps > 0:
        print("mtsc-sdr replay: --rate-sps must be positive", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        report = replay(args.recording, checkpoint=args.checkpoint, out=args.out, rate_sps=args.rate_sps,
                        fast=args.fast, frames_only=args.frames_only, progress=not args.json and sys.stderr.isatty())
    except RecordingError as exc:
        print(f"mtsc-sdr replay: {exc}", file=sys.stderr)
        return 2
    except (ReplayError, OSError, ValueError) as exc:
        print(f"mtsc-sdr replay: {exc}", file=sys.stderr)
        return getattr(exc, "status", 1)
    if args.json:
        print(json.dumps(report))
    else:
        print(format_report(report))
    if report["failures"]:
        return 1
    return 0 if report["frames"]["frames_header_ok"] else EXIT_NO_FRAMES
