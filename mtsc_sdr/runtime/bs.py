"""``mtsc-sdr bs``: the base station.

It connects to one or more IQ streams (``--rx``: the output of a software channel, a GNU Radio
sim flowgraph or a radio's RX flowgraph; one :class:`~mtsc_sdr.phy.rx.Receiver` each), binds the
control link (``--control``, a :class:`~mtsc_sdr.link.MessageServer`) and, for every frame whose
header decodes:

1. checks the frame's session said ``hello`` with the same checkpoint (else counts and drops it);
2. undoes the channel the way the model was trained to expect: the PHY hands back the
   zero-forced payload ``z = x + n'`` with per-symbol noise variance ``v``; the model was trained
   on the MMSE output ``z / (1 + v)`` with the SNR ``-10 log10 v`` (:class:`MTSCModel`'s genie
   equaliser), so that is what it gets;
3. runs the JSC decoder and the LAM decoder (:class:`~mtsc_sdr.model.ServerModel`);
4. sends the task semantics back to that client (one ``semantics`` message, :mod:`.protocol`).

Logged per frame (``-v``): session, seq, task, SNR estimate, CFO, and every frame the receiver
dropped (header CRC failure, bad version or length, truncation) with its SNR and CFO; drops are
also counted by the receivers and in :attr:`BaseStation.stats`, printed as one JSON line on stderr at
exit (and written to ``--stats FILE`` when given). Stops on SIGINT / SIGTERM.

``--capture PREFIX`` records each ``--rx`` stream as it arrives into the SigMF recording
``PREFIX-rx<i>`` (:mod:`mtsc_sdr.capture`), annotated with the frames its receiver decoded and
dropped, the checkpoint identity and every session that said hello with what its client told
about its items; ``mtsc-sdr replay`` decodes such a recording again.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from mtsc_sdr import tasks
from mtsc_sdr.capture.hooks import CAPTURE_INFO_KEYS, capture_receiver
from mtsc_sdr.link import IQPull, MessageServer
from mtsc_sdr.model import load
from mtsc_sdr.model.checkpoint import shipped_model_dir
from mtsc_sdr.options import add_checkpoint, add_threads
from mtsc_sdr.phy.rx import Receiver, ReceiverConfig
from mtsc_sdr.report import peak_rss_mb
from mtsc_sdr.runtime import protocol

# torch is imported where the model runs: `run` and `replay` import this module for the base
# station's command line (bs_argv) and must not pay for torch.

log = logging.getLogger("mtsc_sdr.bs")
#: Payloads kept per session for the constellation plot.
CONSTELLATION_FRAMES = 4


def payload_snr_db(noise_var: np.ndarray) -> float:
    """The SNR the server half is told for a frame (dB): ``-10 log10`` of the mean noise variance
    v of its zero-forced payload symbols (float (n,)), whose MMSE ``z / (1 + v)`` it decodes."""
    return float(-10.0 * np.log10(max(float(np.mean(noise_var)), 1e-12)))


class BaseStation:
    """The server half of the model behind the PHY receivers and the control link.

    Args:
        checkpoint: checkpoint directory (the server half is used).
        rx_endpoints: IQ streams to connect to (bound by the channel / flowgraphs).
        control_endpoint: endpoint to bind for the clients' control links.
        sample_rate_hz: the streams' sample rate (only used to report CFO in Hz).
        threads: torch threads.
        capture: record stream i into the SigMF recording ``<capture>-rx<i>`` (None: no recording).
        capture_info: :class:`~mtsc_sdr.capture.SigMFWriter` keywords for those recordings
            (frequency_hz, hw, rx_gain_db, tx_gain_db, calibration_id, description, fields).
    """

    def __init__(self, checkpoint: str, rx_endpoints: list[str], control_endpoint: str, *,
                 sample_rate_hz: float = 1e6, threads: int = 1, allow_remote: bool = False,
                 capture: str | None = None, capture_info: dict[str, Any] | None = None):
        import torch

        torch.set_num_threads(threads)
        self.identity = protocol.checkpoint_identity(checkpoint)
        self.server = load(checkpoint).server.eval()
        self.host = protocol.host_id()
        self.stats: Counter = Counter()
        self.sessions: dict[int, bytes] = {}            # 16-bit session -> control-link peer
        self.constellation: dict[int, list[np.ndarray]] = {}   # session -> its first payloads, for plots
        self.control = MessageServer(control_endpoint, allow_remote=allow_remote)
        self.streams = []
        self.recordings = []                            # RecordingReceiver per stream with --capture
        try:
            for i, ep in enumerate(rx_endpoints):
                rx = Receiver(ReceiverConfig(sample_rate_hz=sample_rate_hz))
                if capture:
                    info = dict(capture_info or {})
                    fields = {**info.pop("fields", {}), "mtsc:checkpoint": self.identity, "mtsc:rx_endpoint": ep}
                    rx = capture_receiver(rx, f"{capture}-rx{i}", source="bs input", fields=fields, **info)
                    self.recordings.append(rx)
                self.streams.append((IQPull(ep), rx))
        except Exception:
            self.close("error: the base station did not start")
            raise

    # -- control link ------------------------------------------------------------------------------

    def _reply(self, msg, kind: str, meta: dict) -> None:
        """Answer a control message; a client that is already gone is counted, not fatal."""
        try:
            self.control.reply(msg, kind, meta=meta)
        except (ConnectionError, TimeoutError) as exc:
            self.stats["control_reply_failed"] += 1
            log.warning("%s to session %d not sent: %s", kind, msg.session, exc)

    def _on_message(self, msg) -> None:
        if msg.kind == protocol.HELLO:
            session = msg.session
            if not 0 <= session < (1 << 16):
                self.stats["hello_bad_session"] += 1
                self._reply(msg, protocol.REFUSED, {
                    "reason": f"session {session} does not fit the 16-bit frame header field", "differs": {}})
                return
            differs = protocol.identity_differences(msg.meta.get("checkpoint"), self.identity)
            artifact = msg.meta.get("artifact")
            if not differs and artifact is not None:
                # a compressed client: its artifact must come from this base station's checkpoint
                source = artifact.get("source") if isinstance(artifact, dict) else None
                differs = protocol.identity_differences(source, self.identity)
                what = f"the client's artifact {artifact.get('name') if isinstance(artifact, dict) else artifact!r} " \
                       "was made from another checkpoint: "
            else:
                what = "checkpoint differs: "
            if differs:
                self.stats["refused"] += 1
                reason = what + protocol.describe_differences(differs)
                log.warning("refused session %d: %s", session, reason)
                self._reply(msg, protocol.REFUSED, {"reason": reason, "differs": differs})
                return
            self.sessions[session] = msg.peer
            for rec in self.recordings:
                rec.add_session(session, msg.meta.get("client"))
            self.stats["hello"] += 1
            self._reply(msg, protocol.WELCOME, {"checkpoint": self.identity})
        elif msg.kind == protocol.BYE:
            self.sessions.pop(msg.session, None)
            self.stats["bye"] += 1
        else:
            self.stats["control_unknown_kind"] += 1

    # -- frames --------------------------------------------------------------------------------------

    def _on_frame(self, frame, t_frame: float, rx_sync_ms: float) -> None:
        h = frame.header
        peer = self.sessions.get(h.session_id)
        if peer is None:
            self.stats["frames_unknown_session"] += 1
            log.info("frame seq %d of session %d dropped: no hello from that session", h.seq, h.session_id)
            return
        rates = self.server.cfg.rate_table
        if h.task_id not in tasks.ids() or h.rate_idx >= len(rates) or h.payload_len % rates[h.rate_idx]:
            self.stats["frames_bad_layout"] += 1
            log.warning("frame seq %d of session %d dropped: task %d, rate index %d and %d payload symbols do "
                        "not fit the model", h.seq, h.session_id, h.task_id, h.rate_idx, h.payload_len)
            return
        try:
            self._serve_frame(frame, peer, t_frame, rx_sync_ms)
        except (ConnectionError, TimeoutError) as exc:      # client gone: it resends or gives up
            self.stats["downlink_failed"] += 1
            log.warning("semantics for session %d seq %d not sent: %s", h.session_id, h.seq, exc)
        except Exception:                                   # one bad frame must not stop the base station
            self.stats["frames_decode_error"] += 1
            log.exception("frame seq %d of session %d could not be decoded", h.seq, h.session_id)

    def _decode(self, frame) -> tuple[np.ndarray, float, float]:
        """The server half on one frame: semantics float32 (Q, d) and the JSC and LAM decoders'
        times (s). What a subclass changes to do more with a frame (fine-tuning keeps the graph)."""
        import torch

        h = frame.header
        rates = self.server.cfg.rate_table
        y = (frame.payload / (1.0 + frame.noise_var)).astype(np.complex64)
        args = (torch.from_numpy(y)[None], torch.tensor([h.rate_idx]), torch.tensor([h.payload_len // rates[h.rate_idx]]),
                torch.tensor([payload_snr_db(frame.noise_var)], dtype=torch.float32))
        with torch.no_grad():
            t0 = time.monotonic()
            if self.server.decodes_analog(torch.tensor([h.task_id])):
                # the analog image code: its LMMSE estimate is the JSC decoding, no LAM decoder
                out = self.server(*args, torch.tensor([h.task_id])).semantics[0]
                t1 = t2 = time.monotonic()
            else:
                sem, mask = self.server.jsc_decoder(*args)
                t1 = time.monotonic()
                queries = self.server.queries(torch.tensor([h.task_id]), sem)
                out = self.server.lam_decoder(queries, sem, mask)[0]
                t2 = time.monotonic()
        return out.numpy(), t1 - t0, t2 - t1

    def _serve_frame(self, frame, peer: bytes, t_frame: float, rx_sync_ms: float) -> None:
        h = frame.header
        rates = self.server.cfg.rate_table
        snr_payload_db = payload_snr_db(frame.noise_var)
        out, jsc_s, lam_s = self._decode(frame)
        meta = protocol.DownlinkMeta(
            seq=h.seq, task_id=h.task_id, rate_idx=h.rate_idx, n_tokens=h.payload_len // rates[h.rate_idx],
            snr_est_db=float(frame.snr_db), snr_payload_db=float(snr_payload_db), cfo_hz=frame.cfo_hz,
            rx_sync_ms=rx_sync_ms, jsc_decoder_ms=1e3 * jsc_s, lam_decoder_ms=1e3 * lam_s,
            t_frame_s=t_frame, t_sent_s=time.monotonic(), host=self.host)
        self.control.send(peer, protocol.SEMANTICS, {"semantics": out}, meta.to_meta(), session=h.session_id)
        self.stats["items"] += 1
        kept = self.constellation.setdefault(h.session_id, [])
        if len(kept) < CONSTELLATION_FRAMES:
            kept.append(np.asarray(frame.payload, np.complex64).copy())
        log.info("session %d seq %d task %d: SNR est %.2f dB (payload %.2f dB), CFO %s Hz", h.session_id,
                 h.seq, h.task_id, frame.snr_db, snr_payload_db,
                 "n/a" if frame.cfo_hz is None else f"{frame.cfo_hz:+.0f}")

    def _drain_stream(self, pull, rx, max_chunks: int = 16) -> None:
        """Process what a stream has queued, at most ``max_chunks`` chunks (so that a busy stream
        cannot starve the others and the control link)."""
        for _ in range(max_chunks):
            x = pull.recv(timeout_ms=0)
            if x is None:
                return
            t_frame = time.monotonic()
            last_drop = rx.drops[-1] if rx.drops else None
            frames = rx.process(x)
            rx_ms = 1e3 * (time.monotonic() - t_frame)
            self._log_drops(pull.endpoint, rx, last_drop)
            for f in frames:
                self._on_frame(f, t_frame, rx_ms / len(frames))

    @staticmethod
    def _log_drops(endpoint: str, rx, last_seen) -> None:
        """Log the frames the receiver dropped in its last call (header CRC failures, truncation...)."""
        if not rx.drops or rx.drops[-1] is last_seen or not log.isEnabledFor(logging.INFO):
            return
        new = []
        for d in reversed(rx.drops):
            if d is last_seen:
                break
            new.append(d)
        for d in reversed(new):
            log.info("%s: frame at sample %d dropped (%s), SNR est %.2f dB, CFO %.2e cycles/sample",
                     endpoint, d.start, d.reason, d.snr_db, d.cfo)

    # -- loop ----------------------------------------------------------------------------------------

    def serve(self, *, stop_after_s: float | None = None) -> None:
        """Serve until interrupted (KeyboardInterrupt / SIGTERM) or ``stop_after_s``."""
        poller = zmq.Poller()
        poller.register(self.control.socket, zmq.POLLIN)
        for pull, _ in self.streams:
            poller.register(pull.socket, zmq.POLLIN)
        t_end = None if stop_after_s is None else time.monotonic() + stop_after_s
        while t_end is None or time.monotonic() < t_end:
            ready = dict(poller.poll(100))
            if self.control.socket in ready:
                while (msg := self.control.recv(timeout_ms=0)) is not None:
                    self._on_message(msg)
            for pull, rx in self.streams:
                if pull.socket in ready:
                    self._drain_stream(pull, rx)

    def summary(self) -> dict[str, Any]:
        """Counters: this object's, each receiver's (header failures...), the control link's."""
        return {"peak_rss_mb": peak_rss_mb(),
                "bs": dict(self.stats), "receivers": [dict(rx.stats) for _, rx in self.streams],
                "iq_streams": [pull.stats.as_dict() for pull, _ in self.streams],
                "control": self.control.stats.as_dict(), "sessions": sorted(self.sessions),
                "recordings": [str(rec.writer.meta_path) for rec in self.recordings]}

    def close(self, end: str = "complete") -> None:
        """Close the streams and the control link; recordings end with ``mtsc:end = end``."""
        for pull, _ in self.streams:
            pull.close()
        self.control.close()
        for rec in self.recordings:
            rec.close(end)


def bs_argv(checkpoint: str, control: str, rx: list[str], sample_rate_hz: float, stats: str | Path, *,
            threads: int | None = None, constellation: str | Path | None = None, capture: str | Path | None = None,
            capture_info: dict[str, Any] | None = None) -> list[str]:
    """The command line of a base-station process (``mtsc-sdr bs``, options as :func:`add_arguments`
    declares them): what ``run`` and ``replay`` start. ``rx``: one IQ endpoint per link."""
    argv = [sys.executable, "-m", "mtsc_sdr.cli", "bs", "--checkpoint", checkpoint, "--control", control,
            *[arg for endpoint in rx for arg in ("--rx", endpoint)], "--sample-rate-hz", repr(sample_rate_hz),
            "--stats", str(stats)]
    if threads is not None:
        argv += ["--threads", str(threads)]
    if constellation is not None:
        argv += ["--constellation", str(constellation)]
    if capture is not None:
        argv += ["--capture", str(capture)]
    if capture_info is not None:
        argv += ["--capture-info", json.dumps(capture_info)]
    return argv


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_checkpoint(p)
    p.add_argument("--rx", action="append", required=True, metavar="ENDPOINT",
                   help="IQ stream to receive (connects; repeat for several links)")
    p.add_argument("--control", required=True, metavar="ENDPOINT", help="control link endpoint to bind")
    p.add_argument("--sample-rate-hz", type=float, default=1e6)
    add_threads(p)
    p.add_argument("--stats", metavar="FILE", help="write the counters (JSON) here at exit")
    p.add_argument("--constellation", metavar="FILE",
                   help="write the first received payloads of each session here at exit (.npz: key "
                        "'s<session>' -> complex64 (n_symbols,), the zero-forced payload symbols concatenated)")
    p.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback --control")
    p.add_argument("--capture", metavar="PREFIX",
                   help="record each --rx stream into the SigMF recording PREFIX-rx<i> (.sigmf-meta + .sigmf-data), "
                        "annotated with the frames received; mtsc-sdr replay decodes it again")
    p.add_argument("--capture-info", metavar="JSON", type=json.loads, default=None,
                   help="with --capture: JSON object of recording fields: frequency_hz, hw, rx_gain_db, tx_gain_db, "
                        "calibration_id, description, fields (more mtsc:* global fields)")


def run(args: argparse.Namespace) -> int:
    checkpoint = args.checkpoint or str(shipped_model_dir())
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    info = args.capture_info
    if info is not None and (not isinstance(info, dict) or set(info) - set(CAPTURE_INFO_KEYS)):
        print(f"mtsc-sdr bs: --capture-info must be a JSON object with keys among {list(CAPTURE_INFO_KEYS)}, "
              f"got {info!r}", file=sys.stderr)
        return 2
    bs = BaseStation(checkpoint, args.rx, args.control, sample_rate_hz=args.sample_rate_hz,
                     threads=args.threads, allow_remote=args.allow_remote, capture=args.capture, capture_info=info)
    print(f"bs: serving {checkpoint} on {args.control}, receiving {', '.join(args.rx)}", file=sys.stderr, flush=True)
    return serve_until_stopped(bs, args)


def serve_until_stopped(bs: BaseStation, args: argparse.Namespace) -> int:
    """Serve until SIGINT / SIGTERM, then close ``bs`` and report: its summary as one JSON line on
    stderr and in ``args.stats``, the constellation in ``args.constellation`` (the options of
    :func:`add_arguments`). A base station subclass's command ends the same way."""
    end = "complete"
    try:
        bs.serve()
    except KeyboardInterrupt:
        pass
    except BaseException as exc:
        end = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        summary = bs.summary()
        bs.close(end)
        text = json.dumps(summary)
        print(text, file=sys.stderr, flush=True)
        if args.stats:
            Path(args.stats).write_text(text)
        if args.constellation and bs.constellation:
            np.savez(args.constellation, **{f"s{k}": np.concatenate(v) for k, v in bs.constellation.items()})
    return 0
