"""Phase I training configuration: one validated dataclass, presets ``micro`` and ``default``.

YAML (``mtsc-sdr train --config configs/train-default.yaml``) or dicts go through
:meth:`TrainConfig.from_dict`: the ``preset`` field picks the starting values, every other field
overrides them, and errors name the field (``train.task_weights: needs 5 values, got 2``).
SNRs are Es/N0 per complex symbol in dB (:mod:`mtsc_sdr.conventions`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Optional

from mtsc_sdr import tasks as task_table
from mtsc_sdr.config import ConfigError, check, from_dict, read_yaml, to_dict
from mtsc_sdr.data.sources import BUILTIN, DataSource, InputSizes, parse_data_spec
from mtsc_sdr.model.checkpoint import default_checkpoint_dir
from mtsc_sdr.model.config import ModelConfig

#: Fields that may differ between a run and the run it resumes (they do not change the result).
OPERATIONAL_FIELDS = ("checkpoint_dir", "checkpoint_every", "time_budget_s", "num_threads", "log_every",
                      "device", "precision")
#: ``precision`` values: ``auto`` is bf16 autocast on a GPU that has bf16, fp16 (with a gradient
#: scaler) on one that has not, and fp32 on the CPU.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    """Everything that determines a phase I training run.

    Attributes:
        preset: ``default`` (ModelConfig.default(), the cached default model) or ``micro`` (tests).
        model: ModelConfig fields overriding the preset's model (e.g. ``{d_model: 64}``).
        steps: optimizer steps (one task per batch).
        batch_size: examples per batch.
        lr: peak learning rate (AdamW); linear warm-up over ``warmup_steps``, then cosine decay
            to ``lr * min_lr_ratio`` at ``steps``.
        weight_decay: AdamW decoupled weight decay on matrices (not on biases, norms, embeddings
            of one dimension).
        grad_clip: max global gradient norm (0 disables).
        snr_db_range: [low, high]; each item's SNR is drawn uniformly from it.
        snr_curriculum: fraction of the steps over which the low end of the SNR range falls from
            the high end to ``snr_db_range[0]`` (0: the whole range from the start). Clean
            examples first let the encoders learn what to say before they learn to say it robustly.
        rician_fraction: probability that a batch goes through Rician block fading (one gain per
            item, K = ``k_factor_db``, E|h|^2 = 1) instead of AWGN only.
        k_factor_db: Rician K factor in dB.
        budgets: symbol budgets (complex symbols per item) drawn uniformly per batch; None: the
            model's ``symbols_per_item`` only. Training on several budgets teaches the importance
            head which tokens to keep when not all of them fit.
        importance_weight: weight of :func:`mtsc_sdr.model.split.importance_loss`, which teaches
            the importance head to rank tokens by the share of the server's cross-attention they
            get (0: the gate alone teaches it). Measured on val after the default 1000 steps,
            100 items per task, 0.2 against 0: image captions CIDEr 141 vs 110 at 20 dB, video
            captions 276 vs 174, and at 128 symbols and -5 dB importance-kept tokens give image
            captions 108 where fixed / random ones give 69 / 85 (91 / 94 / 96 without it).
        blind: zero the image input of tasks with a question (the question-only baseline): every
            training batch of such a task (VQA) carries an all-zero image, so the model learns
            what the questions alone say about the answers. Evaluation zeroes it too
            (:func:`mtsc_sdr.runtime.evaluate.evaluate` reads this field from the checkpoint's
            ``trainer_state.json``). ``configs/question-only.yaml`` is the release model's run
            with ``blind`` and VQA alone.
        tasks: tasks trained; task_weights: their sampling probabilities (None: equal), one per task,
            or with ``mix_tasks`` the weights of their losses (normalised to sum 1).
        mix_tasks: every step takes a ``batch_size`` batch of every task and sums the losses,
            instead of one task per step (one task per step lets the tasks pull shared weights
            in turn, and the slow ones never get going).
        examples_per_task: size of the fixed pool of train-split examples per task of the built-in
            world (generated once, kept in memory; ``reconstruct`` is capped by the natural patches
            available). A real data set trains on its whole train split, streamed from disk.
        task_examples: per-task pool sizes overriding ``examples_per_task`` (``{vqa: 40000}``):
            a VQA example is one question about one scene, so VQA needs many more of them than
            a captioning task needs scenes, while 2 s audio clips cost 128 kB each in memory.
        data_fraction: share of that pool training may use, in (0, 1]: the first
            ``max(1, round(fraction * pool size))`` examples of each task's pool (a subset of the
            full pool, so runs on less data see a part of what the full run sees). It limits the
            distinct training items, not the steps.
        data: where examples come from (``--data``): ``builtin`` and/or ``NAME=PATH`` with NAME one
            of ``vqav2``, ``coco``, ``cifar10``, ``audiocaps``, ``msrvtt`` in its official layout
            (:mod:`mtsc_sdr.data.sources`). Each real set feeds its task (vqa, caption_image,
            reconstruct, caption_audio, caption_video); ``builtin`` feeds the other tasks; without
            it every task in ``tasks`` needs a real set.
        tokenizer_scenes: scenes whose captions/QA train the tokenizer (plus a quarter as many audio
            and video clips); all from the train split.
        seed: seeds model init, the example pool and every per-step draw (task, items, SNR,
            channel, noise, dropout): step ``k`` is a pure function of (seed, k), so a resumed run
            repeats an uninterrupted one.
        init_from: a checkpoint directory (a training directory or a release) whose weights and
            tokenizer start a fresh run instead of a random init: every tensor the configured
            model has under the same name and shape; the rest keeps its fresh init, and a model
            with the analog image code fits it (:func:`~.trainer.fit_analog_code`). ``steps`` may
            then be 0: the release recipes add the analog code to a run trained before it existed
            that way. The source's ``trainer_state.json`` is kept in the new one (``init_from``)
            and on a release's card.
        checkpoint_dir: output directory (None: :func:`default_checkpoint_dir` of the preset).
        checkpoint_every: steps between checkpoints (the last step always writes one).
        time_budget_s: stop early (with a resumable checkpoint) after this many seconds of training.
        num_threads: torch intra-op threads.
        device: torch device to train on (``cpu``, ``cuda``, ``cuda:1``); every random draw still
            comes from CPU generators, so the run is the same function of the seed on any device
            up to floating-point rounding.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``: mixed precision on a GPU
            (``torch.autocast``; fp16 with ``torch.amp.GradScaler``); ``auto`` is bf16 where the GPU
            has it, else fp16, and fp32 on the CPU (where only ``fp32``/``auto`` are allowed).
        log_every: steps between log lines when stderr is not a terminal.
        knowledge_fraction: retrieval-augmented training (a model with ``context_tokens``): the
            share of the VQA pool that asks knowledge questions (:mod:`mtsc_sdr.data.knowledge`;
            the built-in world only) instead of questions about the image. Every item with a
            question is trained with retrieval in the loop (:mod:`mtsc_sdr.rag.loop`).
        retrieval_k: snippets retrieved from each knowledge base per item, in training as at
            inference (the model's config records it: ``ModelConfig.retrieval_k``, the default of
            ``--retrieval-k``).
        knowledge_shuffle: probability that a knowledge question, and each document retrieved for
            it, is trained with its words in random order (:class:`mtsc_sdr.rag.loop.RetrievalLoop`'s
            ``shuffle``: reading by the words, not the sentence pattern, for new phrasings).
        knowledge_extra_words: at most this many of the relation's training words added to each
            shuffled sentence (``RetrievalLoop``'s ``extra_words``).
        knowledge_filler_words: at most this many words of the world's image questions that name
            no object and no relation inserted into each knowledge question (``RetrievalLoop``'s
            ``filler_words``), so that a known word in a new place does not hide the question.
        knowledge_reorder: probability that a base's retrieved snippets are trained in a random
            order instead of best first (``RetrievalLoop``'s ``reorder``), so the model reads a
            fact wherever the base ranks it.
        knowledge_base_docs: (local, global): the most documents besides the asked fact that the
            local and the global base of a training item hold (``RetrievalLoop``'s ``max_local`` /
            ``max_global``; each base draws 0..max). Large bases (up to the 41 other facts of a
            state) make retrieval return the hardest neighbours -- the same object's other relation,
            objects of the same colour or shape -- as a deployed base that holds every fact does.
    """

    preset: Literal["default", "micro"] = "default"
    model: dict[str, Any] = field(default_factory=dict)
    steps: int = 1000
    batch_size: int = 16
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    warmup_steps: int = 50
    grad_clip: float = 1.0
    snr_db_range: tuple[float, float] = (-5.0, 20.0)
    snr_curriculum: float = 0.0
    rician_fraction: float = 0.5
    budgets: Optional[tuple[int, ...]] = (128, 256, 512)
    k_factor_db: float = 6.0
    importance_weight: float = 0.2
    blind: bool = False
    tasks: tuple[str, ...] = field(default_factory=task_table.names)
    task_weights: Optional[tuple[float, ...]] = None
    mix_tasks: bool = True
    examples_per_task: int = 2000
    task_examples: dict[str, int] = field(default_factory=dict)
    data_fraction: float = 1.0
    data: tuple[str, ...] = (BUILTIN,)
    tokenizer_scenes: int = 2000
    seed: int = 0
    init_from: Optional[str] = None
    checkpoint_dir: Optional[str] = None
    checkpoint_every: int = 500
    time_budget_s: Optional[float] = None
    num_threads: int = 2
    device: str = "cpu"
    knowledge_fraction: float = 0.0
    retrieval_k: int = 2
    knowledge_shuffle: float = 0.0
    knowledge_extra_words: int = 0
    knowledge_filler_words: int = 0
    knowledge_reorder: float = 0.0
    knowledge_base_docs: tuple[int, int] = (6, 10)
    precision: str = "auto"
    log_every: int = 50

    def validate(self, path: str = "") -> None:
        """Range checks; :class:`ConfigError` names the field."""
        p = (lambda name: f"{path}.{name}" if path else name)
        for name in ("batch_size", "examples_per_task", "tokenizer_scenes", "checkpoint_every",
                     "num_threads", "log_every"):
            check(getattr(self, name) >= 1, p(name), f"must be >= 1, got {getattr(self, name)}")
        check(self.steps >= (0 if self.init_from else 1), p("steps"),
              f"must be >= 1 (>= 0 with init_from), got {self.steps}")
        check(self.lr > 0, p("lr"), f"must be > 0, got {self.lr}")
        check(0 < self.data_fraction <= 1, p("data_fraction"), f"must be in (0, 1], got {self.data_fraction}")
        check(0 <= self.min_lr_ratio <= 1, p("min_lr_ratio"), f"must be in [0, 1], got {self.min_lr_ratio}")
        check(self.weight_decay >= 0, p("weight_decay"), f"must be >= 0, got {self.weight_decay}")
        check(self.warmup_steps >= 0, p("warmup_steps"), f"must be >= 0, got {self.warmup_steps}")
        check(self.grad_clip >= 0, p("grad_clip"), f"must be >= 0, got {self.grad_clip}")
        check(self.importance_weight >= 0, p("importance_weight"), f"must be >= 0, got {self.importance_weight}")
        lo, hi = self.snr_db_range
        check(lo <= hi, p("snr_db_range"), f"must be [low, high] with low <= high, got {list(self.snr_db_range)}")
        check(0 <= self.snr_curriculum <= 1, p("snr_curriculum"), f"must be in [0, 1], got {self.snr_curriculum}")
        check(0 <= self.rician_fraction <= 1, p("rician_fraction"), f"must be in [0, 1], got {self.rician_fraction}")
        check(self.budgets is None or (len(self.budgets) >= 1 and min(self.budgets) >= 1), p("budgets"),
              f"must be null or a list of symbol counts >= 1, got {self.budgets}")
        check(len(self.tasks) >= 1, p("tasks"), "needs at least one task")
        for i, t in enumerate(self.tasks):
            check(t in task_table.names(), f"{p('tasks')}[{i}]",
                  f"unknown task {t!r}; tasks are {list(task_table.names())}")
        for task, n in self.task_examples.items():
            check(task in task_table.names(), f"{p('task_examples')}.{task}",
                  f"unknown task; tasks are {list(task_table.names())}")
            check(isinstance(n, int) and not isinstance(n, bool) and n >= 1, f"{p('task_examples')}.{task}",
                  f"must be an integer >= 1, got {n!r}")
        check(len(set(self.tasks)) == len(self.tasks), p("tasks"), f"lists a task twice: {list(self.tasks)}")
        if self.task_weights is not None:
            check(len(self.task_weights) == len(self.tasks), p("task_weights"),
                  f"needs {len(self.tasks)} values (one per task), got {len(self.task_weights)}")
            check(all(w >= 0 for w in self.task_weights) and sum(self.task_weights) > 0, p("task_weights"),
                  f"must be >= 0 with a positive sum, got {list(self.task_weights)}")
        check(self.time_budget_s is None or self.time_budget_s > 0, p("time_budget_s"),
              f"must be > 0 or null, got {self.time_budget_s}")
        check(self.precision in PRECISIONS, p("precision"), f"must be one of {list(PRECISIONS)}, got {self.precision!r}")
        check(self.precision in ("auto", "fp32") or self.device.startswith("cuda"), p("precision"),
              f"{self.precision} autocast needs a GPU (device cuda), device is {self.device!r}")
        check(0.0 <= self.knowledge_fraction < 1.0, p("knowledge_fraction"),
              f"must be in [0, 1), got {self.knowledge_fraction}")
        check(self.knowledge_fraction == 0 or self.model_config().context_tokens > 0, p("knowledge_fraction"),
              "knowledge questions need a model with retrieval inputs (model.context_tokens > 0)")
        check(self.knowledge_fraction == 0 or BUILTIN in self.data, p("knowledge_fraction"),
              "knowledge questions are about the built-in world: data needs 'builtin'")
        check(self.retrieval_k >= 1, p("retrieval_k"), f"must be >= 1, got {self.retrieval_k}")
        check(0.0 <= self.knowledge_shuffle <= 1.0, p("knowledge_shuffle"),
              f"must be a probability in [0, 1], got {self.knowledge_shuffle}")
        check(self.knowledge_extra_words >= 0, p("knowledge_extra_words"),
              f"must be >= 0, got {self.knowledge_extra_words}")
        check(self.knowledge_filler_words >= 0, p("knowledge_filler_words"),
              f"must be >= 0, got {self.knowledge_filler_words}")
        check(0.0 <= self.knowledge_reorder <= 1.0, p("knowledge_reorder"),
              f"must be a probability in [0, 1], got {self.knowledge_reorder}")
        check(len(self.knowledge_base_docs) == 2 and all(int(n) == n and n >= 0 for n in self.knowledge_base_docs),
              p("knowledge_base_docs"), f"must be two integers >= 0 (local, global), got {self.knowledge_base_docs}")
        check(len(self.data) >= 1, p("data"), "needs 'builtin' or at least one NAME=PATH")
        for i, spec in enumerate(self.data):
            try:
                parse_data_spec(spec)
            except ValueError as e:
                raise ConfigError(f"{p('data')}[{i}]", str(e)) from None
        self.model_config(path)  # validates the model overrides (errors under <path>.model.<field>)
        try:
            source = self.data_source()
        except ValueError as e:
            raise ConfigError(p("data"), str(e)) from None
        try:
            source.check_tasks(self.tasks)
        except ValueError as e:
            raise ConfigError(p("tasks"), str(e)) from None

    # -- derived --------------------------------------------------------------------------------
    def model_config(self, path: str = ""):
        """The :class:`~mtsc_sdr.model.ModelConfig`: the preset's, with ``model`` overrides and the
        run's ``retrieval_k``."""
        where = f"{path}.model" if path else "model"
        check("retrieval_k" not in self.model, f"{where}.retrieval_k",
              "is the run's retrieval_k (a top-level field), not a model field to set")
        base = ModelConfig.micro() if self.preset == "micro" else ModelConfig.default()
        return ModelConfig.from_dict({**to_dict(base), **self.model, "retrieval_k": self.retrieval_k}, where)

    def data_source(self) -> DataSource:
        """The :class:`~mtsc_sdr.data.sources.DataSource` of ``data`` at the model's input sizes."""
        return DataSource(self.data, InputSizes.of(self.model_config()))

    def pool_size(self, task: str) -> int:
        """Built-in examples of ``task`` in the training pool (``task_examples`` or ``examples_per_task``)."""
        return self.task_examples.get(task, self.examples_per_task)

    def weights(self) -> list[float]:
        """Sampling probabilities of ``tasks`` (sum 1)."""
        w = list(self.task_weights) if self.task_weights is not None else [1.0] * len(self.tasks)
        s = float(sum(w))
        return [x / s for x in w]

    def output_dir(self) -> Path:
        """``checkpoint_dir`` or the preset's default."""
        return Path(self.checkpoint_dir) if self.checkpoint_dir else default_checkpoint_dir(self.preset)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def preset_values(cls, preset: str) -> dict[str, Any]:
        """The field values of a preset (``default`` or ``micro``)."""
        if preset == "default":
            return to_dict(cls())
        if preset == "micro":
            return to_dict(replace(cls(), preset="micro", steps=20, batch_size=4, warmup_steps=2,
                                   examples_per_task=16, tokenizer_scenes=150, checkpoint_every=10,
                                   log_every=5, lr=2e-3, budgets=(64, 128)))
        raise ConfigError("preset", f"expected one of ['default', 'micro'], got {preset!r}")

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> "TrainConfig":
        """The preset named by ``data['preset']`` (default ``default``) overridden by ``data``."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(path, f"expected a mapping, got {data!r}")
        preset = data.get("preset", "default")
        if preset not in ("default", "micro"):
            raise ConfigError(f"{path}.preset" if path else "preset",
                              f"expected one of ['default', 'micro'], got {preset!r}")
        return from_dict(cls, {**cls.preset_values(preset), **data}, path)

    @classmethod
    def micro(cls) -> "TrainConfig":
        return cls.from_dict({"preset": "micro"})

    @classmethod
    def default(cls) -> "TrainConfig":
        return cls.from_dict({})

    @classmethod
    def load(cls, file: str | Path, overrides: Optional[dict[str, Any]] = None) -> "TrainConfig":
        """Read YAML ``file`` (its top level, or a ``train:`` section if present) plus ``overrides``."""
        data = read_yaml(file)
        path = ""
        if isinstance(data, dict) and set(data) == {"train"}:
            data, path = data["train"], "train"
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(path, f"{file}: expected a mapping, got {data!r}")
        return cls.from_dict({**data, **(overrides or {})}, path)


__all__ = ["OPERATIONAL_FIELDS", "PRECISIONS", "TrainConfig"]
