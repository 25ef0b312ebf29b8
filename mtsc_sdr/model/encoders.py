"""Modality encoders: images, audio and video -> tokens of the LAM width ``d_model``.

Each encoder ends with its input projection to ``d_model`` and returns ``(tokens, mask)``:
tokens float32 (B, T, d_model), mask bool (B, T) (True = a real token). Text is not encoded
here: question ids go through the LAM's own (shared) token embedding, see :mod:`.lam`.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .config import ModelConfig

SAMPLE_RATE_HZ = 16000
WIN = 400   # 25 ms at 16 kHz
HOP = 160   # 10 ms


def _cnn(in_ch: int, ch: int, out_ch: int, n_down: int) -> nn.Sequential:
    """``n_down`` stride-2 3x3 convs, GroupNorm + GELU between: (B, in_ch, H, W) ->
    (B, out_ch, H/2^n, W/2^n). (A full-resolution first conv learnt no faster and made the video
    encoder, 8 frames per clip, the most expensive part of a training step.)"""
    layers: list[nn.Module] = []
    c = in_ch
    for i in range(n_down):
        nxt = out_ch if i == n_down - 1 else ch
        layers += [nn.Conv2d(c, nxt, 3, stride=2, padding=1)]
        if i < n_down - 1:
            layers += [nn.GroupNorm(1, nxt), nn.GELU()]
        c = nxt
    return nn.Sequential(*layers)


class ImageEncoder(nn.Module):
    """Images float32 (B, 3, H, W) in [0, 1] -> tokens (B, image_tokens, d_model), one per cell of
    a sqrt(image_tokens)-square grid (row-major), mask all True.

    Each token is the sum of three parts: the CNN's features of the cell (projected to the LAM
    width and layer-normed), a linear embedding of the cell's raw pixels (p x p x 3, p =
    image_size / grid; it hands the LAM exact colour and detail that a short-trained CNN blurs,
    and gives reconstruction a near-linear path) and a learned grid position embedding.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        grid = int(round(math.sqrt(cfg.image_tokens)))
        n_down = int(round(math.log2(cfg.image_size // grid)))
        self.cell_px = cfg.image_size // grid
        self.cnn = _cnn(3, cfg.cnn_channels, cfg.cnn_channels, n_down)
        self.proj = nn.Linear(cfg.cnn_channels, cfg.d_model)  # input projection to the LAM width
        self.norm = nn.LayerNorm(cfg.d_model)
        self.pixels = nn.Linear(3 * self.cell_px ** 2, cfg.d_model)
        self.pos = nn.Parameter(torch.zeros(cfg.image_tokens, cfg.d_model))
        nn.init.normal_(self.pos, std=0.02)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image * 2.0 - 1.0
        f = self.cnn(x)                                                  # (B, C, g, g)
        cells = F.unfold(x, self.cell_px, stride=self.cell_px).transpose(1, 2)  # (B, g*g, 3 p^2)
        tokens = self.norm(self.proj(f.flatten(2).transpose(1, 2))) + self.pixels(cells) + self.pos
        return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)


def mel_filterbank(n_mels: int, n_fft: int = WIN, sample_rate_hz: int = SAMPLE_RATE_HZ,
                   f_min_hz: float = 0.0, f_max_hz: float | None = None) -> torch.Tensor:
    """Triangular HTK-mel filters, float32 (n_fft // 2 + 1, n_mels), area-normalised (Slaney)."""
    f_max_hz = sample_rate_hz / 2 if f_max_hz is None else f_max_hz
    mel = lambda f: 2595.0 * math.log10(1.0 + f / 700.0)  # noqa: E731
    mel_pts = torch.linspace(mel(f_min_hz), mel(f_max_hz), n_mels + 2, dtype=torch.float64)
    hz = 700.0 * (10.0 ** (mel_pts / 2595.0) - 1.0)                     # (n_mels + 2,)
    bins = torch.linspace(0, sample_rate_hz / 2, n_fft // 2 + 1, dtype=torch.float64)[:, None]
    lo, mid, hi = hz[:-2], hz[1:-1], hz[2:]
    up = (bins - lo) / (mid - lo)
    down = (hi - bins) / (hi - mid)
    fb = torch.clamp(torch.minimum(up, down), min=0.0) * (2.0 / (hi - lo))
    return fb.float()


class LogMel(nn.Module):
    """Waveform float32 (B, n) at 16 kHz -> log-mel float32 (B, n_mels, frames), frames =
    n // HOP + 1 (centred 25 ms Hann windows every 10 ms), ``log(mel power + 1e-6)``."""

    def __init__(self, n_mels: int):
        super().__init__()
        self.register_buffer("window", torch.hann_window(WIN), persistent=False)
        self.register_buffer("fb", mel_filterbank(n_mels), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wave, n_fft=WIN, hop_length=HOP, window=self.window, center=True,
                          return_complex=True)                         # (B, F, frames)
        power = spec.real ** 2 + spec.imag ** 2
        return torch.log(torch.einsum("bft,fm->bmt", power, self.fb) + 1e-6)


#: Fixed standardisation of :class:`LogMel` output (natural-log mel power): the built-in clips
#: average about -11.5 with a spread of about 2.2; a fixed affine keeps loudness information
#: (which per-clip normalisation would remove) while giving the convolutions inputs near unit scale.
LOGMEL_MEAN, LOGMEL_STD = -11.5, 2.2


class AudioEncoder(nn.Module):
    """Log-mel front end + conv + one transformer layer: audio float32 (B, n) at 16 kHz with
    ``lengths`` int64 (B,) in samples -> tokens (B, audio_tokens, d_model), mask (B, audio_tokens).

    Audio is cropped / zero-padded to ``audio_max_s``; token t covers the time span
    [t, t+1) * audio_max_s / audio_tokens and is masked out when it starts after the clip ends.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_samples = int(round(cfg.audio_max_s * SAMPLE_RATE_HZ))
        self.n_tokens = cfg.audio_tokens
        self.logmel = LogMel(cfg.n_mels)
        c = cfg.cnn_channels
        self.conv = nn.Sequential(nn.Conv1d(cfg.n_mels, c, 3, stride=2, padding=1), nn.GELU(),
                                  nn.Conv1d(c, c, 3, stride=2, padding=1), nn.GELU())
        self.pool = nn.AdaptiveAvgPool1d(cfg.audio_tokens)
        self.proj = nn.Linear(c, cfg.d_model)
        self.pos = nn.Parameter(torch.randn(cfg.audio_tokens, cfg.d_model) * 0.02)
        self.mixer = nn.TransformerEncoderLayer(cfg.d_model, cfg.attention_heads, cfg.ffn_dim,
                                                cfg.dropout, activation="gelu", batch_first=True,
                                                norm_first=True)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`features` then :meth:`encode_features`."""
        return self.encode_features(*self.features(audio, lengths))

    def features(self, audio: torch.Tensor, lengths: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """The signal-processing front end: audio float32 (B, n) cropped / zero-padded to
        ``n_samples`` -> standardised log-mel float32 (B, n_mels, frames) and lengths int64 (B,)
        in samples (n when not given, at most ``n_samples``). It stays outside exported encode
        graphs (:mod:`mtsc_sdr.compress.graph`): ONNX Runtime's STFT took 27x torch's time."""
        b, n = audio.shape
        if n >= self.n_samples:
            audio = audio[:, :self.n_samples]
        else:
            audio = torch.nn.functional.pad(audio, (0, self.n_samples - n))
        if lengths is None:
            lengths = torch.full((b,), n, dtype=torch.int64, device=audio.device)
        return (self.logmel(audio) - LOGMEL_MEAN) / LOGMEL_STD, lengths.clamp(max=self.n_samples)

    def encode_features(self, mel: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """mel float32 (B, n_mels, frames), lengths int64 (B,) -> tokens (B, audio_tokens, d),
        mask (B, audio_tokens)."""
        x = self.conv(mel)                                               # (B, C, frames / 4)
        tokens = self.proj(self.pool(x).transpose(1, 2)) + self.pos    # (B, T, d)
        start = torch.arange(self.n_tokens, device=mel.device) * (self.n_samples / self.n_tokens)
        mask = start[None, :] < lengths[:, None]
        mask[:, 0] = True
        tokens = self.mixer(tokens, src_key_padding_mask=~mask)
        return tokens, mask


class VideoEncoder(nn.Module):
    """Per-frame CNN (the image encoder's design, own weights) + temporal transformer layer:
    video float32 (B, T, 3, H, W) in [0, 1] -> tokens (B, T, d_model), one per frame; mask all True.

    Each frame's (C, g, g) feature map is flattened (keeping where things are, which motion
    captions need) and projected to d_model; a learned frame-position embedding is added.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        grid = int(round(math.sqrt(cfg.image_tokens)))
        n_down = int(round(math.log2(cfg.image_size // grid)))
        self.cnn = _cnn(3, cfg.cnn_channels, cfg.cnn_channels, n_down)
        self.proj = nn.Linear(cfg.cnn_channels * grid * grid, cfg.d_model)
        self.pos = nn.Parameter(torch.randn(cfg.video_frames, cfg.d_model) * 0.02)
        self.temporal = nn.TransformerEncoderLayer(cfg.d_model, cfg.attention_heads, cfg.ffn_dim,
                                                   cfg.dropout, activation="gelu", batch_first=True,
                                                   norm_first=True)
        self.frames = cfg.video_frames

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t = video.shape[:2]
        if t != self.frames:
            raise ValueError(f"video must have {self.frames} frames (model config video_frames), got {t}")
        f = self.cnn(video.flatten(0, 1) * 2.0 - 1.0)                  # (B*T, C, g, g)
        tokens = self.proj(f.flatten(1)).view(b, t, -1) + self.pos
        tokens = self.temporal(tokens)
        return tokens, torch.ones((b, t), dtype=torch.bool, device=tokens.device)
