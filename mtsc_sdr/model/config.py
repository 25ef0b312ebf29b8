"""Model configuration: one validated dataclass with ``micro()`` and ``default()`` presets.

Build it from a dict or YAML with :func:`mtsc_sdr.config.from_dict` (errors name the field, e.g.
``model.rate_table[2]: expected an integer, got 'x'``). Widths are in features, lengths in tokens,
bandwidth in complex channel symbols, SNR in dB (Es/N0, :mod:`mtsc_sdr.conventions`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from mtsc_sdr.config import check, from_dict

#: LAM backbone kind -> the module of :mod:`mtsc_sdr.model.backbones` that implements it (the
#: backbone registry; here so that ``ModelConfig`` can check its ``backbone`` field without
#: importing the backbones). Detection of a local checkpoint's kind tries them in this order.
BACKBONE_MODULES: dict[str, str] = {"bart": "mtsc_sdr.model.backbones.bart",
                                     "minilm": "mtsc_sdr.model.backbones.minilm"}
#: values of ``ModelConfig.lam_init`` and ``ModelConfig.lam_tuning``
LAM_INITS, LAM_TUNINGS = ("pretrained", "random"), ("lora", "full")


@dataclass
class ModelConfig:
    """Sizes of every part of the MTSC model.

    Attributes:
        d_model: LAM width; every modality encoder projects to it, task semantics have it.
        encoder_layers, decoder_layers, attention_heads, ffn_dim: the backbone's sizes (ignored
            when ``lam_path`` is set: the checkpoint's own config wins).
        max_positions: the backbone's learned position table length (encoder input and task queries).
        dropout: dropout inside the backbone and the small transformers (0 by default: in 1000-step
            training it only slowed learning; on val at 20 dB, image captions CIDEr 100 with 0
            vs 54 with 0.1, audio captions 355 vs 273).
        max_question_len: question tokens kept (longer questions are truncated with a warning).
        max_output_len: tokens the text decoder produces at most (answers and captions), incl. </s>.
        image_size: input images are (3, image_size, image_size); 32 for everything built in.
        image_tokens: tokens per image; the CNN stride gives a sqrt(image_tokens)^2 grid.
        cnn_channels: channels of the image / per-frame CNNs.
        audio_max_s: audio is cropped / zero-padded to this many seconds (16 kHz).
        n_mels: mel bands of the log-mel front end (25 ms window, 10 ms hop).
        audio_tokens: tokens per audio clip (each covers audio_max_s / audio_tokens seconds).
        video_frames: frames per video (the temporal model gives one token per frame).
        task_queries: Q, learned queries per task fed to the LAM decoder -> task semantics (B, Q, d).
        text_decoder_layers: layers of the client's autoregressive text decoder.
        rate_table: symbols per kept token (complex channel uses) for each rate index; the rate
            index (0..len-1) is what the frame header carries.
        rate_snr_thresholds_db: ascending, len(rate_table) - 1 values giving the SNR floor on
            symbols per token: below the first at least the last (most robust) entry, above the
            last any entry; the largest allowed rate that keeps every token is used, else the
            floor itself (:func:`mtsc_sdr.model.jsc.choose_rate`).
        symbols_per_item: default bandwidth budget, complex symbols per item.
        backbone: the LAM backbone, a kind of :mod:`mtsc_sdr.model.backbones` (``bart``: the
            project's own small BART). With ``lam_path`` set, the checkpoint's kind wins.
        lam_path: a local Hugging Face checkpoint directory (``--lam PATH``, e.g. BART-base) or
            None for the project's own backbone.
        lam_init, lam_tuning, lora_rank, lora_alpha: how a backbone with packaged pre-trained
            weights (``minilm``) starts and trains: ``lam_init`` ``pretrained`` (the packaged
            weights) or ``random`` (the same architecture randomly initialised, always trained
            fully: "SemCom without LAM"); ``lam_tuning`` ``lora`` (the paper's phase I: the
            pre-trained layers frozen, LoRA adapters of rank ``lora_rank`` and scale
            ``lora_alpha / lora_rank`` trained) or ``full`` (every weight trained). A local
            pre-trained BART (``lam_path``) follows ``lam_tuning`` and the LoRA sizes too; the
            project's own BART ignores all four (random init, trained fully). With ``minilm``
            the sizes above come from its weights.
        analog_image: the dense image task (reconstruction) is sent with the linear analog code
            of :mod:`.analog` (PCA of the training images + LMMSE, fit when training starts):
            its task semantics carry the LMMSE coefficient estimates, which the client
            synthesises into the image (learned corrections on top lost up to 0.3 dB at 15-20 dB,
            see :mod:`.analog`). Training still sends the task through the learned token path,
            image encoder -> LAM -> JSC -> LAM decoder -> image decoder: its loss teaches the
            shared image encoder the pixel detail that VQA and captioning need (trained without
            it, the release recipe reached 70 % VQA instead of 88 %). False: the token path at
            inference too (checkpoints written before this field existed load that way).
        context_tokens: retrieval-augmented generation (:mod:`.knowledge`): at most this many
            tokens of retrieved knowledge join a task with a question, on each side -- the
            client's local snippets after the question in the LAM encoder's input, the base
            station's global snippets as extra memory the LAM decoder cross-attends to. 0 (the
            default): a model without retrieval inputs.
        query_adapter_dim: a model with ``context_tokens`` may carry a learned query adapter
            (:func:`.knowledge.adapted_query`): a (dim, dim) matrix that corrects the question's
            sentence embedding before it searches a knowledge base, fit for one embedder of this
            dimension. 0 (the default): none; questions search with their plain embedding.
        query_adapter_embedder: the sha256 of the embedder's weights the adapter was fit for; with
            another embedder the adapter is not applied.
        retrieval_k: snippets the model was trained to read from each knowledge base per question
            item (the training run's ``retrieval_k``); what ``--kb`` retrieves unless
            ``--retrieval-k`` says otherwise. Checkpoints written before this field existed were
            trained with 2.
    """

    d_model: int = 128
    encoder_layers: int = 2
    decoder_layers: int = 2
    attention_heads: int = 4
    ffn_dim: int = 512
    max_positions: int = 128
    dropout: float = 0.0
    max_question_len: int = 24
    max_output_len: int = 48
    image_size: int = 32
    image_tokens: int = 16
    cnn_channels: int = 64
    audio_max_s: float = 2.0
    n_mels: int = 40
    audio_tokens: int = 16
    video_frames: int = 8
    task_queries: int = 16
    text_decoder_layers: int = 2
    rate_table: tuple[int, ...] = (4, 8, 16, 32)
    rate_snr_thresholds_db: tuple[float, ...] = (0.0, 6.0, 12.0)
    symbols_per_item: int = 512
    backbone: str = "bart"
    lam_path: Optional[str] = None
    lam_init: str = "pretrained"
    lam_tuning: str = "lora"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    analog_image: bool = True
    context_tokens: int = 0
    query_adapter_dim: int = 0
    query_adapter_embedder: str = ""
    retrieval_k: int = 2

    def validate(self, path: str = "") -> None:
        """Range checks; raise :class:`mtsc_sdr.config.ConfigError` naming the field."""
        p = (lambda name: f"{path}.{name}" if path else name)
        for name in ("d_model", "encoder_layers", "decoder_layers", "attention_heads", "ffn_dim",
                     "max_positions", "max_question_len", "max_output_len", "image_size",
                     "image_tokens", "cnn_channels", "n_mels", "audio_tokens", "video_frames",
                     "task_queries", "text_decoder_layers", "symbols_per_item"):
            check(getattr(self, name) >= 1, p(name), f"must be >= 1, got {getattr(self, name)}")
        check(self.d_model % self.attention_heads == 0, p("attention_heads"),
              f"must divide d_model={self.d_model}, got {self.attention_heads}")
        check(self.backbone in BACKBONE_MODULES, p("backbone"),
              f"must be one of {', '.join(sorted(BACKBONE_MODULES))}, got {self.backbone!r}")
        check(self.lam_init in LAM_INITS, p("lam_init"),
              f"must be one of {', '.join(LAM_INITS)}, got {self.lam_init!r}")
        check(self.lam_tuning in LAM_TUNINGS, p("lam_tuning"),
              f"must be one of {', '.join(LAM_TUNINGS)}, got {self.lam_tuning!r}")
        check(self.lora_rank >= 1, p("lora_rank"), f"must be >= 1, got {self.lora_rank}")
        check(self.lora_alpha > 0, p("lora_alpha"), f"must be > 0, got {self.lora_alpha}")
        check(0.0 <= self.dropout < 1.0, p("dropout"), f"must be in [0, 1), got {self.dropout}")
        grid = int(round(self.image_tokens ** 0.5))
        check(grid * grid == self.image_tokens, p("image_tokens"),
              f"must be a square number, got {self.image_tokens}")
        check(self.image_size % grid == 0 and (self.image_size // grid) & (self.image_size // grid - 1) == 0,
              p("image_tokens"), f"image_size/sqrt(image_tokens) must be a power of two, "
              f"got {self.image_size}/{grid}")
        check(self.audio_max_s > 0, p("audio_max_s"), f"must be > 0, got {self.audio_max_s}")
        check(len(self.rate_table) >= 1 and all(r >= 1 for r in self.rate_table), p("rate_table"),
              f"must be symbols-per-token values >= 1, got {list(self.rate_table)}")
        check(list(self.rate_table) == sorted(set(self.rate_table)), p("rate_table"),
              f"must be strictly increasing, got {list(self.rate_table)}")
        check(len(self.rate_snr_thresholds_db) == len(self.rate_table) - 1, p("rate_snr_thresholds_db"),
              f"needs len(rate_table) - 1 = {len(self.rate_table) - 1} values, "
              f"got {len(self.rate_snr_thresholds_db)}")
        check(list(self.rate_snr_thresholds_db) == sorted(self.rate_snr_thresholds_db),
              p("rate_snr_thresholds_db"), f"must be ascending, got {list(self.rate_snr_thresholds_db)}")
        check(self.symbols_per_item >= self.rate_table[-1], p("symbols_per_item"),
              f"must fit one token at the largest rate ({self.rate_table[-1]}), got {self.symbols_per_item}")
        check(self.context_tokens >= 0, p("context_tokens"), f"must be >= 0, got {self.context_tokens}")
        check(self.query_adapter_dim >= 0, p("query_adapter_dim"), f"must be >= 0, got {self.query_adapter_dim}")
        check(self.retrieval_k >= 1, p("retrieval_k"), f"must be >= 1, got {self.retrieval_k}")
        check(not self.query_adapter_dim or self.context_tokens, p("query_adapter_dim"),
              "a query adapter needs a model with retrieval inputs (context_tokens > 0)")
        need = 1 + max(self.image_tokens + self.max_question_len + self.context_tokens, self.audio_tokens,
                       self.video_frames)
        check(self.max_positions >= max(need, self.task_queries), p("max_positions"),
              f"must cover the longest encoder input ({need} tokens) and the task queries "
              f"({self.task_queries}), got {self.max_positions}")

    def analog_coefficients(self) -> int:
        """C, coefficients the analog image code keeps: 2 symbols_per_item - 2, at most
        task_queries * d_model (the downlink's semantic slots,
        :func:`mtsc_sdr.model.split.analog_slots`). A full budget sends all but the last
        :data:`mtsc_sdr.model.analog.SCALE_REALS` - 2 of them (those reals carry the scale)."""
        return min(2 * self.symbols_per_item - 2, self.task_queries * self.d_model)

    @classmethod
    def from_dict(cls, data: dict, path: str = "model") -> "ModelConfig":
        """Validated config from a mapping (errors name the field under ``path``)."""
        return from_dict(cls, data, path)

    @classmethod
    def default(cls) -> "ModelConfig":
        """The project's own small BART (d_model 128, 2+2 layers): trainable on 2 CPU cores."""
        cfg = cls()
        cfg.validate()
        return cfg

    @classmethod
    def micro(cls) -> "ModelConfig":
        """A tiny configuration for tests (forward + backward in milliseconds)."""
        cfg = replace(cls(), d_model=32, encoder_layers=1, decoder_layers=1, attention_heads=2,
                      ffn_dim=64, max_positions=64, dropout=0.0, max_question_len=12, image_tokens=16,
                      max_output_len=16, cnn_channels=8, n_mels=16, audio_tokens=8,
                      video_frames=8, task_queries=4, text_decoder_layers=1, symbols_per_item=128)
        cfg.validate()
        return cfg
