"""The model split at the radio link: :class:`ClientModel` | channel | :class:`ServerModel`.

Tensors crossing the cut
------------------------
Uplink (client -> base station, :class:`Uplink`; over the air as IQ + frame header):

* ``symbols`` complex64 (B, S), S = budget (complex symbols per item). Unit average power over
  the first ``n_symbols = n_tokens * rate_table[rate_idx]`` symbols of each row, zeros after;
  only those go on the air.
* ``rate_idx`` int64 (B,): index into ``ModelConfig.rate_table`` (frame header).
* ``n_tokens`` int64 (B,): kept tokens (implied by the payload length: n_symbols // rate).
* ``task_ids`` int64 (B,): :attr:`mtsc_sdr.tasks.TaskSpec.id` (frame header).

Downlink (base station -> client, control link): ``TaskSemantics.semantics`` float32
(B, Q, d_model), Q = ``task_queries``.

The base station also needs ``snr_est_db`` float32 (B,), its own SNR estimate after equalisation.
:class:`MTSCModel` wires the halves through the torch channel in one process (training and
simulation); its outputs equal the split halves run by hand with the same channel draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from mtsc_sdr import tasks
from mtsc_sdr.channel.torch_channel import apply_channel

from .analog import AnalogEstimator, AnalogImageCode, ItemCode
from .backbones import Backbone
from .config import ModelConfig
from .encoders import AudioEncoder, ImageEncoder, VideoEncoder
from .heads import head_for
from .jsc import JSCDecoder, JSCEncoder, choose_rate
from .knowledge import KnowledgeEncoder, adapted_query, context_ids, padded
from .lam import LAMDecoder, LAMEncoder
from .tokenizer import TextTokenizer

_MODALITY = {"image": 0, "audio": 1, "video": 2, "text": 3}


@dataclass
class Uplink:
    """What the client sends (see the module docstring for the cut).

    Attributes:
        symbols: complex64 (B, S). rate_idx, n_tokens, task_ids: int64 (B,).
        kept_positions: int64 (B, K) encoder positions of the kept tokens (-1 padding) and
        importance: float32 (B, L) logits -- client-side diagnostics, never transmitted.
    """

    symbols: torch.Tensor
    rate_idx: torch.Tensor
    n_tokens: torch.Tensor
    task_ids: torch.Tensor
    kept_positions: Optional[torch.Tensor] = field(default=None, repr=False)
    importance: Optional[torch.Tensor] = field(default=None, repr=False)

    def n_symbols(self, rate_table) -> torch.Tensor:
        """int64 (B,) symbols actually used per item."""
        return self.n_tokens * torch.as_tensor(rate_table, device=self.rate_idx.device)[self.rate_idx]


@dataclass
class TaskSemantics:
    """What the base station returns: ``semantics`` float32 (B, Q, d_model)."""

    semantics: torch.Tensor


def _task_ids(task: str, b: int, device) -> torch.Tensor:
    return torch.full((b,), tasks.get(task).id, dtype=torch.int64, device=device)


def _output_kinds() -> list[str]:
    """The output kinds of the registered tasks, in the order their first task's id gives."""
    return list(dict.fromkeys(spec.output for spec in tasks.specs()))


def _per_item(snr_db, b: int, device) -> torch.Tensor:
    t = torch.as_tensor(snr_db, dtype=torch.float32, device=device)
    return t.expand(b).clone() if t.ndim == 0 else t


class ClientModel(nn.Module):
    """Modality encoders, LAM encoder, JSC encoder and the task decoders: one per output kind of
    the registered tasks (:mod:`.heads`; ``text_decoder`` and ``image_decoder`` for the built-in
    ones). The per-task table ``task_embed`` has :func:`mtsc_sdr.tasks.table_size` rows."""

    def __init__(self, cfg: ModelConfig, lam_encoder: LAMEncoder, tokenizer: TextTokenizer):
        super().__init__()
        self.cfg, self.tokenizer = cfg, tokenizer
        d = cfg.d_model
        self.image_encoder = ImageEncoder(cfg)
        self.audio_encoder = AudioEncoder(cfg)
        self.video_encoder = VideoEncoder(cfg)
        self.task_embed = nn.Parameter(torch.randn(tasks.table_size(), d) * 0.02)
        self.modality_embed = nn.Parameter(torch.zeros(len(_MODALITY), d))
        #: marks the local knowledge snippets' tokens (:mod:`.knowledge`); only with context_tokens
        self.context_embed = nn.Parameter(torch.zeros(d)) if cfg.context_tokens else None
        #: the learned query adapter (dim, dim) (:func:`.knowledge.adapted_query`); fit, not trained
        #: by the model's loss (:mod:`mtsc_sdr.rag.adapter`); zeros: the plain embedding
        if cfg.query_adapter_dim:
            self.register_buffer("query_adapter", torch.zeros(cfg.query_adapter_dim, cfg.query_adapter_dim))
        else:
            self.query_adapter = None
        self.lam_encoder = lam_encoder
        self.jsc_encoder = JSCEncoder(cfg)
        #: the dense image task's linear analog code (:mod:`.analog`), None without ``analog_image``
        self.analog = (AnalogImageCode(3 * cfg.image_size ** 2, cfg.analog_coefficients())
                       if cfg.analog_image else None)
        for kind in _output_kinds():
            head = head_for(kind)
            setattr(self, head.attr, head.build(cfg, lam_encoder, tokenizer))

    @property
    def device(self) -> torch.device:
        return self.task_embed.device

    def question_ids(self, questions: list[str]) -> torch.Tensor:
        """Questions -> int64 (B, T) padded with <pad>; each truncated to ``max_question_len``
        with a warning."""
        rows = [self.tokenizer.encode_question(q or "", self.cfg.max_question_len) for q in questions]
        return padded(rows, self.tokenizer.pad_id, self.device)

    def encoder_inputs(self, batch: dict, task: str) -> dict[str, torch.Tensor]:
        """The tensors ``task``'s encode starts from (what an exported encode graph takes,
        :mod:`mtsc_sdr.compress.graph`), by name:

        * the modality's field: ``image`` float32 (B, 3, H, W), ``video`` float32 (B, T, 3, H, W),
          or for audio its log-mel front end's output (:meth:`~.encoders.AudioEncoder.features`):
          ``audio_mel`` float32 (B, n_mels, frames) and ``audio_length`` int64 (B,) in samples;
        * ``question_ids`` int64 (B, T_q) for a task with a question (:meth:`question_ids`);
        * ``context_ids`` int64 (B, T_c) for a task with a question in a model with
          ``context_tokens``: the batch's ``local_context`` snippets (:func:`.knowledge.context_ids`).
        """
        spec = tasks.get(task)
        if spec.modality == "audio":
            length = batch.get("audio_length")
            mel, length = self.audio_encoder.features(batch["audio"].to(self.device),
                                                      None if length is None else length.to(self.device))
            out = {"audio_mel": mel, "audio_length": length}
        else:
            out = {spec.modality: batch[spec.modality].to(self.device)}
        if spec.question:
            out["question_ids"] = self.question_ids(batch["question"])
            if self.cfg.context_tokens:
                local = batch.get("local_context") or [""] * len(batch["question"])
                out["context_ids"] = context_ids(self.tokenizer, list(local), self.cfg.context_tokens, self.device)
        return out

    def embed_inputs(self, batch: dict, task: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder input ``[task token ; modality tokens ; question tokens ; local knowledge tokens]``
        (the last two for tasks with a question; knowledge only with ``context_tokens``).

        Args:
            batch: :func:`mtsc_sdr.data.collate` output for one task.
        Returns:
            inputs_embeds float32 (B, L, d), mask bool (B, L).
        """
        return self.embed(task, self.encoder_inputs(batch, task))

    def retrieval_query(self, vectors, embedder_sha256: str):
        """Questions' sentence embeddings float32 (Q, dim), made by the embedder whose weights have
        ``embedder_sha256`` -> the vectors that search the knowledge bases, float32 (Q, dim): adapted
        by the learned query adapter (:func:`.knowledge.adapted_query`) when the model has one fit
        for that embedder, else unchanged. The client queries its local base with them and sends
        them to the base station for the global one."""
        if self.query_adapter is None or embedder_sha256 != self.cfg.query_adapter_embedder:
            return adapted_query(vectors, None)
        return adapted_query(vectors, self.query_adapter.detach().cpu().numpy())

    def embed(self, task: str, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`embed_inputs` from :meth:`encoder_inputs`' tensors: the modality encoder, the
        task and modality embeddings and the question's token embeddings -> inputs_embeds float32
        (B, L, d), mask bool (B, L)."""
        spec = tasks.get(task)
        if spec.modality == "audio":
            tok, mask = self.audio_encoder.encode_features(inputs["audio_mel"], inputs["audio_length"])
        else:
            tok, mask = {"image": self.image_encoder, "video": self.video_encoder}[spec.modality](inputs[spec.modality])
        b = tok.shape[0]
        parts = [self.task_embed[_task_ids(task, b, self.device)][:, None],
                 tok + self.modality_embed[_MODALITY[spec.modality]]]
        masks = [torch.ones((b, 1), dtype=torch.bool, device=self.device), mask]
        if spec.question:
            ids = inputs["question_ids"]
            parts.append(self.lam_encoder.embed_text(ids) + self.modality_embed[_MODALITY["text"]])
            masks.append(ids != self.tokenizer.pad_id)
        if "context_ids" in inputs:
            ids = inputs["context_ids"]
            parts.append(self.lam_encoder.embed_text(ids) + self.modality_embed[_MODALITY["text"]] + self.context_embed)
            masks.append(ids != self.tokenizer.pad_id)
        return torch.cat(parts, 1), torch.cat(masks, 1)

    def encode(self, batch: dict, task: str, snr_db, budget: Optional[int] = None, analog: bool = True) -> Uplink:
        """One item batch -> :class:`Uplink`: :meth:`project` then :meth:`uplink`.

        Args:
            batch: collated examples of ``task``.
            snr_db: scalar or (B,) SNR (dB) the client expects (its CSI); picks the rate.
            budget: complex symbols per item (default ``cfg.symbols_per_item``).
            analog: False sends a dense task through the learned token path even with the analog
                code (training does, see :meth:`MTSCModel.loss`).
        """
        analog = analog and self.sends_analog(task)
        inputs = self.encoder_inputs(batch, task) if not analog else {"image": batch["image"].to(self.device)}
        snr = _per_item(snr_db, next(iter(inputs.values())).shape[0], self.device)
        return self.uplink(task, self.project(task, inputs, snr, analog), snr, budget, analog)

    def project(self, task: str, inputs: dict[str, torch.Tensor], snr_db: torch.Tensor,
                analog: bool = False) -> list[torch.Tensor]:
        """The encode's fixed-shape part, which other client runtimes run as one exported graph
        (:mod:`mtsc_sdr.compress.graph`): modality encoder -> LAM encoder -> every token's JSC code
        at every rate (:meth:`~.jsc.JSCEncoder.project`); with ``analog``, the analog image code's
        coefficients.

        Args:
            inputs: :meth:`encoder_inputs`' tensors (``analog``: just ``image``); snr_db: float (B,).
        Returns:
            ``[score (B, L), codes[0] (B, L, 2 s_0), ...]``, or ``[coefficients float32 (B, C)]``.
        """
        if analog:
            return [self.analog.analyse(inputs["image"])]
        x, mask = self.embed(task, inputs)
        score, codes = self.jsc_encoder.project(self.lam_encoder(x, mask), mask, snr_db)
        return [score, *codes]

    def uplink(self, task: str, projected: list[torch.Tensor], snr_db: torch.Tensor,
               budget: Optional[int] = None, analog: bool = False) -> Uplink:
        """:meth:`project`'s output -> :class:`Uplink`: the rate, the kept tokens and the power
        (:meth:`~.jsc.JSCEncoder.assemble`), or the analog code's symbols."""
        if analog:
            return self._analog_uplink(projected[0], task, snr_db, budget)
        code = self.jsc_encoder.assemble(projected[0], projected[1:], snr_db, budget)
        return Uplink(code.symbols, code.rate_idx, code.n_tokens, _task_ids(task, code.symbols.shape[0], self.device),
                      code.kept_positions, code.importance)

    def sends_analog(self, task: str) -> bool:
        """Whether ``task`` goes on the air by the analog image code (a dense task, with the code)."""
        return self.analog is not None and tasks.get(task).dense

    def _analog_uplink(self, coef: torch.Tensor, task: str, snr_db: torch.Tensor, budget: Optional[int]) -> Uplink:
        """The dense image task from its coefficients (B, C): :meth:`analog_reals` as symbols.
        Nothing is selected: token j carries the j-th run of coefficients, by decreasing variance
        (a smaller budget drops the least important), so ``kept_positions`` is 1..n_tokens and
        ``importance`` (B, 1 + budget // rate_table[0]) ranks them in that order (-j for token j;
        -inf for the task token, never sent)."""
        b = coef.shape[0]
        budget = self.cfg.symbols_per_item if budget is None else int(budget)
        reals, rate_idx, n_tokens = self.analog_reals(coef, snr_db, budget)
        pos = torch.arange(1, int(n_tokens.max()) + 1, device=self.device)[None, :].expand(b, -1)
        pos = torch.where(pos <= n_tokens[:, None], pos, torch.full_like(pos, -1))
        order = -torch.arange(1 + budget // self.cfg.rate_table[0], dtype=torch.float32, device=self.device)
        importance = order.masked_fill(order == 0, float("-inf")).expand(b, -1)
        return Uplink(torch.view_as_complex(reals), rate_idx, n_tokens, _task_ids(task, b, self.device), pos, importance)

    def analog_reals(self, coef: torch.Tensor, snr_db: torch.Tensor, budget: int, table: Optional[ItemCode] = None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The analog image code of coefficients float32 (B, C) at ``budget`` symbols: the rate
        index is the SNR floor of :func:`~.jsc.choose_rate` (its SNR class, which picks the code's
        power allocation and scale coding at both ends; the header carries it) and the whole
        budget is sent, framed as ``budget // rate`` tokens so that the header and the base station
        treat it like any frame. Fixed shapes, no per-item Python (the encode graphs export it).

        Args:
            snr_db: float (B,). table: :meth:`~.analog.AnalogImageCode.rate_code` of ``budget``
                (default: the code's own, cached; a graph holds it as constants).
        Returns:
            reals float32 (B, budget, 2) (the complex symbols as (re, im)), rate_idx and n_tokens
            int64 (B,).
        """
        thr = self.cfg.rate_snr_thresholds_db
        rate_idx = choose_rate(snr_db, budget, self.cfg.rate_table, thr)
        table = self.analog.rate_code(budget, self.cfg.rate_table, thr) if table is None else table
        reals = self.analog.code(coef, table.select(rate_idx))
        n_tokens = torch.as_tensor([budget // r for r in self.cfg.rate_table], device=coef.device)[rate_idx]
        return reals.view(coef.shape[0], budget, 2), rate_idx, n_tokens

    def analog_image(self, semantics: torch.Tensor) -> Optional[torch.Tensor]:
        """The LMMSE image the server's analog estimate gives (:func:`analog_slots`), float32
        (B, 3, H, W), not clipped; None without the analog code."""
        if self.analog is None:
            return None
        s = self.cfg.image_size
        return self.analog.synthesise(analog_slots(semantics, self.cfg.analog_coefficients()), (3, s, s))

    def prompt_rows(self, questions: list[str], contexts: Optional[list[str]] = None) -> list[list[int]]:
        """The text decoder's prompt per item: the question's ids (at most ``max_question_len``),
        then -- in a model with retrieval inputs -- its local knowledge snippets' ids (at most
        ``context_tokens``): the client generates the answer and holds its own knowledge, so its
        decoder reads the snippets as directly as the question (they also join the LAM encoder's
        input, :meth:`embed`)."""
        rows = [self.tokenizer.encode_question(q or "", self.cfg.max_question_len) for q in questions]
        if self.cfg.context_tokens and contexts is not None:
            rows = [r + (self.tokenizer._ids(c)[:self.cfg.context_tokens] if c else [])
                    for r, c in zip(rows, contexts)]
        return rows

    def target_ids(self, texts: list[str], prompts: Optional[list[str]] = None,
                   contexts: Optional[list[str]] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forcing ids: ``<s> [prompt] target </s>`` per row, right-padded with <pad>.

        ``prompts`` (VQA: the questions; with ``contexts``, the local snippets after them,
        :meth:`prompt_rows`) are tokens the client's text decoder is given before it answers: it
        knows the question anyway, and with it in front every decoder position can look into the
        task semantics with a question-dependent query (a one-word answer after a bare <s> has a
        single, input-independent query to do that with).

        Returns:
            ids int64 (B, T), and ``scored`` bool (B, T - 1): which next-token predictions
            ``ids[:, 1:]`` count in the loss (the target and its </s>, not the prompt or padding).
        """
        prompt_rows = self.prompt_rows(list(prompts or [""] * len(texts)), contexts)
        rows = [[r[0], *p, *r[1:]] for p, r in
                zip(prompt_rows, (self.tokenizer.encode_target(t, self.cfg.max_output_len) for t in texts))]
        t = max(len(r) for r in rows)
        ids = torch.full((len(rows), t), self.tokenizer.pad_id, dtype=torch.int64)
        scored = torch.zeros((len(rows), t - 1), dtype=torch.bool)
        for i, (r, p) in enumerate(zip(rows, prompt_rows)):
            ids[i, :len(r)] = torch.tensor(r, dtype=torch.int64)
            scored[i, len(p):len(r) - 1] = True
        return ids.to(self.device), scored.to(self.device)

    def prompt_ids(self, task: str, questions: Optional[list[str]],
                   contexts: Optional[list[str]] = None) -> Optional[torch.Tensor]:
        """The text decoder's prompt for ``task`` (:meth:`prompt_rows`) for a task with a question
        (VQA; int64 (B, P) padded with <pad>), None for the other tasks."""
        if not tasks.get(task).question:
            return None
        return padded(self.prompt_rows(list(questions), contexts), self.tokenizer.pad_id, self.device)

    def task_loss(self, task: str, semantics: torch.Tensor, batch: dict) -> torch.Tensor:
        """Scalar loss of the task's output kind (:mod:`.heads`): token cross-entropy for text
        (teacher forcing on each example's first reference; a question is the decoder's prompt,
        not scored), ``log10(MSE)`` = -PSNR/10 dB of the batch for images."""
        spec = tasks.get(task)
        return head_for(spec.output).loss(self, spec, semantics, batch)

    @torch.no_grad()
    def decode(self, task: str, downlink: TaskSemantics, max_len: Optional[int] = None,
               questions: Optional[list[str]] = None, contexts: Optional[list[str]] = None):
        """Task outputs from the returned semantics, by the task's output kind (:mod:`.heads`):
        list[str] (answers / captions) for text, float32 (B, 3, H, W) in [0, 1] for images. A
        task with a question (VQA) needs ``questions`` (the client has them: they are the text
        decoder's prompt), and in a model with retrieval inputs its local snippets ``contexts``."""
        spec = tasks.get(task)
        return head_for(spec.output).decode(self, spec, downlink.semantics.to(self.device), questions, max_len,
                                            contexts)


class ServerModel(nn.Module):
    """JSC decoder, learned task queries (one table row per task id, :func:`mtsc_sdr.tasks.table_size`
    rows) and the LAM decoder; with ``context_tokens``, the reader of global knowledge snippets
    (:class:`~.knowledge.KnowledgeEncoder`, which needs the tokenizer's ``vocab_size`` and ``pad_id``)."""

    def __init__(self, cfg: ModelConfig, lam_decoder: LAMDecoder, vocab_size: int = 0, pad_id: int = 0):
        super().__init__()
        self.cfg = cfg
        self.knowledge = KnowledgeEncoder(cfg, vocab_size, pad_id) if cfg.context_tokens else None
        self.jsc_decoder = JSCDecoder(cfg)
        self.task_queries = nn.Parameter(torch.randn(tasks.table_size(), cfg.task_queries, cfg.d_model) * 0.02)
        self.lam_decoder = lam_decoder
        #: LMMSE of the dense image task's analog code (:mod:`.analog`), None without it
        self.analog = AnalogEstimator(cfg.analog_coefficients()) if cfg.analog_image else None
        dense = torch.zeros(tasks.table_size(), dtype=torch.bool)
        dense[[spec.id for spec in tasks.specs() if spec.dense]] = True
        self.register_buffer("dense_task", dense, persistent=False)   # (n_tasks,) see queries()

    def forward(self, symbols: torch.Tensor, rate_idx: torch.Tensor, n_tokens: torch.Tensor,
                snr_est_db, task_ids: torch.Tensor, analog: bool = True,
                knowledge_ids: Optional[torch.Tensor] = None) -> TaskSemantics:
        """symbols complex64 (B, S) (equalised), rate_idx / n_tokens / task_ids int64 (B,),
        snr_est_db scalar or (B,) -> :class:`TaskSemantics` (B, Q, d). With the analog image
        code, a batch of dense items only skips the JSC and LAM decoders (their semantics are the
        LMMSE estimates); ``analog`` False decodes them on the token path (training).
        ``knowledge_ids`` int64 (B, T): the base station's retrieved global snippets
        (:func:`~.knowledge.context_ids`; a model with ``context_tokens`` only), which the LAM
        decoder reads beside the received semantics."""
        if analog and self.decodes_analog(task_ids):
            out = symbols.new_zeros((symbols.shape[0], self.cfg.task_queries, self.cfg.d_model), dtype=torch.float32)
        else:
            sem, mask = self._receive(symbols, rate_idx, n_tokens, snr_est_db)
            memory, memory_mask = self.with_knowledge(sem, mask, knowledge_ids)
            out = self.lam_decoder(self.queries(task_ids, sem), memory, memory_mask)
        if analog:
            out = self._with_analog(out, symbols, rate_idx, n_tokens, snr_est_db, task_ids)
        return TaskSemantics(out)

    def decodes_analog(self, task_ids: torch.Tensor) -> bool:
        """Whether every item of ``task_ids`` (int64 (B,)) is decoded by the analog image code
        alone (dense tasks, with the code), so the JSC and LAM decoders have nothing to do."""
        return self.analog is not None and bool(self.dense_task[task_ids].all())

    def _with_analog(self, out, symbols, rate_idx, n_tokens, snr_est_db, task_ids) -> torch.Tensor:
        """The semantics (B, Q, d) with the dense items' rows replaced by their analog slots
        (:func:`analog_slots`: the LMMSE coefficient estimates); the other items unchanged."""
        dense = self.dense_task[task_ids]
        if self.analog is None or not bool(dense.any()):
            return out
        items = torch.nonzero(dense).flatten()
        n_symbols = n_tokens[items] * torch.as_tensor(self.cfg.rate_table, device=symbols.device)[rate_idx[items]]
        snr = _per_item(snr_est_db, symbols.shape[0], symbols.device)[items]
        coef = self.analog(symbols[items], n_symbols, snr, rate_idx[items], self.cfg.rate_snr_thresholds_db)
        q, d = out.shape[1:]
        slots = torch.zeros((len(items), q * d), dtype=out.dtype, device=out.device)
        slots[:, :coef.shape[1]] = coef
        return out.index_put((items,), slots.view(len(items), q, d))

    def with_knowledge(self, sem: torch.Tensor, mask: torch.Tensor, knowledge_ids: Optional[torch.Tensor]
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """The LAM decoder's memory: the received semantics (B, K, d), followed by the global
        snippets' states (B, T, d) when ``knowledge_ids`` (B, T) are given; and its mask (B, K [+ T])."""
        if knowledge_ids is None:
            return sem, mask
        if self.knowledge is None:
            raise ValueError("knowledge_ids given to a model without retrieval inputs (context_tokens 0)")
        states, kmask = self.knowledge(knowledge_ids.to(sem.device))
        return torch.cat([sem, states.to(sem.dtype)], 1), torch.cat([mask, kmask], 1)

    def _receive(self, symbols, rate_idx, n_tokens, snr_est_db) -> tuple[torch.Tensor, torch.Tensor]:
        """JSC decoding: received semantics (B, K, d) and mask (B, K)."""
        return self.jsc_decoder(symbols, rate_idx, n_tokens, _per_item(snr_est_db, symbols.shape[0], symbols.device))

    def forward_with_attention(self, symbols: torch.Tensor, rate_idx: torch.Tensor, n_tokens: torch.Tensor,
                               snr_est_db, task_ids: torch.Tensor, analog: bool = True,
                               knowledge_ids: Optional[torch.Tensor] = None
                               ) -> tuple[TaskSemantics, torch.Tensor]:
        """As :meth:`forward`, plus the share of the LAM decoder's cross-attention each received
        token gets, float32 (B, K) (training signal for the client's importance head; what the
        global snippets get is left out)."""
        sem, mask = self._receive(symbols, rate_idx, n_tokens, snr_est_db)
        memory, memory_mask = self.with_knowledge(sem, mask, knowledge_ids)
        out, share = self.lam_decoder.forward_with_attention(self.queries(task_ids, sem), memory, memory_mask)
        share = share[:, :sem.shape[1]]
        if analog:
            out = self._with_analog(out, symbols, rate_idx, n_tokens, snr_est_db, task_ids)
        return TaskSemantics(out), share

    def queries(self, task_ids: torch.Tensor, semantics: torch.Tensor) -> torch.Tensor:
        """LAM decoder input (B, Q, d): the task's learned queries; for the dense tasks
        (:attr:`mtsc_sdr.tasks.TaskSpec.dense`, reconstruction) the first min(Q, K) of them plus the
        received semantics (B, K, d) in received order (zeros where a token was not received).

        Reconstruction needs every query to carry one token's detail; cross-attention alone
        must first learn to route each query to its token, and short training blurs the image.
        The sum gives each query a direct path to one token. The text tasks do better without
        it (measured on val after the default 1000 mixed-task steps, 100 items per task, at
        20 dB: image captions CIDEr 110 vs 88 and audio captions 373 vs 359 with the sum for
        reconstruction only instead of for every task; reconstruction 28.7 vs 29.2 dB PSNR)."""
        q = self.task_queries[task_ids]
        k = min(q.shape[1], semantics.shape[1])
        seeded = torch.cat([q[:, :k] + semantics[:, :k], q[:, k:]], dim=1)
        return torch.where(self.dense_task[task_ids][:, None, None], seeded, q)


def analog_slots(semantics: torch.Tensor, n_coef: int) -> torch.Tensor:
    """What a dense task's semantics (B, Q, d) carry with the analog code: its ``n_coef`` LMMSE
    coefficient estimates, row-major (query by query), zeros after -> (B, n_coef)."""
    return semantics.reshape(semantics.shape[0], -1)[:, :n_coef]


def importance_loss(uplink: Uplink, attention: torch.Tensor) -> torch.Tensor:
    """Teach the client's importance head what the server uses: cross-entropy between the share
    of cross-attention each received token got (B, K), detached, and the softmax of the
    importance logits of the kept tokens, averaged over the batch.

    The gate in :class:`~.jsc.JSCEncoder` only hears about tokens that were kept, and only
    relative to each other once the item's power is normalised; this loss ranks every kept token
    (at a full budget, every token) by how much the LAM decoder reads it, so that at a small
    budget the kept ones are those it would have read most."""
    pos = uplink.kept_positions
    valid = pos >= 0
    k = min(pos.shape[1], attention.shape[1])
    pos, valid = pos[:, :k], valid[:, :k]
    scores = uplink.importance.gather(1, pos.clamp(min=0)).masked_fill(~valid, float("-inf"))
    logp = scores.log_softmax(dim=1).masked_fill(~valid, 0.0)
    return -(attention[:, :k].detach() * logp).sum(dim=1).mean()


@dataclass
class LinkResult:
    """One pass of :meth:`MTSCModel.forward`: the uplink, the received symbols (after the
    equaliser), the SNR estimate given to the server (B,), the returned semantics and, when
    asked for, the cross-attention share of each received token (B, K)."""

    uplink: Uplink
    received: torch.Tensor
    snr_est_db: torch.Tensor
    downlink: TaskSemantics
    attention: Optional[torch.Tensor] = None


class MTSCModel(nn.Module):
    """Client + torch channel + server in one process, for training and simulation.

    Build with :func:`mtsc_sdr.model.build_model`. ``backbone`` gives the LAM halves;
    ``backbone_kind`` and ``backbone_config`` (a plain dict) are kept for checkpoints, so a model is
    rebuilt without any download.
    """

    def __init__(self, cfg: ModelConfig, tokenizer: TextTokenizer, backbone: Backbone):
        super().__init__()
        self.cfg, self.tokenizer = cfg, tokenizer
        self.backbone_kind, self.backbone_config = backbone.kind, backbone.config
        self.client = ClientModel(cfg, backbone.encoder, tokenizer)
        self.server = ServerModel(cfg, backbone.decoder, tokenizer.vocab_size, tokenizer.pad_id)

    def base_keys(self) -> set[str]:
        """State-dict keys of the frozen packaged base weights (:meth:`LAMEncoder.base_keys`), which
        checkpoints leave out; empty for a backbone the project trains whole."""
        return ({f"client.lam_encoder.{k}" for k in self.client.lam_encoder.base_keys()}
                | {f"server.lam_decoder.{k}" for k in self.server.lam_decoder.base_keys()})

    def forward(self, batch: dict, task: str, snr_db, *, budget: Optional[int] = None,
                fading: Optional[str] = "rician", k_factor_db=6.0,
                generator: Optional[torch.Generator] = None, attention: bool = False,
                analog: bool = True) -> LinkResult:
        """Client -> channel -> genie one-tap MMSE equaliser -> server (``analog`` False: a dense
        task on the learned token path even with the analog code, as training sends it).

        The channel (:func:`mtsc_sdr.channel.torch_channel.apply_channel`) works on the unit-power
        symbols (``signal_power=1.0``), one fading gain h per item. The equaliser uses the true h
        and N0 (over the air the PHY estimates them); the server gets the post-fading SNR
        ``snr_db + 10 log10 |h|^2`` as its estimate.
        """
        up = self.client.encode(batch, task, snr_db, budget, analog=analog)
        return self.transmit(up, snr_db, fading=fading, k_factor_db=k_factor_db, generator=generator,
                             attention=attention, analog=analog, knowledge_ids=self.knowledge_ids(batch, task))

    def knowledge_ids(self, batch: dict, task: str) -> Optional[torch.Tensor]:
        """The batch's ``global_context`` snippets as the server reads them (int64 (B, T)), for a
        task with a question in a model with ``context_tokens``; else None."""
        if not self.cfg.context_tokens or not tasks.get(task).question:
            return None
        texts = batch.get("global_context") or [""] * len(batch["question"])
        return context_ids(self.tokenizer, list(texts), self.cfg.context_tokens, self.client.device)

    def transmit(self, up: Uplink, snr_db, *, fading: Optional[str] = "rician", k_factor_db=6.0,
                 generator: Optional[torch.Generator] = None, attention: bool = False,
                 analog: bool = True, snr_est_db: Optional[torch.Tensor] = None,
                 knowledge_ids: Optional[torch.Tensor] = None) -> LinkResult:
        """:meth:`forward` from an uplink the client already made (by any client runtime,
        :mod:`mtsc_sdr.compress.runtimes`): channel -> genie equaliser -> server. ``snr_est_db``
        float (B,): the SNR the server is told instead of the genie's (e.g. a PHY's estimate);
        ``knowledge_ids``: the server's global snippets (:meth:`knowledge_ids`)."""
        b = up.symbols.shape[0]
        snr = _per_item(snr_db, b, up.symbols.device)
        ch = apply_channel(up.symbols, snr, fading=fading, k_factor_db=k_factor_db, signal_power=1.0,
                           generator=generator)
        h = ch.h[:, :1]
        y = ch.y * h.conj() / (h.abs() ** 2 + ch.noise_power[:, None])
        snr_est = snr + 10.0 * torch.log10(h.abs()[:, 0] ** 2 + 1e-12) if snr_est_db is None else snr_est_db
        if attention:
            down, share = self.server.forward_with_attention(y, up.rate_idx, up.n_tokens, snr_est, up.task_ids, analog,
                                                             knowledge_ids)
            return LinkResult(up, y, snr_est, down, share)
        return LinkResult(up, y, snr_est, self.server(y, up.rate_idx, up.n_tokens, snr_est, up.task_ids, analog,
                                                      knowledge_ids))

    def loss(self, batch: dict, task: str, snr_db, *, importance_weight: float = 0.0,
             **channel_kwargs) -> torch.Tensor:
        """Scalar training loss of one task batch through the channel: the task loss (see
        :meth:`ClientModel.task_loss`) plus ``importance_weight`` times :func:`importance_loss`."""
        # a dense task trains on the learned token path even with the analog code, which has
        # nothing to train: its reconstruction loss teaches the image encoder the pixel detail VQA
        # and captions need (without it VQA fell from 88 to 70 % on the test split)
        res = self(batch, task, snr_db, attention=importance_weight > 0, analog=False, **channel_kwargs)
        loss = self.client.task_loss(task, res.downlink.semantics, batch)
        if importance_weight > 0:
            loss = loss + importance_weight * importance_loss(res.uplink, res.attention)
        return loss

    @torch.no_grad()
    def predict(self, batch: dict, task: str, snr_db, **channel_kwargs):
        """Task outputs through the channel: list[str] or images (B, 3, H, W)."""
        return self.client.decode(task, self(batch, task, snr_db, **channel_kwargs).downlink,
                                  questions=batch.get("question"), contexts=batch.get("local_context"))
