"""Phase I multi-task training over the differentiable channel.

One task per step (drawn with ``task_weights``), or with ``mix_tasks`` one batch of every task per
step (losses summed with ``task_weights``, so shared weights and AdamW's moments see every task
every step). Every item's SNR is uniform in ``snr_db_range`` (see ``snr_curriculum``), the symbol
budget is drawn from ``budgets`` per batch, AWGN or Rician block fading per batch; AdamW with
linear warm-up and cosine decay. With ``blind`` the image of every task with a question is zeroed
in its batches (:func:`mtsc_sdr.data.zero_question_inputs`; the question-only baseline).

Determinism and resumption: everything random in step ``k`` (task, items, SNRs, channel, channel
noise, dropout) comes from ``numpy.random.default_rng([seed, k])``, and the learning rate is a
function of ``k``. A checkpoint therefore needs only the weights, the AdamW moments and ``k``:
resuming at ``k`` repeats the uninterrupted run (``tests/train/test_trainer.py`` checks it).

Examples come from ``cfg.data`` (:mod:`mtsc_sdr.data.sources`): the built-in world and/or the
real data sets, streamed from disk. On a GPU (``device cuda``) the forward pass runs under
``torch.autocast`` (``precision``: bf16, or fp16 with a gradient scaler); the CPU runs fp32.

Checkpoint directory (written as a whole into ``<dir>.tmp`` and then swapped in)::

    model.safetensors, config.json, tokenizer.json   mtsc_sdr.model.save (loadable by model.load)
    optimizer.safetensors                            AdamW state: "<param>/exp_avg", "<param>/exp_avg_sq",
                                                     "<param>/step" (0-d), param names from named_parameters()
    trainer_state.json                               format, version, step, finished, train config,
                                                     loss history, elapsed seconds, seeds, and per
                                                     (resumed) run its machine, versions and commit

No pickle: tensors are safetensors, the rest JSON.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from mtsc_sdr import tasks
from mtsc_sdr.config import ConfigError, to_dict
from mtsc_sdr.data import collate, zero_question_inputs
from mtsc_sdr.model import TextTokenizer, backbones, load, save
from mtsc_sdr.model.tokenizer import corpus
from mtsc_sdr.report import git_commit, machine, versions

from .config import OPERATIONAL_FIELDS, TrainConfig

# torch, safetensors' torch half, tqdm and the model's modules are imported where training runs:
# `mtsc-sdr demo` imports this module and must not pay for torch when the model is already trained.

STATE_FORMAT = "mtsc-sdr-trainer"
STATE_VERSION = 1
STATE_FILE = "trainer_state.json"
#: A release directory's record of the run that made it (no loss history, no optimizer), so that a
#: run initialised from a release carries the release's history onto its own model card.
PROVENANCE_FILE = "provenance.json"
PROVENANCE_FORMAT = "mtsc-sdr-provenance"
#: what of a trainer state a provenance record and an ``init_from`` summary keep
PROVENANCE_KEYS = ("train_config", "step", "elapsed_s", "runs", "init_from")
OPTIMIZER_FILE = "optimizer.safetensors"


class ResumeMismatch(ConfigError):
    """The checkpoint directory holds a run with another configuration (the message says which fields)."""


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        checkpoint_dir: where the checkpoint is.
        start_step, step: completed steps before and after this call.
        finished: ``step == cfg.steps``.
        stopped_by: "" (finished), "until_step" or "time_budget".
        elapsed_s: seconds of training in this call (setup excluded); setup_s: setup seconds.
        history: (step, task, loss) of every step of the whole run (resumed ones included).
    """

    checkpoint_dir: Path
    start_step: int
    step: int
    finished: bool
    stopped_by: str
    elapsed_s: float
    setup_s: float
    history: list = field(default_factory=list)

    def mean_loss(self, last: int = 200) -> dict[str, float]:
        """Mean loss per task over the last ``last`` steps of the run."""
        out: dict[str, list[float]] = {}
        for _, task, loss in self.history[-last:]:
            out.setdefault(task, []).append(loss)
        return {t: float(np.mean(v)) for t, v in out.items()}


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate of (0-based) ``step``: linear warm-up, then cosine to ``lr * min_lr_ratio``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    frac = min(1.0, (step - cfg.warmup_steps) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1.0 + math.cos(math.pi * frac))


def example_pool(cfg: TrainConfig) -> dict[str, Sequence]:
    """The train-split examples per task that steps draw from: a fixed pool of the built-in world
    (kept in memory) or a real data set's train split, decoded when drawn (``cfg.data``); of each,
    the first ``data_fraction`` (a subset of what a full run sees)."""
    source = cfg.data_source()
    pool = {}
    for task in cfg.tasks:
        items = source.train_pool(task, cfg.pool_size(task), cfg.seed)
        if task == "vqa" and cfg.knowledge_fraction > 0:
            items = _with_knowledge_questions(list(items), cfg)
        pool[task] = items[:max(1, int(round(cfg.data_fraction * len(items))))]
    return pool


def _with_knowledge_questions(items: list, cfg: TrainConfig) -> list:
    """The VQA pool with every item from position ``round((1 - knowledge_fraction) * n)`` on
    replaced by a knowledge question about another train scene (answered per step by
    retrieval in the loop, :mod:`mtsc_sdr.rag.loop`)."""
    from mtsc_sdr.data import SyntheticWorld
    from mtsc_sdr.data.knowledge import knowledge_example

    keep = int(round((1.0 - cfg.knowledge_fraction) * len(items)))
    rng = np.random.default_rng([cfg.seed, 0x4B])
    world = SyntheticWorld(seed=0, image_size=cfg.model_config().image_size)
    scenes = rng.choice(max(len(items), 20000), size=len(items) - keep, replace=False)
    return items[:keep] + [knowledge_example(world.scene("train", int(i)), rng) for i in scenes.tolist()]


def knowledge_embedder(embedder=None):
    """``embedder``, or the knowledge bases' packaged one (loaded once per run and shared)."""
    if embedder is not None:
        return embedder
    from mtsc_sdr.rag.embedder import SentenceEmbedder

    return SentenceEmbedder()


def retrieval_loop(cfg: TrainConfig, query_adapter=None, embedder=None):
    """The :class:`~mtsc_sdr.rag.loop.RetrievalLoop` of a run whose model takes retrieved
    context (``model.context_tokens``), with the knowledge bases' embedder (``embedder``, else
    the packaged one) and the model's query adapter float32 (dim, dim) (None: none); None for a
    model without retrieval inputs."""
    if not cfg.model_config().context_tokens:
        return None
    from mtsc_sdr.rag.loop import RetrievalLoop

    return RetrievalLoop(knowledge_embedder(embedder), k=cfg.retrieval_k, shuffle=cfg.knowledge_shuffle,
                         extra_words=cfg.knowledge_extra_words, filler_words=cfg.knowledge_filler_words,
                         max_local=int(cfg.knowledge_base_docs[0]),
                         max_global=int(cfg.knowledge_base_docs[1]), reorder=cfg.knowledge_reorder,
                         query_adapter=query_adapter)


def with_adapter_embedder(mcfg, embedder=None):
    """``mcfg`` with ``query_adapter_embedder`` set to the embedder's sha256 (``embedder``, else
    the packaged one) when it has a query adapter (``query_adapter_dim``) and names no embedder;
    the adapter's dimension must be that embedder's (ConfigError naming the field otherwise)."""
    if not mcfg.query_adapter_dim:
        return mcfg
    from dataclasses import replace

    from mtsc_sdr.rag.embedder import identity

    embedder = identity(knowledge_embedder(embedder))
    if mcfg.query_adapter_dim != embedder["dim"]:
        raise ConfigError("model.query_adapter_dim", f"is {mcfg.query_adapter_dim}, but the packaged embedder "
                                                     f"{embedder['name']} makes vectors of {embedder['dim']}")
    return replace(mcfg, query_adapter_embedder=mcfg.query_adapter_embedder or embedder["sha256"])


def fit_query_adapter_into(model, seed: int, embedder=None) -> Optional[dict]:
    """Fit the query adapter of a fresh model with one (:func:`mtsc_sdr.rag.adapter.fit_query_adapter`,
    ``embedder``, else the packaged one) and copy it into ``model.client.query_adapter``; its
    report, or None for a model without one."""
    if model.client.query_adapter is None:
        return None
    import torch

    from mtsc_sdr.rag.adapter import fit_query_adapter

    adapter, report = fit_query_adapter(knowledge_embedder(embedder), seed=seed)
    with torch.no_grad():
        model.client.query_adapter.copy_(torch.from_numpy(adapter))
    return report


def init_from(cfg: TrainConfig, mcfg):
    """A fresh model of ``mcfg`` initialised from ``cfg.init_from`` (see :class:`TrainConfig`),
    and what the source's ``trainer_state.json`` says of it (config, steps, wall time, runs).

    Raises:
        ConfigError: the source does not load, or shares no tensor with the configured model.
    """
    import torch

    from mtsc_sdr.model import CheckpointMismatch, build_model

    try:
        source = load(cfg.init_from)
    except (CheckpointMismatch, OSError) as exc:
        raise ConfigError("init_from", str(exc)) from None
    torch.manual_seed(cfg.seed)
    model = build_model(mcfg, knowledge_tokenizer(mcfg, source.tokenizer))
    own = model.state_dict()
    taken = {k: grown(v, own[k]) for k, v in source.state_dict().items() if k in own}
    taken = {k: v for k, v in taken.items() if v is not None}
    if not taken:
        raise ConfigError("init_from", f"{cfg.init_from} shares no tensor with the configured model")
    model.load_state_dict(taken, strict=False)
    saved = read_state(Path(cfg.init_from)) or read_provenance(Path(cfg.init_from)) or {}
    summary = {"path": str(cfg.init_from), "tensors_taken": len(taken), "tensors_new": len(own) - len(taken),
               **{k: saved[k] for k in PROVENANCE_KEYS if k in saved}}
    return model, summary


def knowledge_tokenizer(mcfg, tokenizer):
    """``tokenizer``, extended with the knowledge words (:func:`mtsc_sdr.data.knowledge.vocabulary`)
    for a model that takes retrieved context and has the project's own word-level tokenizer
    (which was trained on the world's captions and lacks the names and cities); else unchanged."""
    if not mcfg.context_tokens or tokenizer is None or tokenizer.kind != "trained":
        return tokenizer
    from mtsc_sdr.data.knowledge import vocabulary

    return tokenizer.with_words(vocabulary())


def grown(source, target):
    """``source`` as the value of a tensor shaped like ``target``: itself when the shapes match;
    when ``target`` has more rows (a vocabulary extended by :func:`knowledge_tokenizer`, whose
    old tokens keep their ids), a copy of ``target`` with its first rows replaced by ``source``;
    else None (the tensor keeps its fresh init)."""
    if source.shape == target.shape:
        return source
    if source.ndim >= 1 and source.shape[1:] == target.shape[1:] and source.shape[0] < target.shape[0]:
        out = target.clone()
        out[:source.shape[0]] = source
        return out
    return None


#: at most this many images per task fit the analog code (a 3072-pixel PCA needs a few thousand)
ANALOG_FIT_IMAGES = 8192


def analog_fit_pool(cfg: TrainConfig) -> dict[str, Sequence]:
    """The images the analog image code is fit on: each dense image task's train split, up to
    :data:`ANALOG_FIT_IMAGES` (not the run's pool: the minilm recipe's pool of 2000 patches left
    the 3072-pixel PCA noisy enough to lose 0.6 dB at 20 dB against a fit on all 3647)."""
    source = cfg.data_source()
    return {t: source.train_pool(t, ANALOG_FIT_IMAGES, cfg.seed) for t in cfg.tasks
            if tasks.get(t).dense and tasks.get(t).output == "image"}


def fit_analog_code(model, pool: dict[str, Sequence]) -> int:
    """Fit the analog image code of a fresh model (:mod:`mtsc_sdr.model.analog`: the PCA both
    ends use) on the target images of ``pool`` (:func:`analog_fit_pool`; a real data set's whole
    split is cut to :data:`ANALOG_FIT_IMAGES` here), and copy its statistics to the server's
    estimator. Returns the number of images used (0: no such task, fewer than 2 images, or a model
    without the code; it keeps its data-free initial basis)."""
    import torch

    if model.client.analog is None:
        return 0
    images = [collate([items[i] for i in range(min(len(items), ANALOG_FIT_IMAGES))])["target_image"]
              for items in pool.values()]
    images = torch.cat(images) if images else torch.empty(0)
    if len(images) < 2:
        return 0
    model.client.analog.fit(images)
    model.server.analog.copy_from(model.client.analog)
    return len(images)


def check_device(cfg: TrainConfig) -> str:
    """The autocast dtype name for ``cfg`` (``fp32``: none); ConfigError for a CUDA device on a
    machine without one (``torch`` is imported by the caller)."""
    import torch

    if not cfg.device.startswith("cuda"):
        return "fp32"
    if not torch.cuda.is_available():
        raise ConfigError("device", f"{cfg.device!r} asked for, but torch finds no CUDA GPU on this machine "
                                    f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use --device cpu")
    if cfg.precision != "auto":
        return cfg.precision
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def mixed_precision(device: str, precision: str):
    """(autocast context factory, GradScaler) for ``precision``: fp32 gives a no-op context and a
    disabled scaler (every call passes through), bf16 autocast needs no scaler, fp16 has one."""
    import contextlib

    import torch

    if precision == "fp32":
        return contextlib.nullcontext, torch.amp.GradScaler("cuda", enabled=False)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    autocast = (lambda: torch.autocast(device_type="cuda", dtype=dtype))
    return autocast, torch.amp.GradScaler("cuda", enabled=precision == "fp16")


@dataclass
class StepDraw:
    """Everything random about one step (a pure function of seed and step)."""

    task: str
    items: np.ndarray
    snr_db: np.ndarray
    fading: Optional[str]
    noise_seed: int
    torch_seed: int
    budget: Optional[int] = None


def draw_step(cfg: TrainConfig, step: int, pool_sizes: dict[str, int]) -> StepDraw:
    """The one-task draw of ``step`` (``mix_tasks`` false)."""
    rng = np.random.default_rng([cfg.seed, step, 0x7A1])
    task = cfg.tasks[int(rng.choice(len(cfg.tasks), p=cfg.weights()))]
    return _draw_for(cfg, task, rng, pool_sizes, step)


def draw_steps(cfg: TrainConfig, step: int, pool_sizes: dict[str, int]) -> list[StepDraw]:
    """Everything random about ``step``: one draw, or with ``mix_tasks`` one per task."""
    if not cfg.mix_tasks:
        return [draw_step(cfg, step, pool_sizes)]
    return [_draw_for(cfg, task, np.random.default_rng([cfg.seed, step, 0x7A2, i]), pool_sizes, step)
            for i, task in enumerate(cfg.tasks)]


def snr_range_at(cfg: TrainConfig, step: int) -> tuple[float, float]:
    """SNR range of ``step``: with a curriculum the low end starts at the high end and falls
    linearly to ``snr_db_range[0]`` over the first ``snr_curriculum`` of the steps."""
    lo, hi = cfg.snr_db_range
    span = cfg.snr_curriculum * cfg.steps
    if span <= 0 or step >= span:
        return lo, hi
    return hi - (hi - lo) * step / span, hi


def _draw_for(cfg: TrainConfig, task: str, rng: np.random.Generator, pool_sizes: dict[str, int],
              step: int) -> StepDraw:
    n = pool_sizes[task]
    items = rng.choice(n, size=cfg.batch_size, replace=cfg.batch_size > n)
    lo, hi = snr_range_at(cfg, step)
    snr = rng.uniform(lo, hi, size=cfg.batch_size).astype(np.float32)
    fading = "rician" if rng.random() < cfg.rician_fraction else None
    seeds = int(rng.integers(2**62)), int(rng.integers(2**62))
    budget = None if not cfg.budgets else int(cfg.budgets[int(rng.integers(len(cfg.budgets)))])
    return StepDraw(task, items, snr, fading, *seeds, budget)


def _param_groups(model, weight_decay: float):
    """AdamW groups of the trainable parameters (frozen ones, e.g. a LoRA-tuned LAM's pre-trained
    weights, are left out): matrices with weight decay, vectors without."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def save_optimizer(model, opt, file: Path) -> None:
    """AdamW moments as safetensors with flattened ``<param name>/<key>`` keys (no pickle)."""
    from safetensors.torch import save_file

    tensors = {}
    for name, p in model.named_parameters():
        st = opt.state.get(p)
        if not st:
            continue
        for key, val in st.items():
            if not hasattr(val, "detach"):
                raise TypeError(f"optimizer state {name}/{key} is not a tensor: {type(val).__name__}")
            tensors[f"{name}/{key}"] = val.detach().contiguous().cpu()
    save_file(tensors, str(file), metadata={"format": STATE_FORMAT, "version": str(STATE_VERSION)})


def load_optimizer(model, opt, file: Path) -> None:
    """Inverse of :func:`save_optimizer`; refuses keys that do not fit the model."""
    from safetensors.torch import load_file

    tensors = load_file(str(file))
    params = dict(model.named_parameters())
    per_param: dict[str, dict] = {}
    for key, val in tensors.items():
        name, _, sub = key.rpartition("/")
        if name not in params:
            raise ResumeMismatch("", f"{file}: optimizer state for unknown parameter {name!r}")
        if sub != "step" and val.shape != params[name].shape:
            raise ResumeMismatch("", f"{file}: {key} has shape {tuple(val.shape)}, parameter "
                                     f"{tuple(params[name].shape)}")
        per_param.setdefault(name, {})[sub] = val if sub == "step" else val.to(params[name].device)
    for name, st in per_param.items():
        opt.state[params[name]] = st


def _compatible(saved: dict, cfg: TrainConfig, directory: Path) -> None:
    now = to_dict(cfg)
    saved = {**TrainConfig.preset_values(saved.get("preset", "default")), **saved}  # fields it predates: defaults
    diff = [f"{k} (checkpoint {saved.get(k)!r}, now {now[k]!r})" for k in now
            if k not in OPERATIONAL_FIELDS and saved.get(k) != now[k]]
    if diff:
        raise ResumeMismatch("", f"{directory} holds a run with another configuration: " + "; ".join(diff)
                             + " (pass --restart to start over, or another --checkpoint-dir)")


def read_state(directory: Path) -> Optional[dict]:
    """The trainer state of a checkpoint directory, or None if there is none."""
    file = Path(directory) / STATE_FILE
    if not file.is_file():
        return None
    state = json.loads(file.read_text())
    if state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
        raise ResumeMismatch("", f"{file}: not a version-{STATE_VERSION} {STATE_FORMAT} state")
    return state


def read_provenance(directory: Path) -> Optional[dict]:
    """What a release directory records of the run that made it (:data:`PROVENANCE_FILE`, written
    by ``mtsc-sdr release``: :data:`PROVENANCE_KEYS` of its trainer state, the release command);
    None if there is none. Raises ConfigError (``init_from``) for a file that is not one."""
    file = Path(directory) / PROVENANCE_FILE
    if not file.is_file():
        return None
    try:
        record = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError("init_from", f"{file}: not JSON ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != PROVENANCE_FORMAT:
        raise ConfigError("init_from", f"{file}: not a {PROVENANCE_FORMAT} record")
    return record


def _write_checkpoint(directory: Path, model, opt, state: dict) -> None:
    tmp = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    save(model, tmp)
    save_optimizer(model, opt, tmp / OPTIMIZER_FILE)
    (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


class _Progress:
    """tqdm on a terminal, else a line on stderr every ``log_every`` steps (nothing when quiet)."""

    def __init__(self, cfg: TrainConfig, start: int, quiet: bool):
        self.cfg, self.quiet, self.bar = cfg, quiet, None
        self.t0 = time.monotonic()
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=cfg.steps, initial=start, desc="train", unit="step", file=sys.stderr,
                            dynamic_ncols=True)

    def update(self, step: int, task: str, loss: float, lr: float) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{task} {loss:.3f} lr {lr:.1e}", refresh=False)
        elif (step + 1) % self.cfg.log_every == 0 or step + 1 == self.cfg.steps:
            print(f"train: step {step + 1}/{self.cfg.steps} {task} loss {loss:.4f} lr {lr:.2e} "
                  f"{time.monotonic() - self.t0:.0f} s", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        if self.quiet:
            return
        (self.bar.write if self.bar is not None else (lambda s: print(s, file=sys.stderr, flush=True)))(
            f"train: {text}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train(cfg: TrainConfig, *, restart: bool = False, until_step: Optional[int] = None,
          quiet: bool = False, on_step: Optional[Callable[[int, str, float], None]] = None) -> TrainResult:
    """Train (or resume) the run ``cfg`` into ``cfg.output_dir()``.

    Args:
        cfg: the run.
        restart: ignore (and replace) a checkpoint already in the directory.
        until_step: stop after this many completed steps, with a checkpoint (resume later).
        quiet: no progress output.
        on_step: called with (step, task, loss) after each step.
    Raises:
        ResumeMismatch: the directory holds a run with another configuration.
    """
    import torch
    from torch.nn.utils import clip_grad_norm_

    from mtsc_sdr.model import build_model

    t_setup = time.monotonic()
    precision = check_device(cfg)
    torch.set_num_threads(cfg.num_threads)
    directory = cfg.output_dir()
    state = None if restart else read_state(directory)
    # the knowledge bases' embedder, loaded once for the adapter's identity and fit and the retrieval loop
    embedder = knowledge_embedder() if cfg.model_config().context_tokens else None
    mcfg = with_adapter_embedder(backbones.sized(cfg.model_config()), embedder)   # minilm: its weights' sizes
    source_state = state.get("init_from") if state is not None else None   # the init_from run, kept
    if state is not None:
        _compatible(state["train_config"], cfg, directory)
        model = load(directory, expect=None if mcfg.lam_path else mcfg)  # a local LAM's sizes win
    elif cfg.init_from:
        model, source_state = init_from(cfg, mcfg)
    else:
        n = cfg.tokenizer_scenes
        # a local LAM (--lam) and a packaged backbone (minilm) bring their own tokenizer
        tok = None if mcfg.lam_path else knowledge_tokenizer(mcfg, (
            backbones.get(mcfg.backbone).packaged_tokenizer()
            or TextTokenizer.train(corpus(n_scenes=n, n_audio=max(1, n // 4), n_video=max(1, n // 4)))))
        torch.manual_seed(cfg.seed)
        model = build_model(mcfg, tok)
    model.to(cfg.device).train()
    opt = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-8)
    start, history = 0, []
    if state is not None:
        load_optimizer(model, opt, directory / OPTIMIZER_FILE)
        start, history = int(state["step"]), [tuple(h) for h in state["history"]]
    pool = example_pool(cfg)
    adapter_report = state.get("query_adapter") if state is not None else None
    if state is None:
        fit_analog_code(model, analog_fit_pool(cfg))
        adapter_report = fit_query_adapter_into(model, cfg.seed, embedder)
    sizes = {t: len(v) for t, v in pool.items()}
    adapter = model.client.query_adapter
    retrieval = retrieval_loop(cfg, None if adapter is None else adapter.detach().cpu().numpy(), embedder)
    autocast, scaler = mixed_precision(cfg.device, precision)
    setup_s = time.monotonic() - t_setup

    end = cfg.steps if until_step is None else max(start, min(cfg.steps, int(until_step)))
    prog = _Progress(cfg, start, quiet)
    if state is not None:
        prog.note(f"resuming {directory} at step {start}/{cfg.steps}")
    t0 = time.monotonic()
    stopped_by = ""
    prev_elapsed = float(state.get("elapsed_s", 0.0)) if state else 0.0
    provenance = {"machine": machine(), "versions": versions(), "commit": git_commit(),
                  "device": cfg.device, "num_threads": cfg.num_threads}
    runs = [*(state.get("runs", []) if state else []), {**provenance, "start_step": start}]

    def checkpoint(step: int) -> None:
        _write_checkpoint(directory, model, opt, {
            "format": STATE_FORMAT, "version": STATE_VERSION, "step": step, "finished": step >= cfg.steps,
            "train_config": to_dict(cfg), "seeds": {"seed": cfg.seed},
            "elapsed_s": prev_elapsed + time.monotonic() - t0, "runs": runs,
            **({"init_from": source_state} if source_state is not None else {}),
            **({"query_adapter": adapter_report} if adapter_report is not None else {}),
            "history": [list(h) for h in history]})

    weights = dict(zip(cfg.tasks, cfg.weights()))   # loss weights with mix_tasks
    step = start
    try:
        while step < end:
            draws = draw_steps(cfg, step, sizes)
            lr = lr_at(cfg, step)
            for g in opt.param_groups:
                g["lr"] = lr
            total, values = 0.0, []
            for d in draws:
                drawn = [pool[d.task][i] for i in d.items.tolist()]
                if retrieval is not None:
                    drawn = retrieval.attach(drawn, np.random.default_rng(d.noise_seed))
                batch = collate(zero_question_inputs(drawn, d.task) if cfg.blind else drawn)
                torch.manual_seed(d.torch_seed)                       # dropout
                gen = torch.Generator().manual_seed(d.noise_seed)     # channel fading + noise
                with autocast():
                    loss = model.loss(batch, d.task, torch.from_numpy(d.snr_db), fading=d.fading,
                                      k_factor_db=cfg.k_factor_db, generator=gen, budget=d.budget,
                                      importance_weight=cfg.importance_weight)
                total = total + (weights[d.task] if len(draws) > 1 else 1.0) * loss
                values.append((d.task, float(loss.detach())))
            opt.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            if cfg.grad_clip > 0:
                scaler.unscale_(opt)
                clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            for task, value in values:
                if not math.isfinite(value):
                    raise FloatingPointError(f"loss became {value} at step {step} ({task}); last checkpoint kept")
                history.append((step, task, value))
            label = values[0][0] if len(values) == 1 else "all"
            value = float(total.detach())
            step += 1
            prog.update(step - 1, label, value, lr)
            if on_step is not None:
                on_step(step - 1, label, value)
            over_time = cfg.time_budget_s is not None and time.monotonic() - t0 >= cfg.time_budget_s
            if over_time and step < end:
                stopped_by = "time_budget"
                prog.note(f"time budget of {cfg.time_budget_s:.0f} s reached at step {step}/{cfg.steps}")
                break
            if step % cfg.checkpoint_every == 0 and step < end:
                checkpoint(step)
    finally:
        prog.close()
    if step > start or state is None or not directory.exists():
        checkpoint(step)
    if not stopped_by and step < cfg.steps:
        stopped_by = "until_step"
    return TrainResult(directory, start, step, step >= cfg.steps, stopped_by, time.monotonic() - t0,
                       setup_s, history)
