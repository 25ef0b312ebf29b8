"""``mtsc-sdr client``: the client half of the model behind a PHY transmitter.

For each item (from a data-set split, or the user's own files):

1. modality encoders -> LAM encoder -> JSC encoder (each timed), with the CSI it has, in the
   model's units (the SNR of the payload symbols the JSC decoder will get): ``--snr-db`` as set on
   the link plus the PHY's subcarrier gain (:data:`~mtsc_sdr.phy.ofdm.SUBCARRIER_SNR_GAIN_DB`), or
   with ``--csi feedback`` the payload SNR the base station measured on the last answer;
2. one PHY frame (header: session, seq, task, rate index) preceded by ``--gap-samples`` zeros,
   pushed into the IQ stream it binds (``--tx``; the channel or TX flowgraph connects);
3. the base station's ``semantics`` message comes back on the control link (``--control``);
4. the task decoders give the answer, caption or image.

Up to ``--window`` items are in flight at once (pipelining). An item is sent again, up to
``--retries`` times, then gets an error record:

* at once when the answer to an item sent after it comes first: the link and the base station
  keep a session's frames in order, so its frame was lost (a header that did not decode, a frame
  not detected at low SNR);
* after ``--item-timeout-s`` without an answer otherwise (the last frames of a burst; after a
  fresh ``hello``: the base station may have restarted).

Retrieval-augmented generation (a model with ``context_tokens``): ``--kb PATH`` is the client's
*local*, private knowledge base (:class:`~mtsc_sdr.rag.KnowledgeBase`, opened with
``create=False``). For each item with a question the client embeds the question once, takes the
top ``--retrieval-k`` snippets of its base (:meth:`~mtsc_sdr.rag.KnowledgeBase.query_vectors`)
into the item's ``local_context`` before encoding -- their text never leaves the client, only the
symbols its encoder makes of them -- and, when the base station's ``welcome`` announced a global
knowledge base built with the same embedder, sends the question's embedding (never its text) in
a ``query`` message just before each send of the item's frame (:mod:`.protocol`). The embedder
is the local base's, or :class:`~mtsc_sdr.rag.SentenceEmbedder` loaded when first needed; an
announced embedder this client does not have is logged once and no queries are sent (the base
station then decodes without global context). The record of such an item has ``retrieval_ms``
(embedding the question and searching the local base), ``local_snippets``, ``local_doc_ids`` and
``global_query`` (whether its embedding went to the base station); the summary has the
``knowledge_*`` counters.

Several points (``--tx``, ``--session`` and ``--snr-db`` given once per point): the same items are
sent at each point in turn, each over its own IQ stream with its own session and SNR, by one
process that loads the model once (``mtsc-sdr run`` with ``client_per_point: false``).

Beyond the machine (:mod:`mtsc_sdr.link.security`): ``--curve-server-key`` (the base station's public
key) makes the control link CURVE, ``--curve-keys`` is this client's key pair for a base station
with an allow-list (without it a fresh one is made per run). ``--tx`` has no CURVE (a GNU Radio TX
flowgraph may pull from it): beyond loopback it needs ``--insecure``.

Every item of every point ends with exactly one JSON line in ``--out`` (default stdout), either a
result or an error::

    {"item_id", "task", "session", "seq", "snr_db", "precision", "attempts", "output", "reference",
     "snr_est_db", "snr_payload_db", "cfo_hz", "rate_idx", "n_tokens", "n_symbols",
     "latency_ms": {stage: ms, ..., "total": ms}, ["psnr_db", "ssim"] (reconstruct)}
    {"item_id", "task", "session", "seq", "snr_db", "precision", "attempts", "error": "..."}

``output`` is the answer / caption, or for ``reconstruct`` the PNG path under ``--images``
(None without it); PSNR and SSIM against the input are computed here, where the image is.
Stage names: :data:`mtsc_sdr.runtime.protocol.STAGES`; ``channel`` and ``downlink`` need the
base station on the same host (monotonic clocks), otherwise they are None and their sum is in
``link_round_trip`` (from the end of the TX push to the answer: channel, base station and
downlink); ``channel`` (end of the TX push to the frame at the base station) is 0 when the frame
got there before the push returned. An item sent more than once has its times measured from its
last send. A summary per point
(counts, drops, peak RSS, weight bytes) goes to stderr as one JSON line when the point ends, and
to ``--summary FILE`` (one JSON line per point). Exit status: 0 when every item has a result, 1
when some ended in an error, 4 when the base station refused the checkpoint, 2 for bad
arguments, 130 when interrupted (SIGINT / SIGTERM; every unfinished item, of the points not yet
begun too, still gets an error record).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import signal
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from typing import Any, Optional

import numpy as np

from mtsc_sdr import tasks
from mtsc_sdr.data import collate
from mtsc_sdr.data import examples as split_examples      # `examples` names item lists below
from mtsc_sdr.data.user_files import items_from_files
from mtsc_sdr.link import IQPush, IQSendTimeout, MessageClient
from mtsc_sdr.link.security import LinkSecurity, add_security_arguments, security_from_args
from mtsc_sdr.model.checkpoint import shipped_model_dir
from mtsc_sdr.options import add_checkpoint, add_seed, add_threads
from mtsc_sdr.phy.header import FrameHeader
from mtsc_sdr.phy.ofdm import SUBCARRIER_SNR_GAIN_DB
from mtsc_sdr.phy.tx import Transmitter
from mtsc_sdr.rag.augment import question_vector, retrieval_k_of
from mtsc_sdr.report import peak_rss_mb
from mtsc_sdr.runtime import protocol
from mtsc_sdr.runtime.outputs import outputs_for

# torch, the model's modules and the quantized client are imported inside the functions that run
# them: `mtsc-sdr client --help` and `replay`, which imports this module, must not pay for torch.

log = logging.getLogger("mtsc_sdr.client")


class Refused(RuntimeError):
    """The base station refused this client (checkpoint mismatch); the message says why."""


# -- items -----------------------------------------------------------------------------------------


#: The options naming the user's own inputs (see :func:`item_source`).
FILE_OPTIONS = ("task", "image", "question", "audio", "video")


def item_source(args: argparse.Namespace) -> dict[str, Any]:
    """Where the items come from, as JSON: ``{"split", "tasks" (list), "n_per_task", "seed"}``
    for a data-set split, else ``{"task", "image", "question", "audio", "video"}`` (the user's
    files, paths as given). The client sends it in its ``hello``; with the checkpoint it
    rebuilds the same items in the same order (:func:`examples_from_source`), which is how a
    replayed recording knows which item each frame's seq carried."""
    if args.split:
        tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
        return {"split": args.split, "tasks": tasks, "n_per_task": args.n_per_task, "seed": args.seed}
    return {k: getattr(args, k, None) for k in FILE_OPTIONS}


def examples_from_source(source: dict[str, Any], cfg) -> list:
    """The items an :func:`item_source` describes, in the order the client sends them (the k-th
    item goes out with seq k mod 2^16). ValueError / OSError when they cannot be had."""
    if source.get("split"):
        names = list(source.get("tasks") or [])
        bad = [t for t in names if t not in tasks.names()]
        if bad or not names:
            raise ValueError(f"--tasks: unknown task(s) {bad or names}; tasks are {list(tasks.names())}")
        return split_examples(source["split"], names, n_per_task=int(source["n_per_task"]), seed=int(source["seed"]))
    return items_from_files(**{k: source.get(k) for k in FILE_OPTIONS}, image_size=cfg.image_size,
                            video_frames=cfg.video_frames)


# -- one item through the client half -------------------------------------------------------------------


def encode_item(encoder, tx, example, csi_db: float, budget: Optional[int], session: int, seq: int,
                gap_samples: int) -> tuple[np.ndarray, dict, dict]:
    """Encode one example with a client runtime's encoder and frame it: modality encoders -> LAM
    encoder -> JSC encoder (or one graph, :mod:`mtsc_sdr.compress.runtimes`) -> PHY.

    Args:
        encoder: a runtime encoder (``encoder.client`` is its ClientModel). tx: a
            :class:`~mtsc_sdr.phy.tx.Transmitter`.
        csi_db: the SNR the rate choice assumes (dB). budget: complex symbols (None: the model's).
    Returns:
        samples complex64 (gap_samples + frame length,), info ``{"rate_idx", "n_tokens",
        "n_symbols", "csi_db"}``, stage times in seconds: the runtime's encode stages
        (``modality_encoders``, ``lam_encoder``, ``jsc_encoder``; a graph runtime:
        ``encode_graph``) and ``framing``.
    """
    import torch

    task = example.task
    up, times = encoder.encode(collate([example]), task, torch.tensor([float(csi_db)]), budget)
    t3 = time.perf_counter()
    rate_idx, n_tokens = int(up.rate_idx[0]), int(up.n_tokens[0])
    n = n_tokens * encoder.client.cfg.rate_table[rate_idx]
    header = FrameHeader(session_id=session, seq=seq, payload_len=n, rate_idx=rate_idx, task_id=tasks.get(task).id)
    frame = tx.build(up.symbols[0, :n].numpy(), header)
    samples = np.concatenate([np.zeros(gap_samples, np.complex64), frame])
    info = {"rate_idx": rate_idx, "n_tokens": n_tokens, "n_symbols": n, "csi_db": float(csi_db)}
    return samples, info, {**times, "framing": time.perf_counter() - t3}


def decode_item(model, example, semantics: np.ndarray):
    """Task decoders on one item's returned semantics float32 (Q, d) -> (output, seconds): a batch
    of one as :meth:`~mtsc_sdr.model.split.ClientModel.decode` gives it (a list of one string, or
    an image float32 (1, 3, H, W) in [0, 1] for ``reconstruct``)."""
    import torch

    from mtsc_sdr.model import TaskSemantics

    t0 = time.monotonic()
    question = tasks.get(example.task).question
    out = model.decode(example.task, TaskSemantics(torch.from_numpy(np.array(semantics, np.float32))[None]),
                       questions=[example.question] if question else None,
                       contexts=[example.local_context] if question else None)
    return out, time.monotonic() - t0


# -- the pipeline ------------------------------------------------------------------------------------


@dataclass
class _InFlight:
    example: Any
    seq: int
    samples: np.ndarray
    info: dict
    latency: dict
    t_start: float
    t_tx_done: float = 0.0
    attempts: int = 1
    deadline: float = 0.0
    sent_no: int = -1           # order of its last send in this session's IQ stream (-1: never sent)
    overtaken: bool = False     # an item sent after it was answered first: its frame was lost
    query: Optional[np.ndarray] = None      # float32 (dim,) question embedding for the base station
    retrieval: dict = field(default_factory=dict)   # retrieval_ms, local_snippets, ... (its record)


@dataclass
class ClientSettings:
    """How the client runs; see ``mtsc-sdr client --help``."""

    session: int
    snr_db: float
    precision: str = "fp32"          # of the model given to Client (recorded in every item)
    csi: str = "configured"          # configured | feedback
    budget: Optional[int] = None
    window: int = 4
    item_timeout_s: float = 5.0
    retries: int = 3
    gap_samples: int = 256
    flush_samples: int = 2048
    hello_timeout_s: float = 120.0
    images_dir: Optional[str] = None
    items: Optional[dict] = None     # where the items come from (:func:`item_source`), told in hello
    retrieval_k: Optional[int] = None   # snippets of the local knowledge base per question item (None: the model's)
    counters: Counter = field(default_factory=Counter)


class Client:
    """The client half behind a transmitter and the control link (see the module docstring).

    With ``tx_endpoint=None`` it has no transmitter: someone else sends its frames (a replayed
    recording, :mod:`mtsc_sdr.runtime.replay`) and it only says hello, waits for the answers to
    the items it :meth:`expect` s and decodes them (:meth:`poll`).
    """

    def __init__(self, model, identity: dict, tx_endpoint: Optional[str], control_endpoint: str,
                 settings: ClientSettings, encoder=None, artifact: Optional[dict] = None, knowledge=None,
                 security: Optional[LinkSecurity] = None):
        """model: the ClientModel (task decoders); encoder: the runtime's encoder (default the
        model's own torch encode); artifact: ``{"name", "runtime", "source"}`` of a compressed
        client artifact, told in ``hello`` (the base station refuses one made from another
        checkpoint); knowledge: the local :class:`~mtsc_sdr.rag.KnowledgeBase` (open; the caller
        closes it), for a model with ``context_tokens`` only (ValueError otherwise); security:
        CURVE for the control link and ``insecure`` for the TX stream (default: plain, loopback)."""
        from mtsc_sdr.compress.runtimes import TorchEncoder

        if knowledge is not None and not model.cfg.context_tokens:
            raise ValueError("a local knowledge base needs a model trained with retrieval (context_tokens > 0); "
                             "this one takes no retrieved context")
        self.model, self.identity, self.s = model, identity, settings
        self.retrieval_k = retrieval_k_of(model.cfg, settings.retrieval_k)   # local snippets per question item
        self.kb = knowledge
        self._query_embedder = None                   # embeds questions for the base station's global base
        self._own_embedder = None                     # a SentenceEmbedder, when the local base's is not that one
        self._own_embedder_error = ""
        self._knowledge_warned = False
        self.encoder = encoder if encoder is not None else TorchEncoder(model)
        self.artifact = artifact
        self.tx = Transmitter()
        # CSI in the model's units: SNR of the payload symbols the JSC decoder gets, which the OFDM
        # PHY puts SUBCARRIER_SNR_GAIN_DB above the SNR set on the wire
        self.csi_db = settings.snr_db + SUBCARRIER_SNR_GAIN_DB
        self.host = protocol.host_id()
        security = security or LinkSecurity()
        self._curve = security.client is not None
        self.push = (IQPush(tx_endpoint, send_timeout_ms=int(settings.item_timeout_s * 1000),
                            insecure=security.insecure) if tx_endpoint is not None else None)
        try:
            self.control = MessageClient(control_endpoint, session=settings.session, curve=security.client)
        except Exception:
            if self.push is not None:
                self.push.close(linger_ms=0)
            raise
        self.counts: Counter = settings.counters
        self._welcomed = False
        self._next_seq = 0
        self._sends = 0                               # frames pushed so far (their order in the stream)
        self._expected: dict[int, _InFlight] = {}     # receive-only use: seq -> item

    def close(self) -> None:
        try:
            self.control.send(protocol.BYE)
        except TimeoutError:
            pass
        self.control.close(linger_ms=200)
        if self.push is not None:
            self.push.close(linger_ms=200)

    # -- control link ---------------------------------------------------------------------------

    def _hello(self) -> None:
        about = {"host": self.host, "precision": self.s.precision, "snr_db": self.s.snr_db, "items": self.s.items}
        meta = {"checkpoint": self.identity, "client": about}
        if self.artifact is not None:
            meta["artifact"] = self.artifact
        self.control.send(protocol.HELLO, meta=meta)
        self.counts["hello_sent"] += 1

    def handshake(self) -> None:
        """Send ``hello`` until ``welcome`` (the base station may still be starting); raise
        :class:`Refused` on ``refused``, TimeoutError after ``hello_timeout_s``."""
        deadline = time.monotonic() + self.s.hello_timeout_s
        while not self._welcomed:
            if time.monotonic() > deadline:
                hint = ("; over CURVE: check --curve-server-key is the base station's public key and, if it has an "
                        "allow-list, that this client's key is on it (`mtsc-sdr keys allow`)") if self._curve else ""
                raise TimeoutError(f"no answer from the base station to hello within {self.s.hello_timeout_s:g} s"
                                   + hint)
            self._hello()
            t_next = time.monotonic() + 2.0
            while not self._welcomed and time.monotonic() < t_next:
                self._receive(timeout_ms=100, inflight={}, done=lambda *_: None)
                refused = self.control.curve_refused()
                if refused and not self._welcomed:
                    raise Refused(f"{refused}; on the base station's machine: `mtsc-sdr keys allow` this client's "
                                  ".key file into its --curve-allow directory")
        if self.push is not None:
            self._wait_for_iq_peer(deadline)

    def _wait_for_iq_peer(self, deadline: float) -> None:
        """Push a few zero samples (noise at the receiver) until the channel or TX flowgraph takes
        them, so that the first item's latency is not the link's start-up time."""
        while True:
            try:
                self.push.send(np.zeros(max(64, self.s.gap_samples), np.complex64))
                return
            except IQSendTimeout:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"nothing takes this client's IQ stream within {self.s.hello_timeout_s:g} s "
                                       "(is the channel or TX flowgraph running?)") from None

    def _receive(self, timeout_ms: int, inflight: dict, done) -> bool:
        """Handle the next control message (waiting up to ``timeout_ms``); False if none came."""
        msg = self.control.recv(timeout_ms=timeout_ms)
        if msg is None:
            return False
        if msg.session != self.s.session:
            self.counts["downlink_wrong_session"] += 1
            log.warning("dropped a %s message for session %d (this is %d)", msg.kind, msg.session, self.s.session)
            return True
        if msg.kind == protocol.WELCOME:
            self._welcomed = True
            self._on_knowledge(msg.meta.get("knowledge"))
        elif msg.kind == protocol.REFUSED:
            raise Refused(f"the base station refused this client: {msg.meta.get('reason', 'no reason given')}")
        elif msg.kind == protocol.SEMANTICS:
            try:
                meta = protocol.DownlinkMeta.from_meta(msg.meta)
                sem = msg.tensors.get("semantics")
                want = (self.model.cfg.task_queries, self.model.cfg.d_model)
                if sem is None or sem.dtype != np.float32 or sem.shape != want:
                    raise ValueError(f"tensor 'semantics' must be float32 {want}, got "
                                     f"{None if sem is None else (sem.dtype, sem.shape)}")
            except ValueError as exc:
                self.counts["downlink_malformed"] += 1
                log.warning("dropped a malformed semantics message: %s", exc)
                return True
            item = inflight.get(meta.seq)
            if item is None:
                self.counts["downlink_stale"] += 1      # an answer to a resent item that was already answered
                return True
            done(item, sem, meta, time.monotonic())     # removes it from inflight once its record is written
        else:
            self.counts["downlink_unknown_kind"] += 1
        return True

    # -- retrieval ---------------------------------------------------------------------------------

    @property
    def sends_queries(self) -> bool:
        """Whether this client sends its question items' embeddings to the base station (its
        ``welcome`` announced a global knowledge base whose embedder this client has)."""
        return self._query_embedder is not None

    def _on_knowledge(self, announced) -> None:
        """A ``welcome``'s ``knowledge``: choose the embedder of this client's queries (the local
        base's, else a :class:`~mtsc_sdr.rag.SentenceEmbedder`) when it has the announced
        identity; otherwise send none, with one warning."""
        self._query_embedder = None
        if announced is None or self.push is None or not self.model.cfg.context_tokens:
            return
        from mtsc_sdr.rag.embedder import identity

        candidates = [self.kb.embedder] if self.kb is not None else []
        if not any(protocol.same_embedder(announced, identity(e)) for e in candidates):
            if self._own_embedder is None and not self._own_embedder_error:
                from mtsc_sdr.rag import KnowledgeBaseError, SentenceEmbedder

                try:
                    self._own_embedder = SentenceEmbedder()         # loaded once, when first needed
                except KnowledgeBaseError as exc:    # EmbedderError: no packaged model, wrong weights
                    self._own_embedder_error = f" (no embedder of its own: {exc})"
            candidates += [self._own_embedder] if self._own_embedder is not None else []
        why = self._own_embedder_error
        self._query_embedder = next((e for e in candidates if protocol.same_embedder(announced, identity(e))), None)
        if self._query_embedder is None and not self._knowledge_warned:
            self._knowledge_warned = True
            self.counts["knowledge_embedder_mismatch"] += 1
            have = ", ".join(f"{e.name} {e.sha256[:12]}.. dim {e.dim}" for e in candidates) or "none"
            log.warning("the base station's global knowledge base uses embedder %r (sha256 %.12s.., dim %s), this "
                        "client has %s%s: no queries are sent, items are decoded without global knowledge",
                        announced.get("embedder") if isinstance(announced, dict) else announced,
                        announced.get("sha256", "") if isinstance(announced, dict) else "",
                        announced.get("dim") if isinstance(announced, dict) else None, have, why)

    def _retrieve(self, example) -> tuple[Any, Optional[np.ndarray], dict]:
        """For an item with a question, in a model with ``context_tokens``: ``example`` with the
        local base's top ``retrieval_k`` snippets as its ``local_context``, the question's
        embedding float32 (dim,) for the base station (None when it gets none), and what goes
        into the item's record. Other items pass unchanged. Both bases are searched with the
        embedding as the model maps it (its query adapter: ``ClientModel.retrieval_query``)."""
        question = example.question if tasks.get(example.task).question else None
        if not question or not self.model.cfg.context_tokens or (self.kb is None and self._query_embedder is None):
            return example, None, {}
        t0 = time.perf_counter()
        info: dict[str, Any] = {}
        vector = None
        if self.kb is not None:
            vector = question_vector(self.kb.embedder, question, self.model.retrieval_query)   # (1, dim)
            hits = self.kb.query_vectors(vector, k=self.retrieval_k)[0]
            example = replace(example, local_context=" ".join(h.text for h in hits))
            info = {"retrieval_ms": round(1e3 * (time.perf_counter() - t0), 3), "local_snippets": len(hits),
                    "local_doc_ids": [h.doc_id for h in hits]}
            self.counts["knowledge_local_retrievals"] += 1
            self.counts["knowledge_local_snippets"] += len(hits)
        query = None
        if self._query_embedder is not None:
            if vector is None or self._query_embedder is not self.kb.embedder:
                vector = question_vector(self._query_embedder, question, self.model.retrieval_query)
            query = np.asarray(vector[0], np.float32)
        info["global_query"] = query is not None
        return example, query, info

    def _send_query(self, item: _InFlight) -> None:
        """The item's question embedding to the base station, just before its frame; a full
        control queue costs the item its global context, not the item."""
        tensors, meta = protocol.query_message(item.seq, item.query)
        try:
            self.control.send(protocol.QUERY, tensors, meta)
            self.counts["knowledge_queries_sent"] += 1
        except TimeoutError as exc:
            self.counts["knowledge_query_send_failed"] += 1
            log.warning("query of item %s (seq %d) not sent: %s", item.example.item_id, item.seq, exc)

    # -- receive-only use (replay) -------------------------------------------------------------------

    def expect(self, seq: int, example, info: Optional[dict] = None) -> None:
        """Wait for the answer to ``example``, whose frame someone else sends with ``seq``
        (``info``: ``rate_idx``, ``n_tokens``, ``n_symbols`` as that frame carried them)."""
        now = time.monotonic()
        self._expected[seq] = _InFlight(example, seq, np.zeros(0, np.complex64), dict(info or {}), {}, now,
                                        t_tx_done=now)

    @property
    def waiting(self) -> int:
        """Expected items still without an answer."""
        return len(self._expected)

    def poll(self, timeout_ms: int, write) -> bool:
        """Handle the next control message (waiting up to ``timeout_ms``); an answer to an expected
        item is decoded and written with ``write(record)`` (the record :meth:`run` writes, its
        latencies measured from :meth:`expect`). False when no message came."""
        def done(item, sem, meta, t_recv):
            write(self._finish(item, sem, meta, t_recv))
            del self._expected[item.seq]
            self.counts["items_ok"] += 1

        return self._receive(timeout_ms, self._expected, done)

    def give_up(self, write, why: str) -> int:
        """An error record (``why``) for every expected item still unanswered; returns how many."""
        for item in self._expected.values():
            write(dict(self._record(item), error=why))
        n = len(self._expected)
        self.counts["items_failed"] += n
        self._expected.clear()
        return n

    # -- items ------------------------------------------------------------------------------------

    def _encode(self, example) -> _InFlight:
        seq = self._next_seq % (1 << 16)
        self._next_seq += 1
        t0 = time.monotonic()
        example, query, retrieval = self._retrieve(example)
        samples, info, lat = encode_item(self.encoder, self.tx, example, self.csi_db, self.s.budget,
                                         self.s.session, seq, self.s.gap_samples)
        return _InFlight(example, seq, samples, info, lat, t0, query=query, retrieval=retrieval)

    def _send(self, item: _InFlight) -> bool:
        if item.query is not None:
            self._send_query(item)
        t = time.monotonic()
        try:
            self.push.send(item.samples)
        except IQSendTimeout:
            self.counts["tx_timeout"] += 1
            item.deadline = time.monotonic() + self.s.item_timeout_s
            return False
        item.t_tx_done = time.monotonic()
        item.latency["tx_stream"] = item.t_tx_done - t
        item.deadline = item.t_tx_done + self.s.item_timeout_s
        item.sent_no, item.overtaken = self._sends, False
        self._sends += 1
        return True

    def _flush(self) -> None:
        """Zeros after the last frame of a burst: blocks downstream (a flowgraph's filters, a radio's
        TX buffer) hold back their last samples until more arrive, and the frame's tail with them."""
        if self.s.flush_samples:
            try:
                self.push.send(np.zeros(self.s.flush_samples, np.complex64))
            except IQSendTimeout:
                self.counts["tx_timeout"] += 1

    def _finish(self, item: _InFlight, sem: np.ndarray, meta: protocol.DownlinkMeta, t_recv: float) -> dict:
        ex, lat = item.example, item.latency
        out, lat["task_decoders"] = decode_item(self.model, ex, sem)
        for stage in protocol.BS_STAGES:
            lat[stage] = getattr(meta, f"{stage}_ms") / 1e3
        round_trip = t_recv - item.t_tx_done
        same_host = meta.host == self.host
        # the frame can reach the base station while the push is still returning (on a busy host,
        # by a few ms): the channel then kept the client waiting for no time after its push
        lat["channel"] = max(0.0, meta.t_frame_s - item.t_tx_done) if same_host else None
        lat["downlink"] = (t_recv - meta.t_sent_s) if same_host else None
        ms = {k: (None if lat.get(k) is None else round(1e3 * lat[k], 3)) for k in protocol.STAGES}
        ms["link_round_trip"] = round(1e3 * round_trip, 3)
        ms["total"] = round(1e3 * (time.monotonic() - item.t_start), 3)
        rec = self._record(item)
        rec.update(item.info, snr_est_db=round(meta.snr_est_db, 3), snr_payload_db=round(meta.snr_payload_db, 3),
                   cfo_hz=meta.cfo_hz, latency_ms=ms)
        if self.s.csi == "feedback":
            self.csi_db = meta.snr_payload_db
        kind = outputs_for(ex.task)
        rec.update(kind.record(ex, kind.items(out)[0], self.s.images_dir, self.s.session))
        return rec

    def _record(self, item: _InFlight) -> dict:
        ex = item.example
        return {"item_id": ex.item_id, "task": ex.task, "session": self.s.session, "seq": item.seq,
                "snr_db": self.s.snr_db, "precision": self.s.precision, "attempts": item.attempts,
                **({"question": ex.question} if ex.question else {}),
                "reference": list(ex.references) if ex.references else None, **item.retrieval}

    def run(self, examples: list, write) -> dict:
        """Send every example, write one record per example with ``write(dict)``; returns counts.
        Refused at ``hello``, it writes none (no item was this base station's to answer)."""
        pending = deque(examples)
        inflight: dict[int, _InFlight] = {}
        try:
            self.handshake()
        except Refused:
            raise
        except BaseException as exc:      # interrupted, no base station, no link: nothing was sent
            self._unfinished(exc, inflight, pending, write)
            raise
        t_begin = time.monotonic()

        def done(item, sem, meta, t_recv):
            write(self._finish(item, sem, meta, t_recv))
            del inflight[item.seq]
            self.counts["items_ok"] += 1
            for other in inflight.values():     # sent before it, still unanswered: its frame was lost
                if other.sent_no < item.sent_no and not other.overtaken:
                    other.overtaken, other.deadline = True, 0.0

        try:
            self._loop(pending, inflight, write, done)
        except BaseException as exc:     # interrupted, refused, a dead link: every unfinished item gets a record
            self._unfinished(exc, inflight, pending, write)
            raise
        self.counts["run_s"] = round(time.monotonic() - t_begin, 3)
        return dict(self.counts)

    def _unfinished(self, exc: BaseException, inflight: dict, pending: deque, write) -> None:
        """An error record for every item in flight or not yet sent, saying why (``exc``)."""
        why = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"client stopped ({exc})"
        for item in inflight.values():
            write(dict(self._record(item), error=f"{why} before an answer came (in flight)"))
        for ex in pending:
            write(dict(self._record(_InFlight(ex, -1, np.zeros(0, np.complex64), {}, {}, 0.0, attempts=0)),
                       error=f"{why} before it was sent"))
        self.counts["items_unfinished"] += len(inflight) + len(pending)

    def _loop(self, pending: deque, inflight: dict, write, done) -> None:
        while pending or inflight:
            sent = False
            while pending and len(inflight) < self.s.window:
                item = self._encode(pending[0])
                inflight[item.seq] = item
                pending.popleft()
                sent = self._send(item) or sent
            if sent:
                self._flush()
            if not inflight:
                continue
            now = time.monotonic()
            wait_ms = max(0, min(100, int(1e3 * (min(i.deadline for i in inflight.values()) - now)) + 1))
            if self._receive(wait_ms, inflight, done):
                while self._receive(0, inflight, done):  # every answer already here, before judging deadlines
                    pass
            now = time.monotonic()
            overdue = sorted((i for i in inflight.values() if now > i.deadline), key=lambda i: i.sent_no)
            if any(not i.overtaken for i in overdue):
                self._hello()                          # a timeout: the base station may have restarted
            for item in overdue:
                if item.attempts > self.s.retries:
                    del inflight[item.seq]
                    self.counts["items_failed"] += 1
                    err = self._record(item)
                    err["error"] = (f"no answer from the base station after {item.attempts} attempts (each "
                                    f"resent when a later item's answer came first, or after "
                                    f"{self.s.item_timeout_s:g} s)")
                    write(err)
                    continue
                item.attempts += 1
                if item.overtaken:
                    self.counts["resent_overtaken"] += 1
                    log.info("item %s (seq %d): a later item was answered first, sending again (attempt %d)",
                             item.example.item_id, item.seq, item.attempts)
                else:
                    log.warning("item %s (seq %d): no answer within %g s, sending again (attempt %d)",
                                item.example.item_id, item.seq, self.s.item_timeout_s, item.attempts)
                self.counts["resent"] += 1
                self._send(item)
            if overdue:
                self._flush()


# -- command line ----------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_checkpoint(p)
    p.add_argument("--precision", choices=("int8", "fp32"), default="int8",
                   help="client half precision without --artifact (int8: post-training quantized in torch, the default)")
    p.add_argument("--runtime", choices=("torch", "onnxruntime", "tensorrt"), default="torch",
                   help="encode runtime (onnxruntime / tensorrt run an --artifact's graphs)")
    p.add_argument("--artifact", metavar="DIR", help="a compressed client artifact made from --checkpoint "
                   "(`mtsc-sdr compress export` / `compress apply`); its technique replaces --precision")
    p.add_argument("--tx", required=True, nargs="+", metavar="ENDPOINT",
                   help="IQ stream endpoint to bind; several: one per point, the points sent in turn")
    p.add_argument("--control", required=True, metavar="ENDPOINT", help="the base station's control link")
    p.add_argument("--session", type=int, nargs="+", default=None,
                   help="16-bit session id, one per --tx (default: random)")
    p.add_argument("--snr-db", type=float, nargs="+", default=[10.0],
                   help="SNR the client expects (its CSI for the rate choice), dB; also the label of results; "
                        "one per --tx")
    p.add_argument("--csi", choices=("configured", "feedback"), default="configured",
                   help="feedback: after the first answer use the base station's SNR estimate as CSI")
    g = p.add_argument_group("items: a data set split or your own files")
    g.add_argument("--split", choices=("train", "val", "test"), help="built-in data set split")
    g.add_argument("--tasks", default=",".join(tasks.names()), help="comma list of tasks (with --split)")
    g.add_argument("--n-per-task", type=int, default=20, help="items per task (with --split)")
    add_seed(g, 0, help="which items (with --split)")
    g.add_argument("--image", help="an image file (PNG/JPEG/...)")
    g.add_argument("--question", help="question about --image (VQA)")
    g.add_argument("--audio", help="a WAV file")
    g.add_argument("--video", help="a folder of extracted frames, or a multi-frame GIF/WebP/PNG")
    g.add_argument("--task", choices=tasks.names(), help="task for --image (default vqa with --question, else caption_image)")
    p.add_argument("--budget", type=int, default=None, help="complex symbols per item (default: the model's)")
    p.add_argument("--window", type=int, default=4, help="items in flight at once")
    p.add_argument("--item-timeout-s", type=float, default=5.0, help="resend an item after this long without answer")
    p.add_argument("--retries", type=int, default=3, help="resends per item before an error record")
    p.add_argument("--gap-samples", type=int, default=256, help="zero samples before each frame")
    p.add_argument("--flush-samples", type=int, default=2048,
                   help="zero samples after the last frame of a burst (a radio: at least its TX buffer size)")
    p.add_argument("--hello-timeout-s", type=float, default=120.0, help="how long to wait for the base station")
    p.add_argument("--kb", metavar="PATH",
                   help="the client's local, private knowledge base (a directory made by `mtsc-sdr kb add`): its "
                        "snippets join the encoder input of question items, their text never leaves the client; "
                        "needs a model trained with retrieval (context_tokens)")
    p.add_argument("--retrieval-k", type=int, metavar="K",
                   help="with --kb: snippets retrieved for each question item (default: the k the model was trained with)")
    add_threads(p)
    p.add_argument("--out", help="JSON lines file (default: stdout)")
    p.add_argument("--images", metavar="DIR", help="write reconstructed images here")
    p.add_argument("--summary", metavar="FILE", help="write the summary JSON here")
    add_security_arguments(p, binds="--tx", connects="--control", curve_binds=False)


def _points(args: argparse.Namespace) -> list[tuple[str, int, float]]:
    """(tx endpoint, session, SNR dB) of each point; ValueError naming the option that does not fit."""
    n = len(args.tx)
    if len(args.snr_db) != n:
        raise ValueError(f"--snr-db: give one per --tx ({n}), got {len(args.snr_db)}")
    if args.session is None:
        sessions = random.sample(range(1, 1 << 16), n)
    elif len(args.session) != n:
        raise ValueError(f"--session: give one per --tx ({n}), got {len(args.session)}")
    else:
        sessions = list(args.session)
    bad = [s for s in sessions if not 0 <= s < (1 << 16)]
    if bad or len(set(sessions)) != n:
        raise ValueError(f"--session: distinct ids in 0..65535, got {sessions}")
    return list(zip(args.tx, sessions, args.snr_db))


def _unsent(examples: list, session: int, snr_db: float, precision: str, why: str) -> list[dict]:
    """Error records for the items of a point that was never begun."""
    return [{"item_id": ex.item_id, "task": ex.task, "session": session, "seq": -1, "snr_db": snr_db,
             "precision": precision, "attempts": 0, **({"question": ex.question} if ex.question else {}),
             "reference": list(ex.references) if ex.references else None, "error": why} for ex in examples]


def run(args: argparse.Namespace) -> int:
    import torch

    from mtsc_sdr.compress.artifact import ArtifactMismatch, load_client

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    torch.set_num_threads(args.threads)
    checkpoint = args.checkpoint or str(shipped_model_dir())
    try:
        points = _points(args)
        security = security_from_args(args)
        for tx, _, _ in points:
            security.check_plain_bind(tx)       # before the model loads: a refused --tx fails fast
    except (ValueError, OSError) as exc:
        print(f"mtsc-sdr client: {exc}", file=sys.stderr)
        return 2
    try:
        loaded = load_client(checkpoint, args.runtime, args.artifact, args.precision, args.threads)
    except ArtifactMismatch as exc:
        print(f"mtsc-sdr client: {exc}", file=sys.stderr)
        return protocol.EXIT_REFUSED
    except ValueError as exc:
        print(f"mtsc-sdr client: {exc}", file=sys.stderr)
        return 2
    precision = loaded.precision
    artifact = None if loaded.artifact is None else {"name": loaded.artifact.name, "runtime": loaded.artifact.runtime,
                                                      "source": loaded.artifact.source_identity}
    source = item_source(args)
    try:
        items = examples_from_source(source, loaded.model.cfg)
    except (ValueError, OSError) as exc:
        print(f"mtsc-sdr client: {exc}", file=sys.stderr)
        return 2
    from mtsc_sdr.rag.errors import KnowledgeBaseError

    try:
        args.retrieval_k = retrieval_k_of(loaded.model.cfg, args.retrieval_k)
        kb = open_local_knowledge(args.kb, loaded.model.cfg)
    except (ValueError, KnowledgeBaseError) as exc:
        print(f"mtsc-sdr client: {exc}", file=sys.stderr)
        return 2
    try:
        return _run_points(args, points, loaded, items, source, precision, artifact, checkpoint, kb, security)
    finally:
        if kb is not None:
            kb.close()


def open_local_knowledge(path: Optional[str], cfg):
    """The client's local knowledge base at ``path`` (``create=False``; None: none) for a model of
    config ``cfg`` (every runtime reads its snippets: the graphs of an artifact take them as
    ``context_ids``). ValueError naming the option when the model takes no retrieved context;
    KnowledgeBaseError when nothing is there or it cannot be opened."""
    if path is None:
        return None
    from mtsc_sdr.rag.augment import open_for_model

    return open_for_model(path, cfg)


def _run_points(args: argparse.Namespace, points: list, loaded, items: list, source: dict, precision: str,
                artifact: Optional[dict], checkpoint: str, kb, security: Optional[LinkSecurity] = None) -> int:
    """Every point of :func:`run` in turn; returns the exit status."""
    identity = protocol.checkpoint_identity(checkpoint)
    out = open(args.out, "w") if args.out else sys.stdout
    summary_file = open(args.summary, "w") if args.summary else None

    def write(rec: dict) -> None:
        out.write(json.dumps(rec) + "\n")
        out.flush()

    status = 0
    stopped = None                    # why the points not yet begun will not be
    try:
        for tx, session, snr_db in points:
            if stopped is not None:
                for rec in _unsent(items, session, snr_db, precision, f"{stopped} before it was sent"):
                    write(rec)
                continue
            settings = ClientSettings(session=session, snr_db=snr_db, precision=precision, csi=args.csi,
                                      budget=args.budget, window=args.window, item_timeout_s=args.item_timeout_s,
                                      retries=args.retries, gap_samples=args.gap_samples,
                                      flush_samples=args.flush_samples, hello_timeout_s=args.hello_timeout_s,
                                      images_dir=args.images, items=source, retrieval_k=args.retrieval_k)
            client = None
            try:
                client = Client(loaded.model, identity, tx, args.control, settings, encoder=loaded.encoder,
                                artifact=artifact, knowledge=kb, security=security)
                counts = client.run(items, write)
                status = max(status, 1 if counts.get("items_failed") else 0)
            except Refused as exc:
                print(f"mtsc-sdr client: {exc}", file=sys.stderr)
                status, stopped = protocol.EXIT_REFUSED, "refused by the base station"
            except TimeoutError as exc:      # this point's link or the base station: the next point may work
                print(f"mtsc-sdr client: session {session}: {exc}", file=sys.stderr)
                status = max(status, 1)
            except KeyboardInterrupt:
                print("mtsc-sdr client: interrupted; unfinished items have error records", file=sys.stderr)
                status, stopped = 130, "interrupted"
                if client is None:          # before the point began: none of its items was sent
                    for rec in _unsent(items, session, snr_db, precision, "interrupted before it was sent"):
                        write(rec)
            finally:
                if client is not None:
                    client.close()
                    summary = {"session": session, "snr_db": snr_db, "precision": precision,
                               "runtime": loaded.encoder.runtime,
                               "items": len(items), **dict(client.counts), "control": client.control.stats.as_dict(),
                               "knowledge": {"local": args.kb, "retrieval_k": args.retrieval_k,
                                             "global": client.sends_queries},
                               "weight_bytes": loaded.weight_bytes,
                               "peak_rss_mb": peak_rss_mb()}
                    print(json.dumps(summary), file=sys.stderr, flush=True)
                    if summary_file is not None:
                        summary_file.write(json.dumps(summary) + "\n")
                        summary_file.flush()
    finally:
        if out is not sys.stdout:
            out.close()
        if summary_file is not None:
            summary_file.close()
    return status
