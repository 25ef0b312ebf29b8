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

``--kb PATH`` (a model with ``context_tokens``, retrieval-augmented generation): the public
*global* knowledge base (:class:`~mtsc_sdr.rag.KnowledgeBase`, opened with ``create=False``).
``welcome`` announces its embedder's identity; the base station never has a question's text, so
a client sends the question's embedding (a ``query`` message, :mod:`.protocol`) just before the
item's frame. Received embeddings wait in a bounded map keyed by (session, seq) (at most
:data:`MAX_QUERIES`, the oldest dropped first, counted ``knowledge_queries_evicted``); a
session's entries go with its ``bye``. When a question item is decoded, the base station searches its
base with that item's embedding (:meth:`~mtsc_sdr.rag.KnowledgeBase.query_vectors`, top
``--retrieval-k``) and the LAM decoder reads the hits' text beside the received semantics (timed
as part of the ``lam_decoder`` stage: the global base belongs to content generation). An item
whose embedding did not come (lost, or the client's embedder differs) is decoded without global
context and counted (``knowledge_missing``). The query and the frame travel on different
sockets, so the query may come a little after its frame: control messages already here are read
first, and one late by up to :data:`QUERY_GRACE_MS` is waited for (outside the stage times) from a
session that has sent queries, or that has not yet had :data:`QUERY_PROBE_FRAMES` question items
without one (a client that sends none, e.g. with another embedder, stops costing the wait after
that). Malformed queries (wrong dtype, shape or dimension, not finite, not normalized, no seq)
are counted (``knowledge_query_malformed``) and dropped.

Logged per frame (``-v``): session, seq, task, SNR estimate, CFO, and every frame the receiver
dropped (header CRC failure, bad version or length, truncation) with its SNR and CFO; drops are
also counted by the receivers and in :attr:`BaseStation.stats`, printed as one JSON line on stderr at
exit (and written to ``--stats FILE`` when given). Stops on SIGINT / SIGTERM.

Overload: a reader thread drains every ``--rx`` stream as fast as it arrives into a queue of its
own, bounded to ``--rx-queue-samples`` samples (:class:`~mtsc_sdr.link.IQDrain`), so the sender (the
software channel, a radio's RX flowgraph) is never held up by a base station that cannot keep
up. When a stream's queue is full, its **oldest** chunks are dropped (the freshest signal is
kept): counted per stream (``rx_queues`` in the summary: ``chunks_dropped``, ``samples_dropped``,
``queued_samples_peak``), in total (``bs.chunks_dropped``, ``bs.samples_dropped``) and logged at
most every few seconds. The receiver then ends its stream before the hole (:meth:`Receiver.flush`):
a frame cut by it counts as ``truncated`` and its client sends it again; no frame is spliced
across it. Streams are served in turn, at most :data:`CHUNKS_PER_TURN` chunks each, and at most
:data:`CONTROL_PER_TURN` control messages per turn, so a flood on one link or the control link
costs that link. A client that stops reading its answers costs only itself: answers are sent
without waiting (:data:`DOWNLINK_SEND_TIMEOUT_MS`), and one that does not fit its full queue is
dropped and counted (``downlink_failed``, per session in ``downlink_failed_sessions``); the client
sends the item again or ends it with an error record.

Beyond the machine (:mod:`mtsc_sdr.link.security`, secure by default): a ``--control`` beyond loopback
(``tcp://0.0.0.0:P``, a LAN address) needs ``--curve-keys`` (the base station's key pair from
``mtsc-sdr keys create``; clients connect with ``--curve-server-key`` and its public key), with
``--curve-allow DIR`` admitting only the clients whose keys are in that allow-list, or else
``--insecure``; without either it refuses to start, before the model loads, and says how to fix
it. ``--curve-server-key`` makes the ``--rx`` connections CURVE (a remote channel with keys).

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
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from mtsc_sdr import tasks
from mtsc_sdr.capture.hooks import CAPTURE_INFO_KEYS, capture_receiver
from mtsc_sdr.link import IQDrain, IQPull, MessageServer
from mtsc_sdr.link.drain import DEFAULT_MAX_QUEUED_SAMPLES
from mtsc_sdr.link.endpoints import check_bind_endpoint
from mtsc_sdr.link.security import LinkSecurity, add_security_arguments, security_from_args
from mtsc_sdr.model import load
from mtsc_sdr.model.checkpoint import shipped_model_dir
from mtsc_sdr.options import add_checkpoint, add_threads
from mtsc_sdr.phy.rx import Receiver, ReceiverConfig, warm_up
from mtsc_sdr.report import peak_rss_mb
from mtsc_sdr.rag.augment import open_for_model, retrieval_k_of
from mtsc_sdr.runtime import protocol

# torch is imported where the model runs: `run` and `replay` import this module for the base
# station's command line (bs_argv) and must not pay for torch.

log = logging.getLogger("mtsc_sdr.bs")
#: Payloads kept per session for the constellation plot.
CONSTELLATION_FRAMES = 4
#: Query embeddings kept for frames still to come, keyed by (session, seq); the oldest go first.
MAX_QUERIES = 4096
#: How long a question item's frame waits for its late ``query`` (ms), from a session that sends queries.
QUERY_GRACE_MS = 50
#: Question items of a session that never sent a query after which its frames no longer wait for one.
QUERY_PROBE_FRAMES = 2
#: Chunks of one IQ stream processed before the other streams and the control link get a turn.
CHUNKS_PER_TURN = 16
#: Control messages handled before the IQ streams get a turn.
CONTROL_PER_TURN = 64
#: How long an answer waits for room in its client's queue (ms): 0, a slow client costs itself.
DOWNLINK_SEND_TIMEOUT_MS = 0
#: Query embeddings one session may keep waiting (its oldest go first): a flood costs that session.
MAX_QUERIES_PER_SESSION = 256


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
        knowledge: directory of the global knowledge base (None: none; see the module docstring).
        retrieval_k: snippets it gives each question item. max_queries: query embeddings kept.
        max_queued_samples: bound of each IQ stream's queue (complex64 samples; the oldest chunks
            are dropped beyond it, see the module docstring).
        security: CURVE server keys (and allow-list) for the control link, CURVE for the ``--rx``
            connections, ``insecure`` (default: plain, the control link on loopback only).

    Raises:
        ValueError: ``knowledge`` with a model that takes no retrieved context (``context_tokens``
            0), or ``retrieval_k`` < 1. KnowledgeBaseError: no knowledge base at ``knowledge``, or
            one that cannot be opened (another embedder, a corrupt store).
    """

    def __init__(self, checkpoint: str, rx_endpoints: list[str], control_endpoint: str, *,
                 sample_rate_hz: float = 1e6, threads: int = 1, security: LinkSecurity | None = None,
                 capture: str | None = None, capture_info: dict[str, Any] | None = None,
                 knowledge: str | Path | None = None, retrieval_k: int | None = None,
                 max_queries: int = MAX_QUERIES, max_queued_samples: int = DEFAULT_MAX_QUEUED_SAMPLES):
        import torch

        torch.set_num_threads(threads)
        self.identity = protocol.checkpoint_identity(checkpoint)
        model = load(checkpoint)
        # the receiver's compiled kernels, before any socket exists: a fresh install compiles them
        # here (seconds) instead of while the first clients' frames arrive and time out
        log.debug("receiver kernels ready in %.2f s", warm_up())
        self.server, self.tokenizer = model.server.eval(), model.tokenizer
        self.host = protocol.host_id()
        self.stats: Counter = Counter()
        self.retrieval_k, self.max_queries = retrieval_k_of(model.cfg, retrieval_k), int(max_queries)
        self.kb = None if knowledge is None else open_for_model(knowledge, model.cfg)
        self.queries: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()  # (session, seq) -> float32 (dim,)
        self._query_sessions: set[int] = set()          # sessions that sent a valid query
        self._queryless: Counter = Counter()            # session -> question items without one, before any
        self.retrieval_ms = {"total": 0.0, "max": 0.0}  # global retrieval times (items: knowledge_used)
        self.sessions: dict[int, bytes] = {}            # 16-bit session -> control-link peer
        self.constellation: dict[int, list[np.ndarray]] = {}   # session -> its first payloads, for plots
        self.streams = []
        self.drain: IQDrain | None = None               # reads the streams into bounded queues
        self.recordings = []                            # RecordingReceiver per stream with --capture
        self.downlink_failed_sessions: Counter = Counter()   # session -> answers / replies not sent
        try:
            security = security or LinkSecurity()
            self.control = MessageServer(control_endpoint, curve=security.server, insecure=security.insecure,
                                         send_timeout_ms=DOWNLINK_SEND_TIMEOUT_MS)
        except Exception:
            if self.kb is not None:
                self.kb.close()
            raise
        try:
            for i, ep in enumerate(rx_endpoints):
                rx = Receiver(ReceiverConfig(sample_rate_hz=sample_rate_hz))
                if capture:
                    info = dict(capture_info or {})
                    fields = {**info.pop("fields", {}), "mtsc:checkpoint": self.identity, "mtsc:rx_endpoint": ep}
                    rx = capture_receiver(rx, f"{capture}-rx{i}", source="bs input", fields=fields, **info)
                    self.recordings.append(rx)
                self.streams.append((IQPull(ep, curve=security.client), rx))
            self.drain = IQDrain([pull for pull, _ in self.streams], max_queued_samples=max_queued_samples).start()
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
            self.downlink_failed_sessions[msg.session] += 1
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
            welcome = {"checkpoint": self.identity}
            if self.kb is not None:
                from mtsc_sdr.rag.embedder import identity

                welcome["knowledge"] = protocol.knowledge_announcement(identity(self.kb.embedder))
            self._reply(msg, protocol.WELCOME, welcome)
        elif msg.kind == protocol.QUERY:
            self._on_query(msg)
        elif msg.kind == protocol.BYE:
            self.sessions.pop(msg.session, None)
            self._forget_queries(msg.session)
            self.stats["bye"] += 1
        else:
            self.stats["control_unknown_kind"] += 1

    # -- global knowledge base ------------------------------------------------------------------------

    def _on_query(self, msg) -> None:
        """Keep a ``query``'s embedding for its frame; an unexpected or malformed one is counted
        and dropped."""
        if self.kb is None:
            self.stats["knowledge_query_unexpected"] += 1       # no global base was announced
            return
        if self.sessions.get(msg.session) != msg.peer:
            self.stats["knowledge_query_unknown_session"] += 1
            log.info("query of session %d dropped: no hello from that session", msg.session)
            return
        try:
            seq, vector = protocol.parse_query(msg.tensors, msg.meta, self.kb.embedder.dim)
        except ValueError as exc:
            self.stats["knowledge_query_malformed"] += 1
            log.warning("query of session %d dropped: %s", msg.session, exc)
            return
        key = (msg.session, seq)
        self.queries[key] = vector
        self.queries.move_to_end(key)
        self._query_sessions.add(msg.session)
        self.stats["knowledge_queries"] += 1
        mine = [k for k in self.queries if k[0] == msg.session] if len(self.queries) > MAX_QUERIES_PER_SESSION else []
        for old in mine[:max(0, len(mine) - MAX_QUERIES_PER_SESSION)]:     # a flood costs its own session
            del self.queries[old]
            self.stats["knowledge_queries_evicted"] += 1
        while len(self.queries) > self.max_queries:
            self.queries.popitem(last=False)
            self.stats["knowledge_queries_evicted"] += 1

    def _forget_queries(self, session: int) -> None:
        for key in [k for k in self.queries if k[0] == session]:
            del self.queries[key]
        self._query_sessions.discard(session)
        self._queryless.pop(session, None)

    def _query_of(self, session: int, seq: int) -> np.ndarray | None:
        """The embedding float32 (dim,) sent for the frame (session, seq); when it is not in yet,
        the control messages already here are read, and a late one is waited for up to
        :data:`QUERY_GRACE_MS` (see the module docstring). None when it did not come."""
        key = (session, seq)
        wait = session in self._query_sessions or self._queryless[session] < QUERY_PROBE_FRAMES
        deadline = time.monotonic() + (QUERY_GRACE_MS / 1e3 if wait else 0.0)
        while key not in self.queries:
            msg = self.control.recv(timeout_ms=max(0, int(1e3 * (deadline - time.monotonic()))))
            if msg is None:
                if session not in self._query_sessions:
                    self._queryless[session] += 1
                return None
            self._on_message(msg)
        return self.queries[key]

    def _knowledge_ids(self, session: int, seq: int, task_id: int):
        """The global snippets for a question item, as the server half reads them (int64 (1, T),
        :func:`mtsc_sdr.model.knowledge.context_ids`), and the seconds the search and
        tokenization took; None (and 0) without a global base, for a task without a question, or
        when the item's query did not come (counted ``knowledge_missing``)."""
        if self.kb is None or not tasks.by_id(task_id).question:
            return None, 0.0
        vector = self._query_of(session, seq)
        if vector is None:
            self.stats["knowledge_missing"] += 1
            log.info("session %d seq %d: no query embedding came, decoded without global knowledge", session, seq)
            return None, 0.0
        from mtsc_sdr.model.knowledge import context_ids

        t0 = time.monotonic()
        hits = self.kb.query_vectors(vector[None], k=self.retrieval_k)[0]
        ids = context_ids(self.tokenizer, [" ".join(h.text for h in hits)], self.server.cfg.context_tokens, "cpu")
        took = time.monotonic() - t0
        self.retrieval_ms["total"] += 1e3 * took
        self.retrieval_ms["max"] = max(self.retrieval_ms["max"], 1e3 * took)
        self.stats["knowledge_used"] += 1
        self.stats["knowledge_hits"] += len(hits)
        return ids, took

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
        except (ConnectionError, TimeoutError) as exc:      # client gone or not reading: it resends or gives up
            self.stats["downlink_failed"] += 1
            self.downlink_failed_sessions[h.session_id] += 1
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
        # the global knowledge base's snippets (RAG models, question items), timed with the LAM decoder
        knowledge, retrieval_s = self._knowledge_ids(h.session_id, h.seq, h.task_id)
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
                memory, memory_mask = self.server.with_knowledge(sem, mask, knowledge)   # + the snippets' states
                out = self.server.lam_decoder(queries, memory, memory_mask)[0]
                t2 = time.monotonic() + retrieval_s
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

    def _drain_stream(self, i: int, max_chunks: int = CHUNKS_PER_TURN) -> bool:
        """Process what stream ``i`` has queued, at most ``max_chunks`` chunks (so that a busy stream
        cannot starve the others and the control link); True when some are left. After dropped
        chunks the receiver first ends its stream (a frame cut by the hole is ``truncated``)."""
        pull, rx = self.streams[i]
        for _ in range(max_chunks):
            got = self.drain.get(i)
            if got is None:
                return False
            x, gap = got
            t_frame = time.monotonic()
            last_drop = rx.drops[-1] if rx.drops else None
            frames = rx.flush() + rx.process(x) if gap else rx.process(x)
            rx_ms = 1e3 * (time.monotonic() - t_frame)
            self._log_drops(pull.endpoint, rx, last_drop)
            for f in frames:
                self._on_frame(f, t_frame, rx_ms / len(frames))
        return self.drain.queued(i) > 0

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
        poller.register(self.drain.wake_fd, zmq.POLLIN)
        t_end = None if stop_after_s is None else time.monotonic() + stop_after_s
        busy = False                       # chunks were left queued: look again without waiting
        while t_end is None or time.monotonic() < t_end:
            ready = dict(poller.poll(0 if busy else 100))
            if not self.drain.alive():
                raise RuntimeError(f"the IQ reader thread stopped: {self.drain.error!r}")
            if self.control.socket in ready:
                for _ in range(CONTROL_PER_TURN):
                    msg = self.control.recv(timeout_ms=0)
                    if msg is None:
                        break
                    self._on_message(msg)
            self.drain.clear_wake()        # before taking chunks: a chunk queued after this wakes the next poll
            busy = False
            for i in range(len(self.streams)):
                busy = self._drain_stream(i) or busy

    def summary(self) -> dict[str, Any]:
        """Counters: this object's (``knowledge_*``: the global knowledge base's, see the module
        docstring), each receiver's (header failures...), the control link's; ``knowledge``:
        the global base (path, documents, k, queries waiting, retrieval ms mean / max) or None;
        ``rx_queues``: each IQ stream's queue (chunks and samples in and dropped, the peak queued,
        :class:`~mtsc_sdr.link.drain.QueueStats`), whose drops ``bs`` also sums (``chunks_dropped``,
        ``samples_dropped``); ``downlink_failed_sessions``: answers and replies not sent, per session."""
        drops = self.drain.totals() if self.drain is not None else {}
        return {"peak_rss_mb": peak_rss_mb(),
                "bs": {**dict(self.stats), **drops}, "receivers": [dict(rx.stats) for _, rx in self.streams],
                "iq_streams": [pull.stats.as_dict() for pull, _ in self.streams],
                "rx_queues": [self.drain.stats(i).as_dict() for i in range(len(self.streams))] if self.drain else [],
                "downlink_failed_sessions": {str(k): v for k, v in sorted(self.downlink_failed_sessions.items())},
                "control": self.control.stats.as_dict(), "sessions": sorted(self.sessions),
                "recordings": [str(rec.writer.meta_path) for rec in self.recordings],
                "knowledge": self._knowledge_summary()}

    def _knowledge_summary(self) -> dict[str, Any] | None:
        if self.kb is None:
            return None
        used = self.stats["knowledge_used"]
        return {"path": str(self.kb.path), "documents": len(self.kb), "retrieval_k": self.retrieval_k,
                "queries_waiting": len(self.queries), "used": used, "missing": self.stats["knowledge_missing"],
                "malformed": self.stats["knowledge_query_malformed"],
                "retrieval_ms_mean": round(self.retrieval_ms["total"] / used, 3) if used else None,
                "retrieval_ms_max": round(self.retrieval_ms["max"], 3) if used else None}

    def close(self, end: str = "complete") -> None:
        """Close the streams and the control link; recordings end with ``mtsc:end = end``."""
        if self.drain is not None:
            self.drain.close()                 # the reader thread lets go of the streams first
        for pull, _ in self.streams:
            pull.close()
        self.control.close()
        for rec in self.recordings:
            rec.close(end)
        if self.kb is not None:
            self.kb.close()


def bs_argv(checkpoint: str, control: str, rx: list[str], sample_rate_hz: float, stats: str | Path, *,
            threads: int | None = None, constellation: str | Path | None = None, capture: str | Path | None = None,
            capture_info: dict[str, Any] | None = None, knowledge: str | Path | None = None,
            retrieval_k: int | None = None) -> list[str]:
    """The command line of a base-station process (``mtsc-sdr bs``, options as :func:`add_arguments`
    declares them): what ``run`` and ``replay`` start. ``rx``: one IQ endpoint per link;
    ``knowledge``: the global knowledge base (``--kb``)."""
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
    if knowledge is not None:
        argv += ["--kb", str(knowledge)]
    if retrieval_k is not None:
        argv += ["--retrieval-k", str(retrieval_k)]
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
    add_security_arguments(p, binds="--control", connects="--rx")
    p.add_argument("--capture", metavar="PREFIX",
                   help="record each --rx stream into the SigMF recording PREFIX-rx<i> (.sigmf-meta + .sigmf-data), "
                        "annotated with the frames received; mtsc-sdr replay decodes it again")
    p.add_argument("--capture-info", metavar="JSON", type=json.loads, default=None,
                   help="with --capture: JSON object of recording fields: frequency_hz, hw, rx_gain_db, tx_gain_db, "
                        "calibration_id, description, fields (more mtsc:* global fields)")
    p.add_argument("--kb", metavar="PATH",
                   help="the public global knowledge base (a directory made by `mtsc-sdr kb add`) whose snippets the "
                        "LAM decoder reads for question items; needs a model trained with retrieval (context_tokens)")
    p.add_argument("--retrieval-k", type=int, metavar="K",
                   help="with --kb: snippets retrieved for each question item (default: the k the model was trained with)")
    p.add_argument("--rx-queue-samples", type=int, default=DEFAULT_MAX_QUEUED_SAMPLES, metavar="N",
                   help="bound of each --rx stream's queue in complex64 samples; when the base station falls "
                        "behind, the oldest chunks beyond it are dropped and counted (default %(default)s)")


def security_for(args: argparse.Namespace) -> LinkSecurity:
    """The link security the options of :func:`add_arguments` ask for, with ``--control`` checked
    against the bind rule at once, so that a refused base station says so before its model loads.
    ValueError (NonLoopbackBindError, a bad key) or OSError (a missing allow-list) otherwise."""
    security = security_from_args(args)
    if not security.insecure:               # --insecure: the bind itself warns
        check_bind_endpoint(args.control, encrypted=security.server is not None)
    return security


def run(args: argparse.Namespace) -> int:
    checkpoint = args.checkpoint or str(shipped_model_dir())
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        security = security_for(args)
    except (ValueError, OSError) as exc:
        print(f"mtsc-sdr bs: {exc}", file=sys.stderr)
        return 2
    info = args.capture_info
    if info is not None and (not isinstance(info, dict) or set(info) - set(CAPTURE_INFO_KEYS)):
        print(f"mtsc-sdr bs: --capture-info must be a JSON object with keys among {list(CAPTURE_INFO_KEYS)}, "
              f"got {info!r}", file=sys.stderr)
        return 2
    from mtsc_sdr.rag.errors import KnowledgeBaseError

    try:
        bs = BaseStation(checkpoint, args.rx, args.control, sample_rate_hz=args.sample_rate_hz,
                         threads=args.threads, security=security, capture=args.capture, capture_info=info,
                         knowledge=args.kb, retrieval_k=args.retrieval_k, max_queued_samples=args.rx_queue_samples)
    except (ValueError, KnowledgeBaseError) as exc:
        print(f"mtsc-sdr bs: {exc}", file=sys.stderr)
        return 2
    knowledge = f", global knowledge base {args.kb} ({len(bs.kb)} documents)" if bs.kb is not None else ""
    print(f"bs: serving {checkpoint} on {args.control}, receiving {', '.join(args.rx)}{knowledge}", file=sys.stderr,
          flush=True)
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
