"""Output heads: what each output kind (:attr:`mtsc_sdr.tasks.TaskSpec.output`) does on the client
with the task semantics float32 (B, Q, d) the base station returns -- build its decoder, give the
training loss, decode outputs.

A head is registered under its kind's name (:func:`register_head`); :class:`~.split.ClientModel`
builds the decoder of every kind a registered task uses and keeps it as the attribute
:attr:`OutputHead.attr` (which is also its checkpoint key prefix, e.g. ``client.text_decoder.``).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from mtsc_sdr.tasks import Registry, TaskSpec

from .config import ModelConfig
from .decoders import ImageDecoder, TextDecoder


class OutputHead:
    """One output kind's client-side decoder. Subclasses set :attr:`attr` and write the methods.

    ``client`` is the :class:`~.split.ClientModel` (its tokenizer, device and decoder modules).
    """

    #: the ClientModel attribute (and checkpoint key prefix) of this kind's decoder module
    attr: str = ""

    def build(self, cfg: ModelConfig, lam_encoder, tokenizer) -> nn.Module:
        """The decoder module (built once per model, shared by every task of the kind)."""
        raise NotImplementedError

    def loss(self, client, spec: TaskSpec, semantics: torch.Tensor, batch: dict) -> torch.Tensor:
        """Scalar training loss of semantics (B, Q, d) against the batch's targets."""
        raise NotImplementedError

    def decode(self, client, spec: TaskSpec, semantics: torch.Tensor, questions: Optional[list[str]],
               max_len: Optional[int], contexts: Optional[list[str]] = None):
        """Outputs of a batch: what :meth:`~.split.ClientModel.decode` returns (``contexts``: the
        items' local knowledge snippets, for a model that takes them)."""
        raise NotImplementedError


class TextHead(OutputHead):
    """``text``: answers and captions from the small autoregressive :class:`~.decoders.TextDecoder`.

    Loss: token cross-entropy with teacher forcing on each example's first reference (with a
    question, the question -- and in a model with retrieval inputs the local knowledge snippets
    after it -- is the decoder's prompt and is not scored). Decode: greedy, list[str]."""

    attr = "text_decoder"

    def build(self, cfg, lam_encoder, tokenizer):
        return TextDecoder(cfg, lam_encoder.embed_tokens, tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id)

    def loss(self, client, spec, semantics, batch):
        ids, scored = client.target_ids([refs[0] for refs in batch["references"]],
                                        batch["question"] if spec.question else None,
                                        batch.get("local_context") if spec.question else None)
        logits = client.text_decoder(ids[:, :-1], semantics)
        labels = ids[:, 1:].masked_fill(~scored, -100)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)

    def decode(self, client, spec, semantics, questions, max_len, contexts=None):
        if spec.question and questions is None:
            raise ValueError(f"decoding {spec.name} answers needs the questions (the text decoder's prompt)")
        ids = client.text_decoder.generate(semantics, max_len, client.prompt_ids(spec.name, questions, contexts))
        return [client.tokenizer.decode(row.tolist()) for row in ids]


class ImageHead(OutputHead):
    """``image``: reconstructions float32 (B, 3, H, W) in [0, 1] from :class:`~.decoders.ImageDecoder`.

    With the analog image code (:mod:`.analog`) the decoded image is the client's synthesis of the
    server's LMMSE estimate (:meth:`~.split.ClientModel.analog_image`), clipped to [0, 1]; the
    image decoder and the loss remain for training, which sends the task on the token path
    (:meth:`~.split.MTSCModel.loss`).

    Loss: ``log10(MSE)`` = -PSNR/10 dB of the batch against ``target_image`` (the log keeps its
    gradient at the scale of the cross-entropies however small the MSE gets)."""

    attr = "image_decoder"

    def build(self, cfg, lam_encoder, tokenizer):
        return ImageDecoder(cfg)

    def loss(self, client, spec, semantics, batch):
        out = client.image_decoder(semantics)        # training: the token path (MTSCModel.loss)
        mse = F.mse_loss(out, batch["target_image"].to(client.device))
        return torch.log10(mse + 1e-10)

    def decode(self, client, spec, semantics, questions, max_len, contexts=None):
        if client.analog is not None:
            return client.analog_image(semantics).clamp(0.0, 1.0)
        return client.image_decoder(semantics)


_HEADS: Registry[OutputHead] = Registry("output kind")


def register_head(kind: str, head: OutputHead) -> OutputHead:
    """Register the head of output kind ``kind`` (a new name; its ``attr`` must be new too)."""
    if any(h.attr == head.attr for h in _HEADS.values()):
        raise ValueError(f"decoder attribute {head.attr!r} of output kind {kind!r} is taken")
    return _HEADS.register(kind, head)


#: Remove the head of a kind (tests that register a kind of their own).
unregister_head = _HEADS.unregister
#: The head of an output kind; ValueError listing the kinds there are.
head_for = _HEADS.get


register_head("text", TextHead())
register_head("image", ImageHead())

__all__ = ["ImageHead", "OutputHead", "TextHead", "head_for", "register_head", "unregister_head"]
