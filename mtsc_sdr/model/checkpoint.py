"""Checkpoints: a directory with ``model.safetensors``, ``config.json`` and the tokenizer.

``config.json``::

    {"format": "mtsc-sdr-model", "version": 1,
     "model": {...ModelConfig...},
     "backbone": {"kind": "bart", "config": {...the backbone's config, e.g. BartConfig.to_dict()...}},
     "tokenizer": {"kind": "trained" | "hf", "fingerprint": "...", "vocab_size": N},
     "tied": {"alias": "stored name", ...}}

Checkpoints written before backbones were recorded by kind have ``"bart": {...BartConfig...}``
instead of ``"backbone"``; :func:`read_config` reads them as ``{"kind": "bart", "config": ...}``,
nothing needs converting, and their identity (:func:`identity_config`) is what it was.

A backbone with packaged pre-trained weights (minilm) frozen under LoRA stores only what training
changed: ``model.safetensors`` leaves out the frozen base weights (:meth:`MTSCModel.base_keys`),
and ``backbone.config`` records the base's sha256; :func:`load` rebuilds the base from the
package and refuses one with another hash.

No pickle anywhere: weights are safetensors, the rest JSON. Tied tensors (the shared token
embedding used by the LAM encoder and the text decoder) are stored once under one name.
:func:`load` refuses anything that does not match exactly with :class:`CheckpointMismatch`,
whose message names every missing / unexpected key, shape or dtype difference, config field or
tokenizer fingerprint that differs.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from mtsc_sdr.config import ConfigError, to_dict

from . import backbones
from .config import ModelConfig
from .tokenizer import TextTokenizer

# torch, safetensors' torch half and the model's modules (which import torch) are imported inside
# save / load: reading a checkpoint's config (``read_config``, ``default_checkpoint_dir``) is on
# the orchestrators' fast path (`mtsc-sdr run`, `replay`) and must not pay for torch.

FORMAT = "mtsc-sdr-model"
VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


#: Where the release models the project ships live (``models/default``, ``models/minilm``), each
#: with a ``MODEL_CARD.md``; ``MTSC_MODELS`` points elsewhere.
SHIPPED_MODELS = Path(__file__).resolve().parents[2] / "models"
#: weight dtypes a release may store a float32 parameter in (read back as float32)
HALF_DTYPES = ("float16", "bfloat16")


def default_checkpoint_dir(preset: str = "default") -> Path:
    """Where ``mtsc-sdr train`` writes a preset's model: ``$MTSC_CACHE/models/<preset>`` or
    ``results/models/<preset>`` (never the shipped models)."""
    root = os.environ.get("MTSC_CACHE")
    return (Path(root) if root else Path("results")) / "models" / preset


def shipped_model_dir(name: str = "default") -> Path:
    """A shipped release model: ``$MTSC_MODELS/<name>`` or ``models/<name>`` of this checkout.
    ``shipped_model_dir()`` is the checkpoint every command loads unless told otherwise."""
    root = os.environ.get("MTSC_MODELS")
    return (Path(root) if root else SHIPPED_MODELS) / name


class CheckpointMismatch(ValueError):
    """A checkpoint does not fit the model or tokenizer it is loaded with; the message says what."""


def _dedup(state: dict) -> tuple[dict, dict]:
    """(tensors to store, alias -> stored name) for tensors sharing storage (first name wins)."""
    keep, tied, seen = {}, {}, {}
    for name in sorted(state):
        t = state[name]
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype)
        if key in seen:
            tied[name] = seen[key]
        else:
            seen[key] = name
            keep[name] = t
    return keep, tied


def _stored(model) -> tuple[dict, dict]:
    """:func:`_dedup` of the model's state dict, less the frozen packaged base weights."""
    keep, tied = _dedup(model.state_dict())
    base = model.base_keys()
    return {k: v for k, v in keep.items() if k not in base}, tied


def save(model, directory: str | Path, half: bool = False) -> Path:
    """Write ``model`` (an :class:`~mtsc_sdr.model.split.MTSCModel`) to ``directory``; returns it.

    ``half``: store float32 tensors as float16 (a release's size; :func:`load` reads them back as
    float32, so the model is the rounded one, which its card evaluates)."""
    import torch
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    keep, tied = _stored(model)
    cast = (lambda t: t.half() if half and t.dtype == torch.float32 else t)
    save_file({k: cast(v.detach()).contiguous().cpu() for k, v in keep.items()}, str(directory / WEIGHTS),
              metadata={"format": FORMAT, "version": str(VERSION)})
    tok = model.tokenizer
    meta = {"format": FORMAT, "version": VERSION, "model": to_dict(model.cfg),
            "backbone": {"kind": model.backbone_kind, "config": model.backbone_config},
            "tokenizer": {"kind": tok.kind, "fingerprint": tok.fingerprint, "vocab_size": tok.vocab_size},
            "tied": tied}
    (directory / CONFIG).write_text(json.dumps(meta, indent=2, sort_keys=True))
    tok.save(directory)
    return directory


def _list(names, limit: int = 8) -> str:
    names = sorted(names)
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def read_config(directory: str | Path) -> dict:
    """Parsed, format-checked ``config.json`` of a checkpoint directory."""
    file = Path(directory) / CONFIG
    if not file.is_file():
        raise CheckpointMismatch(f"{directory}: no {CONFIG} (not an mtsc-sdr checkpoint)")
    try:
        meta = json.loads(file.read_bytes())
    except (ValueError, RecursionError) as exc:     # not JSON, not UTF-8, nested too deep
        raise CheckpointMismatch(f"{file}: not valid JSON ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointMismatch(f"{file}: format is {meta.get('format') if isinstance(meta, dict) else None!r}, "
                                 f"expected {FORMAT!r}")
    if meta.get("version") != VERSION:
        raise CheckpointMismatch(f"{file}: version {meta.get('version')!r}, this code reads version {VERSION}")
    if "backbone" not in meta and "bart" in meta:      # written before backbones were recorded by kind
        meta["backbone"] = {"kind": "bart", "config": meta.pop("bart")}
    for key in ("model", "backbone", "tokenizer", "tied"):
        if key not in meta:
            raise CheckpointMismatch(f"{file}: missing field {key!r}")
    for key in ("model", "tokenizer", "tied"):
        if not isinstance(meta[key], dict):
            raise CheckpointMismatch(f"{file}: {key}: expected an object, got {type(meta[key]).__name__}")
    backbone = meta["backbone"]
    if not isinstance(backbone, dict) or not isinstance(backbone.get("config"), dict):
        raise CheckpointMismatch(f"{file}: backbone.config: expected an object with the backbone's config")
    if backbone.get("kind") not in backbones.KINDS:
        raise CheckpointMismatch(f"{file}: backbone.kind: {backbone.get('kind')!r} is not a known backbone; "
                                 f"backbones are {', '.join(sorted(backbones.KINDS))}")
    _check_sizes(file, backbone)
    return meta


#: Per backbone kind: where its transformer config sits in ``backbone.config`` and the fields that
#: size it. Every checkpoint this code writes states them; a config without them would be built
#: with the transformers library's defaults (bart-large, bert-base: hundreds of MB to allocate
#: for a file that is not one of ours), so it is refused instead.
SIZE_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "bart": ((), ("vocab_size", "d_model", "encoder_layers", "decoder_layers", "encoder_ffn_dim", "decoder_ffn_dim",
                  "encoder_attention_heads", "decoder_attention_heads", "max_position_embeddings")),
    "minilm": (("bert",), ("vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size",
                           "num_attention_heads", "max_position_embeddings")),
}


def _check_sizes(file: Path, backbone: dict) -> None:
    """CheckpointMismatch unless the backbone's config states every size field as an integer >= 1."""
    path, fields = SIZE_FIELDS.get(backbone["kind"], ((), ()))
    config = backbone["config"]
    for key in path:
        config = config.get(key) if isinstance(config, dict) else None
    where = ".".join(("backbone.config",) + path)
    if not isinstance(config, dict):
        raise CheckpointMismatch(f"{file}: {where}: expected an object")
    for name in fields:
        value = config.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise CheckpointMismatch(f"{file}: {where}.{name}: expected an integer >= 1 (the size of the "
                                     f"backbone), got {value!r}")


def identity_config(meta: dict) -> dict[str, Any]:
    """What a checkpoint's identity hashes of its :func:`read_config` meta: the model config as
    stored and the backbone's config under its kind, ``{"model": {...}, "bart": {...}}``: the
    layout ``config.json`` had before backbones were recorded by kind, so that an old
    checkpoint's identity does not change with the format (clients, base stations and shipped
    recordings compare it)."""
    return {"model": meta["model"], meta["backbone"]["kind"]: meta["backbone"]["config"]}


def identity(directory: str | Path) -> dict[str, Any]:
    """What identifies a checkpoint across processes: ``{"format_version", "config", "tokenizer",
    "weights"}`` (config: hash of the model + backbone configuration; tokenizer: its vocabulary
    fingerprint; weights: hash of ``model.safetensors``). Two halves may work together only when
    every field is equal; a compressed client artifact records its source's
    (:mod:`mtsc_sdr.compress.artifact`)."""
    directory = Path(directory)
    meta = read_config(directory)
    h = hashlib.sha256()
    with open(directory / WEIGHTS, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    config = json.dumps(identity_config(meta), sort_keys=True).encode()
    return {"format_version": meta["version"], "config": hashlib.sha256(config).hexdigest()[:16],
            "tokenizer": str(meta["tokenizer"].get("fingerprint")), "weights": h.hexdigest()[:16]}


def load(directory: str | Path, tokenizer=None, expect=None):
    """Rebuild an :class:`~mtsc_sdr.model.split.MTSCModel` from ``directory``, validating it.

    Args:
        directory: written by :func:`save`.
        tokenizer: optional :class:`~mtsc_sdr.model.tokenizer.TextTokenizer` the caller uses;
            refused when its fingerprint differs from the checkpoint's.
        expect: optional :class:`~mtsc_sdr.model.config.ModelConfig` the caller expects; refused
            naming each field that differs.
    Raises:
        CheckpointMismatch: config, tokenizer or weights do not match (the message says what).

    The model is built from ``config.json`` and the tokenizer, then :func:`load_weights` reads
    ``model.safetensors`` into it.
    """
    from .split import MTSCModel

    directory = Path(directory)
    meta = read_config(directory)
    try:
        # written before the analog image code existed: those weights use the token path alone
        cfg = ModelConfig.from_dict({"analog_image": False, **meta["model"]}, "config.json: model")
    except ConfigError as exc:
        raise CheckpointMismatch(str(exc)) from None
    if expect is not None:
        want, got = to_dict(expect), to_dict(cfg)
        diff = [f"{k} (expected {want[k]!r}, checkpoint has {got[k]!r})" for k in want if want[k] != got.get(k)]
        if diff:
            raise CheckpointMismatch(f"{directory}: model config differs: " + "; ".join(diff))

    kind = meta["backbone"]["kind"]
    if cfg.backbone != kind:
        raise CheckpointMismatch(f"{directory}: config.json model.backbone is {cfg.backbone!r} but backbone.kind "
                                 f"is {kind!r}")
    module = backbones.get(kind)
    # tokenizer: the one stored beside the weights must be the one the weights were trained with
    tmeta = meta["tokenizer"]
    try:
        stored = (TextTokenizer.load(directory) if tmeta.get("kind") == "trained"
                  else module.tokenizer(directory))
    except (OSError, ValueError) as exc:
        raise CheckpointMismatch(f"{directory}: tokenizer cannot be read: {exc}") from None
    if stored.fingerprint != tmeta.get("fingerprint"):
        raise CheckpointMismatch(f"{directory}: tokenizer fingerprint mismatch: config.json says "
                                 f"{tmeta.get('fingerprint')}, the stored tokenizer has {stored.fingerprint} "
                                 f"(another tokenizer was put beside these weights)")
    if tokenizer is not None and tokenizer.fingerprint != stored.fingerprint:
        raise CheckpointMismatch(f"{directory}: tokenizer fingerprint mismatch: the checkpoint was trained "
                                 f"with {stored.fingerprint}, the given tokenizer is {tokenizer.fingerprint}")

    try:
        backbone = module.from_config(meta["backbone"]["config"])
    except (backbones.BaseWeightsMismatch, FileNotFoundError) as exc:
        raise CheckpointMismatch(f"{directory}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a bad config dict can fail in many ways
        raise CheckpointMismatch(f"{directory}: config.json backbone.config is not a valid {kind} config: "
                                 f"{exc}") from None
    model = MTSCModel(cfg, stored, backbone)
    load_weights(model, directory / WEIGHTS)
    return model


def load_weights(model, file: str | Path) -> None:
    """Read a checkpoint's ``model.safetensors`` into ``model`` (the
    :class:`~mtsc_sdr.model.split.MTSCModel` that :func:`load` built from the checkpoint's
    ``config.json``), in place: the safetensors header and data are parsed, every stored key,
    shape and dtype is checked against the model (missing / unexpected keys, shapes, dtypes other
    than the model's or, for a float32 parameter, :data:`HALF_DTYPES`), and only then is anything
    copied into the model.

    Raises:
        CheckpointMismatch: the file cannot be read or does not fit the model (the message says
            what); the model is unchanged then.
    """
    import torch
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(file))
    except (OSError, SafetensorError) as exc:
        raise CheckpointMismatch(f"{file}: cannot be read: {exc}") from None
    keep, tied = _stored(model)
    missing = set(keep) - set(tensors)
    unexpected = set(tensors) - set(keep)
    problems = []
    if missing:
        problems.append(f"missing keys: {_list(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_list(unexpected)}")
    shapes = [f"{k} (checkpoint {tuple(tensors[k].shape)}, model {tuple(keep[k].shape)})"
              for k in sorted(set(keep) & set(tensors)) if tensors[k].shape != keep[k].shape]
    if shapes:
        problems.append("shape mismatch: " + "; ".join(shapes[:8]) + (f" (+{len(shapes) - 8} more)" if len(shapes) > 8 else ""))
    def fits(stored, own) -> bool:       # a release may hold float32 weights in half precision
        return stored == own or (own == torch.float32 and str(stored).removeprefix("torch.") in HALF_DTYPES)

    dtypes = [f"{k} ({tensors[k].dtype} vs {keep[k].dtype})" for k in sorted(set(keep) & set(tensors))
              if not fits(tensors[k].dtype, keep[k].dtype) and tensors[k].shape == keep[k].shape]
    if dtypes:
        problems.append("dtype mismatch: " + "; ".join(dtypes[:8]))
    if problems:
        raise CheckpointMismatch(f"{file} does not fit the model: " + "; ".join(problems))
    with torch.no_grad():
        own = model.state_dict(keep_vars=True)
        for k, v in tensors.items():
            own[k].copy_(v)
