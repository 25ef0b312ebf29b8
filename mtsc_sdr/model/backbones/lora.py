"""LoRA for a backbone's pre-trained LAM halves, shared by every backbone that tunes with adapters
(:mod:`.minilm`, :mod:`.bart` with a local pre-trained BART).

* :func:`inject`: HF ``peft`` LoRA adapters (rank ``rank``, scale ``alpha / rank``, no dropout)
  into the linear layers whose last name component is one of a backbone's ``ADAPTER_TARGETS``;
  every pre-trained weight is then frozen, only the adapters (and the modules ``train`` names,
  e.g. minilm's new cross-attention) train. An adapter's ``lora_B`` starts at zero, so a freshly
  injected half computes what the pre-trained one did.
* :func:`frozen_keys`: the state-dict keys of a LoRA-tuned half that hold frozen base weights.
* :func:`merge`: each adapter folded into the weight it adapts, the ``peft`` wrapper replaced by
  the plain layer (before int8 quantization of the client).

Adapted layers keep their name: a wrapped ``q_proj`` holds ``q_proj.base_layer.weight`` (the
frozen weight) and ``q_proj.lora_A.default.weight`` (r, in) / ``q_proj.lora_B.default.weight``
(out, r); the delta added to the layer's output is ``(alpha / r) * x @ A.T @ B.T``.
"""

from __future__ import annotations

from typing import Iterable, Optional

from torch import nn

# peft is imported inside the functions: importing a backbone module must not pay for it when
# no adapters are used (the project's own BART).


def _trains(name: str, train: Iterable[str]) -> bool:
    """Whether a parameter / state-dict key stays trainable under LoRA: an adapter, or a module
    ``train`` names (substrings of the key)."""
    return "lora_" in name or any(t in name for t in train)


def inject(module: nn.Module, targets: Iterable[str], rank: int, alpha: float,
           exclude: Optional[str] = None, train: Iterable[str] = ()) -> None:
    """LoRA adapters into ``module`` in place; then only the adapters and ``train`` train.

    Args:
        module: a LAM half's pre-trained model (a transformers ``PreTrainedModel``).
        targets: last name components of the linear layers to adapt (``ADAPTER_TARGETS``).
        rank, alpha: LoRA rank r and alpha (the delta is scaled by alpha / r).
        exclude: regex on module names that get no adapter (None: none excluded).
        train: substrings of parameter names that stay trainable beside the adapters (new,
            randomly initialised modules); everything else is frozen.
    """
    from peft import LoraConfig, inject_adapter_in_model

    conf = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=list(targets),
                      exclude_modules=exclude)
    inject_adapter_in_model(conf, module)
    train = tuple(train)
    for name, p in module.named_parameters():
        p.requires_grad_(_trains(name, train))


def frozen_keys(module: nn.Module, train: Iterable[str] = ()) -> set[str]:
    """State-dict keys of a LoRA-tuned ``module`` that hold frozen base weights: neither adapters
    nor the modules ``train`` names (as given to :func:`inject`)."""
    train = tuple(train)
    return {k for k in module.state_dict() if not _trains(k, train)}


def merge(module: nn.Module) -> None:
    """Replace every LoRA layer under ``module`` by its base layer with the delta merged in."""
    from peft.tuners.lora import LoraLayer

    for name, child in list(module.named_children()):
        if isinstance(child, LoraLayer):
            child.merge()
            setattr(module, name, child.get_base_layer())
        else:
            merge(child)
