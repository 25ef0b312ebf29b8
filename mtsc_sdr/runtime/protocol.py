"""What the client and the base station say to each other, besides the IQ samples.

Uplink (client -> base station):

* the IQ samples: one PHY frame per item (:mod:`mtsc_sdr.phy`), header fields ``session_id`` (the
  client's 16-bit session), ``seq`` (the client's item number mod 2^16; a resent item keeps its
  seq), ``task_id`` (:attr:`mtsc_sdr.tasks.TaskSpec.id`), ``rate_idx`` (JSC rate) and
  ``payload_len`` (complex symbols, ``n_tokens * rate_table[rate_idx]``);
* on the control link (:class:`mtsc_sdr.link.MessageClient`, session = the same 16-bit id):
  ``hello`` with meta ``{"checkpoint": identity, "client": {"host", "precision", "snr_db",
  "items"}}`` before the first frame and again after a timeout (``items``: where the client's
  items come from, :func:`mtsc_sdr.runtime.client.item_source`; its k-th item goes out with seq
  k mod 2^16, so a recording of the frames can be decoded again, :mod:`mtsc_sdr.runtime.replay`);
  ``bye`` at the end;
* ``query`` (retrieval-augmented generation, only to a base station whose ``welcome`` announced a
  global knowledge base, and only from a client whose embedder has the announced identity):
  tensor ``embedding`` float16 (dim,), the L2-normalized embedding of the item's question, meta
  ``{"seq": seq}`` (the item's frame seq), sent just before each send of the frame of an item
  with a question (:func:`query_message`). The question's text never travels, nor do the
  client's own (local) snippets: only the symbols its encoder makes of them. The base station
  searches its global base with the vector and gives the LAM decoder what it finds; an item
  whose query is lost or late is decoded without global context, a malformed query
  (:func:`parse_query`) is counted and dropped.

Downlink (base station -> client, control link):

* ``welcome`` (meta ``{"checkpoint": identity}``, plus ``"knowledge": {"embedder": name,
  "sha256": ..., "dim": ...}`` when the base station has a global knowledge base: the identity of
  the embedder its base was built with, :func:`knowledge_announcement`) or ``refused`` (meta ``{"reason": text,
  "differs": {field: [client, base station]}}``) answering ``hello``;
* ``semantics``: one per received item, tensor ``semantics`` float32 (Q, d_model) and meta
  :class:`DownlinkMeta` fields.

Fine-tuning (:mod:`mtsc_sdr.finetune`; a base station started for it keeps each frame's graph):
the frames and ``semantics`` as above, one batch of items at a time, then

* client -> base station ``gradients``: tensor ``grads`` float32 (B, Q, d_model), dL/d(semantics)
  of the batch's items, meta ``{"seqs": [...]}`` (their frame seqs, in that order); ``seqs``
  empty: the batch is given up (a frame or an answer was lost), forget it;
* base station -> client ``payload_gradients``: tensor ``grads`` complex64 (sum of n_i,), dL/dz of
  each item's received payload, concatenated, meta ``{"seqs": [...], "lengths": [n_i, ...]}``;
  or meta ``{"seqs": [...], "error": text}`` when it could not (no kept forward for a seq).

The checkpoint identity (:func:`checkpoint_identity`) is what both halves must agree on: format
version, model/backbone configuration hash, tokenizer fingerprint and a hash of the weights file.
"""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass, fields
from typing import Any, Optional

import numpy as np

from mtsc_sdr.model import checkpoint

#: Control-link message kinds.
HELLO, WELCOME, REFUSED, SEMANTICS, BYE = "hello", "welcome", "refused", "semantics", "bye"
#: Fine-tuning's control-link message kinds (see the module docstring).
GRADIENTS, PAYLOAD_GRADIENTS = "gradients", "payload_gradients"
#: Retrieval's control-link message kind: a question's embedding for the global knowledge base.
QUERY = "query"
#: How far a received query embedding's L2 norm may be from 1 (float16 rounding is ~1e-3).
QUERY_NORM_TOLERANCE = 0.01

#: Per-item latency stages, in the order an item passes them (milliseconds in results). A client
#: on a graph runtime (:mod:`mtsc_sdr.compress.runtimes`) times its encode as one stage,
#: ``encode_graph``, in place of the first three.
STAGES = ("modality_encoders", "lam_encoder", "jsc_encoder", "encode_graph", "framing", "tx_stream", "channel", "rx_sync",
          "jsc_decoder", "lam_decoder", "downlink", "task_decoders")
#: The encode stages a torch client times, and the one a graph runtime times in their place.
TORCH_ENCODE_STAGES = ("modality_encoders", "lam_encoder", "jsc_encoder")
GRAPH_ENCODE_STAGE = "encode_graph"


def stages(runtime: str = "torch") -> tuple[str, ...]:
    """The stages an item of a client on ``runtime`` has a time for: :data:`STAGES` less the
    encode stages of the other kind of runtime."""
    other = (GRAPH_ENCODE_STAGE,) if runtime == "torch" else TORCH_ENCODE_STAGES
    return tuple(s for s in STAGES if s not in other)


#: Stages timed by the base station and sent back in :class:`DownlinkMeta`.
BS_STAGES = ("rx_sync", "jsc_decoder", "lam_decoder")

#: Exit status of a client the base station refused (checkpoint mismatch).
EXIT_REFUSED = 4


#: The checkpoint identity (:func:`mtsc_sdr.model.checkpoint.identity`).
checkpoint_identity = checkpoint.identity


def identity_differences(client: Any, base_station: dict[str, Any]) -> dict[str, list]:
    """``{field: [client's, base station's]}`` for every field that differs (all of them when the
    client sent no identity at all)."""
    client = client if isinstance(client, dict) else {}
    return {k: [client.get(k), v] for k, v in base_station.items() if client.get(k) != v}


def describe_differences(differs: dict[str, list]) -> str:
    """``"weights: client 1a2b.., base station 3c4d.."; ...`` for a refusal message."""
    return "; ".join(f"{k}: client {a!r}, base station {b!r}" for k, (a, b) in differs.items())


def knowledge_announcement(embedder_identity: dict[str, Any]) -> dict[str, Any]:
    """``welcome``'s ``knowledge`` meta: ``{"embedder", "sha256", "dim"}`` of an embedder identity
    (:func:`mtsc_sdr.rag.embedder.identity`)."""
    return {"embedder": str(embedder_identity["name"]), "sha256": str(embedder_identity["sha256"]),
            "dim": int(embedder_identity["dim"])}


def same_embedder(announced: Any, embedder_identity: dict[str, Any]) -> bool:
    """Whether a ``welcome``'s ``knowledge`` meta names the embedder of ``embedder_identity``
    (only then are the client's query vectors comparable with the base station's documents)."""
    return isinstance(announced, dict) and announced == knowledge_announcement(embedder_identity)


def query_message(seq: int, embedding: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Tensors and meta of a ``query``: ``embedding`` float (dim,) unit vector -> float16 on the wire."""
    return {"embedding": np.asarray(embedding, np.float32).astype(np.float16)}, {"seq": int(seq)}


def parse_query(tensors: Any, meta: Any, dim: int) -> tuple[int, np.ndarray]:
    """A received ``query``'s (seq, embedding float32 (dim,)); ValueError naming what is wrong:
    meta without an int ``seq`` in 0..65535, tensors other than one ``embedding``, a dtype other
    than float16, a shape other than (dim,), values not finite, or a norm off 1 by more than
    :data:`QUERY_NORM_TOLERANCE`."""
    seq = meta.get("seq") if isinstance(meta, dict) else None
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < (1 << 16):
        raise ValueError(f"query meta 'seq' must be a frame seq (int in 0..65535), got {seq!r}")
    if not isinstance(tensors, dict) or set(tensors) != {"embedding"}:
        got = sorted(tensors) if isinstance(tensors, dict) else type(tensors).__name__
        raise ValueError(f"a query carries one tensor, 'embedding'; got {got}")
    emb = tensors["embedding"]
    if emb.dtype != np.float16 or emb.shape != (dim,):
        raise ValueError(f"query 'embedding' must be float16 ({dim},), got {emb.dtype} {emb.shape}")
    vec = emb.astype(np.float32)
    if not np.isfinite(vec).all():
        raise ValueError("query 'embedding' holds NaN or infinity")
    norm = float(np.linalg.norm(vec))
    if abs(norm - 1.0) > QUERY_NORM_TOLERANCE:
        raise ValueError(f"query 'embedding' must be L2-normalized, its norm is {norm:.4g}")
    return seq, vec


def host_id() -> str:
    """This host's name: base-station and client timestamps (``time.monotonic``) are comparable
    only when both run on the same host."""
    return socket.gethostname()


@dataclass
class DownlinkMeta:
    """Meta of a ``semantics`` message (units in the names; times in ms, ``t_*`` are the base
    station's ``time.monotonic()`` in seconds, comparable with the client's on the same host).

    Attributes:
        seq: the item's frame seq. task_id, rate_idx, n_tokens: as received.
        snr_est_db: the base station's SNR estimate of the frame (Es/N0 per payload symbol on the
            wire, :mod:`mtsc_sdr.phy.rx`).
        snr_payload_db: SNR of the equalised payload symbols the JSC decoder got
            (``-10 log10(mean noise_var)``), which is what it is conditioned on.
        cfo_hz: estimated CFO (None when the rate is unknown).
        rx_sync_ms, jsc_decoder_ms, lam_decoder_ms: base-station stage times.
        t_frame_s: when the chunk completing the frame arrived; t_sent_s: just before the reply.
        host: :func:`host_id` of the base station.
    """

    seq: int
    task_id: int
    rate_idx: int
    n_tokens: int
    snr_est_db: float
    snr_payload_db: float
    cfo_hz: Optional[float]
    rx_sync_ms: float
    jsc_decoder_ms: float
    lam_decoder_ms: float
    t_frame_s: float
    t_sent_s: float
    host: str

    def to_meta(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_meta(cls, meta: Any) -> "DownlinkMeta":
        """Parse a received meta; ValueError naming the first missing or mistyped field."""
        if not isinstance(meta, dict):
            raise ValueError("downlink meta is not an object")
        values = {}
        for f in fields(cls):
            if f.name not in meta:
                raise ValueError(f"downlink meta lacks {f.name!r}")
            v = meta[f.name]
            if f.name in ("seq", "task_id", "rate_idx", "n_tokens"):
                ok = isinstance(v, int) and not isinstance(v, bool)
            elif f.name == "host":
                ok = isinstance(v, str)
            elif f.name == "cfo_hz":
                ok = v is None or isinstance(v, (int, float))
            else:
                ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            if not ok:
                raise ValueError(f"downlink meta field {f.name!r} has the wrong type ({type(v).__name__})")
            values[f.name] = v
        return cls(**values)
