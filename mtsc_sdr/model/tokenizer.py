"""Text tokenizers: the project's own word-level tokenizer, or a local Hugging Face one.

The default tokenizer is trained with `tokenizers` on the built-in corpus (captions, questions
and answers of the synthetic world's *train* split) and saved as ``tokenizer.json`` beside the
model. Special tokens: ``<pad>`` 0, ``<s>`` 1, ``</s>`` 2, ``<unk>`` 3 (BART's order, so the
ids mean the same with BART-base's tokenizer). The task is not a token: the model gives every
task a learned embedding, so an external tokenizer works unchanged.

A tokenizer's *fingerprint* is a hash of its vocabulary (token -> id); checkpoints store it and
refuse a tokenizer with a different one.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Iterable, Optional

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from mtsc_sdr.data import SyntheticWorld

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<s>", "</s>", "<unk>")


def vocab_fingerprint(vocab: dict[str, int]) -> str:
    """SHA-256 (first 16 hex digits) of the vocabulary sorted by id: same tokens, same ids."""
    items = sorted(vocab.items(), key=lambda kv: (kv[1], kv[0]))
    return hashlib.sha256(json.dumps(items, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def corpus(n_scenes: int = 2000, n_audio: int = 500, n_video: int = 500, seed: int = 0) -> list[str]:
    """Sentences of the built-in train split: every caption, question and answer of the first
    ``n_scenes`` scenes, ``n_audio`` audio clips and ``n_video`` videos (``SyntheticWorld(seed)``)."""
    world = SyntheticWorld(seed=seed)
    out: list[str] = []
    for s in world.scenes("train", n_scenes):
        out += s.captions
        for qa in s.qa:
            out += [qa.question, *(qa.answers or (qa.answer,))]
    for a in world.audios("train", n_audio):
        out += a.captions
    for v in world.videos("train", n_video):
        out += v.captions
    return out


class TextTokenizer:
    """Encode / decode text for the model, whichever tokenizer backs it.

    Wraps either a ``tokenizers.Tokenizer`` (``kind == "trained"``) or a transformers tokenizer
    loaded from a local directory (``kind == "hf"``). Ids are Python ints; lengths in tokens.
    """

    def __init__(self, backend, kind: str):
        self.backend = backend
        self.kind = kind
        if kind == "trained":
            vocab = backend.get_vocab()
            self.pad_id, self.bos_id = vocab["<pad>"], vocab["<s>"]
            self.eos_id, self.unk_id = vocab["</s>"], vocab["<unk>"]
        else:
            self.pad_id, self.bos_id = backend.pad_token_id, backend.bos_token_id
            self.eos_id, self.unk_id = backend.eos_token_id, backend.unk_token_id
            missing = [n for n, v in (("pad", self.pad_id), ("bos", self.bos_id), ("eos", self.eos_id))
                       if v is None]
            if missing:
                raise ValueError(f"tokenizer has no {', '.join(missing)} token; a BART tokenizer has all")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def train(cls, texts: Optional[Iterable[str]] = None, min_frequency: int = 1) -> "TextTokenizer":
        """Train a word-level tokenizer (lower-cased, punctuation split off) on ``texts``
        (default: :func:`corpus`)."""
        tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words, fixes " ," " ?"
        trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS), min_frequency=min_frequency)
        tok.train_from_iterator(list(corpus() if texts is None else texts), trainer=trainer)
        return cls(tok, "trained")

    def with_words(self, words: Iterable[str]) -> "TextTokenizer":
        """This tokenizer with ``words`` it lacks appended to its vocabulary: every existing
        token keeps its id, each new word gets the next free one (so a model's embedding rows for
        the old tokens stay valid, see :func:`mtsc_sdr.model.checkpoint.grow_vocabulary`). Only
        for the project's own word-level tokenizer (a Hugging Face one has subwords instead)."""
        if self.kind != "trained":
            raise ValueError("only the project's own word-level tokenizer can be extended with words")
        vocab = self.get_vocab()
        nxt = self.vocab_size
        for w in words:
            w = w.strip().lower()
            if w and w not in vocab:
                vocab[w], nxt = nxt, nxt + 1
        tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
        tok.normalizer, tok.pre_tokenizer, tok.decoder = (self.backend.normalizer, self.backend.pre_tokenizer,
                                                          self.backend.decoder)
        return TextTokenizer(tok, "trained")

    @classmethod
    def load(cls, path: str | Path) -> "TextTokenizer":
        """Load ``tokenizer.json`` (a file, or a directory holding one) saved by :meth:`save`."""
        path = Path(path)
        file = path / "tokenizer.json" if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(f"no tokenizer.json at {file}")
        try:
            tok = Tokenizer.from_file(str(file))
        except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception for any malformed file
            raise ValueError(f"{file} is not a readable tokenizer file: {exc}") from None
        missing = [t for t in SPECIAL_TOKENS if tok.token_to_id(t) is None]
        if missing:
            raise ValueError(f"{file} lacks the special token(s) {missing}")
        return cls(tok, "trained")

    @classmethod
    def from_hf_dir(cls, path: str | Path, **special: str) -> "TextTokenizer":
        """A transformers tokenizer from a *local* checkpoint directory (never the hub);
        ``special`` sets special tokens it names otherwise (BERT: ``bos_token="[CLS]"``)."""
        from transformers import AutoTokenizer  # seconds to import; only for a local HF tokenizer

        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"--lam {path}: not a directory")
        return cls(AutoTokenizer.from_pretrained(str(path), local_files_only=True, **special), "hf")

    def save(self, directory: str | Path) -> None:
        """Write ``tokenizer.json`` (trained) or the transformers tokenizer files (hf) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.kind == "trained":
            self.backend.save(str(directory / "tokenizer.json"))
        else:
            self.backend.save_pretrained(str(directory))

    # -- properties ---------------------------------------------------------------------------
    def get_vocab(self) -> dict[str, int]:
        """token -> id."""
        return dict(self.backend.get_vocab())

    @property
    def vocab_size(self) -> int:
        """Rows the embedding table needs (max id + 1)."""
        return max(self.get_vocab().values()) + 1

    @property
    def fingerprint(self) -> str:
        """:func:`vocab_fingerprint` of this tokenizer's vocabulary."""
        return vocab_fingerprint(self.get_vocab())

    # -- encode / decode ----------------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        if self.kind == "trained":
            return list(self.backend.encode(text).ids)
        return list(self.backend(text, add_special_tokens=False)["input_ids"])

    def encode_question(self, text: str, max_len: int) -> list[int]:
        """Question ids (no specials), truncated to ``max_len`` tokens with a ``UserWarning``."""
        ids = self._ids(text)
        if len(ids) > max_len:
            warnings.warn(f"question of {len(ids)} tokens truncated to the model's limit of "
                          f"{max_len}: {text[:60]!r}", UserWarning, stacklevel=3)
            ids = ids[:max_len]
        return ids

    def encode_target(self, text: str, max_len: int) -> list[int]:
        """Target ids ``<s> ... </s>`` for teacher forcing, at most ``max_len + 1`` ids (the
        decoder sees ids[:-1], predicts ids[1:]); longer targets are cut before ``</s>``."""
        ids = self._ids(text)[:max_len - 1]
        return [self.bos_id, *ids, self.eos_id]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; stops at the first ``</s>``, drops specials."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            out.append(i)
        if self.kind == "trained":
            return self.backend.decode(out, skip_special_tokens=True)
        return self.backend.decode(out, skip_special_tokens=True).strip()
