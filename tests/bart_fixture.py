"""A tiny local Hugging Face BART (1 + 1 layers, 48 wide, 4 heads) saved with ``save_pretrained``
beside a fast tokenizer made from the project's trained one: what ``--lam PATH`` reads, so the
suite never needs BART-base."""

from __future__ import annotations

from pathlib import Path


def write_bart(directory: Path, tok) -> Path:
    """Save a random tiny ``BartModel`` and ``tok`` (a :class:`~mtsc_sdr.model.TextTokenizer`) as
    a Hugging Face checkpoint directory; returns ``directory``."""
    from transformers import BartConfig, BartModel, PreTrainedTokenizerFast

    BartModel(BartConfig(vocab_size=tok.vocab_size + 5, d_model=48, encoder_layers=1, decoder_layers=1,
                         encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                         decoder_ffn_dim=64, max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
                         eos_token_id=2)).save_pretrained(directory)
    PreTrainedTokenizerFast(tokenizer_object=tok.backend, pad_token="<pad>", bos_token="<s>",
                            eos_token="</s>", unk_token="<unk>").save_pretrained(directory)
    return directory
