"""Synthetic audio clips: beep sequences, chirps and noise bursts at 16 kHz, 1-2 s, with captions.

Content key: ``(kind, count, pitch, direction, loudness, freq index, duration index, onset index)``,
split by :func:`mtsc_sdr.data.vocab.split_of_key` like the scenes. Noise waveforms, amplitude
jitter and the faint noise floor come from the item's own generator and are not part of the key.

Timing (fixed): beeps and noise bursts last 0.12 s with 0.10 s gaps, chirps 0.30 s with 0.10 s
gaps; the first event starts at 0.05 + 0.05 * onset index (0..3) seconds; events ramp in and out
over 10 ms. Pitch: low tones 300-450 Hz, high tones 1200-1800 Hz (chirps sweep between f and
2.5 f; noise bursts are band-pass noise centred on f, bandwidth f/2). Loudness: peak amplitude
0.18-0.2 (quiet) or 0.72-0.8 (loud).
"""

from __future__ import annotations

import numpy as np

from .items import AudioClip, AudioEvent
from .vocab import (AUDIO_KINDS, CHIRP_DIRECTIONS, LOUDNESS, PITCHES, draw_in_split, number_word,
                    resolve_split)

SAMPLE_RATE_HZ = 16000
DURATIONS_S: tuple[float, ...] = (1.0, 1.25, 1.5, 1.75, 2.0)
FREQS_HZ: dict[str, tuple[float, ...]] = {"low": (300.0, 350.0, 400.0, 450.0),
                                          "high": (1200.0, 1400.0, 1600.0, 1800.0)}
EVENT_S: dict[str, float] = {"beep": 0.12, "chirp": 0.30, "noise": 0.12}
GAP_S = 0.10
MAX_COUNT: dict[str, int] = {"beep": 4, "chirp": 2, "noise": 4}
PEAK: dict[str, float] = {"quiet": 0.2, "loud": 0.8}
RAMP_S = 0.01
_MODALITY_ID = 1


def draw_audio_key(rng: np.random.Generator) -> tuple:
    """Draw an audio content key (see module docstring)."""
    kind = AUDIO_KINDS[int(rng.integers(len(AUDIO_KINDS)))]
    count = int(rng.integers(1, MAX_COUNT[kind] + 1))
    pitch = PITCHES[int(rng.integers(2))]
    direction = CHIRP_DIRECTIONS[int(rng.integers(2))] if kind == "chirp" else ""
    loudness = LOUDNESS[int(rng.integers(2))]
    return (kind, count, pitch, direction, loudness, int(rng.integers(4)),
            int(rng.integers(len(DURATIONS_S))), int(rng.integers(4)))


def audio_captions(e: AudioEvent, phrasing: str = "seen") -> list[str]:
    """Three ``seen`` phrasings, or two ``held_out`` ones (the same words in sentence patterns
    training never sees), each naming every attribute of the clip."""
    n, num, p, loud = e.count, number_word(e.count), e.pitch, e.loudness
    s = "" if n == 1 else "s"
    if phrasing == "held_out":
        if e.kind == "beep":
            return [f"{num} beep{s}, {p}-pitched and {loud}", f"{loud}: {num} {p} tone{s}"]
        if e.kind == "chirp":
            updown = "up" if e.direction == "rising" else "down"
            return [f"{num} chirp{s}, {p}, {e.direction} and {loud}",
                    f"{loud}: {num} {p} tone{s} sweeping {updown}"]
        return [f"{num} burst{s} of noise, {p} and {loud}", f"{loud} {p} noise: {num} burst{s}"]
    if e.kind == "beep":
        return [f"{num} {p} beep{s}, {loud}",
                f"{num} {loud} {p}-pitched beep{s}",
                (f"a single {loud} {p} tone" if n == 1 else f"a {loud} sequence of {num} {p} tones")]
    if e.kind == "chirp":
        d = e.direction
        updown = "up" if d == "rising" else "down"
        art = "an" if loud[0] in "aeiou" else "a"
        return [(f"{art} {loud} {p} {d} chirp" if n == 1 else f"{num} {loud} {p} {d} chirps"),
                f"{num} {p} {d} chirp{s}, {loud}",
                (f"a {p} tone sweeping {updown}, {loud}" if n == 1
                 else f"{num} {p} tones sweeping {updown}, {loud}")]
    return [f"{num} {loud} {p} noise burst{s}",
            f"{num} {p} noise burst{s}, {loud}",
            f"{num} {loud} burst{s} of {p} noise"]


def _event_wave(kind: str, f: float, direction: str, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE_HZ
    if kind == "beep":
        w = np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    elif kind == "chirp":
        f0, f1 = (f, 2.5 * f) if direction == "rising" else (2.5 * f, f)
        dur = n / SAMPLE_RATE_HZ
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * dur))
        w = np.sin(phase)
    else:
        spec = np.fft.rfft(rng.normal(size=n))
        fr = np.fft.rfftfreq(n, 1 / SAMPLE_RATE_HZ)
        spec[np.abs(fr - f) > f / 4] = 0
        w = np.fft.irfft(spec, n)
    r = int(RAMP_S * SAMPLE_RATE_HZ)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(r) / r)
    w[:r] *= ramp
    w[n - r:] *= ramp[::-1]
    return w / (np.max(np.abs(w)) + 1e-12)


def make_audio(seed: int, split: str, index: int) -> AudioClip:
    """Generate one audio clip.

    Args:
        seed: world seed.
        split: ``train``, ``val``, ``test`` or ``test_phrasing`` (the test clip, captioned with
            the held-out templates: :func:`mtsc_sdr.data.vocab.resolve_split`).
        index: item index within the split (non-negative).

    Returns:
        :class:`AudioClip` with ``wave`` float32 (n,), n = duration_s * 16000 with duration in
        {1.0, 1.25, ..., 2.0} s, peak <= 0.8; ``event`` describes the content; the captions of
        :func:`audio_captions`. ``item_id`` is ``"audio/{split}/{index}"``.
    """
    content, phrasing = resolve_split(split)
    rng, key = draw_in_split(draw_audio_key, "audio", _MODALITY_ID, content, seed, index)
    kind, count, pitch, direction, loudness, fi, di, oi = key
    f = FREQS_HZ[pitch][fi]
    n_total = int(round(DURATIONS_S[di] * SAMPLE_RATE_HZ))
    wave = rng.normal(0.0, 0.002, size=n_total)
    ev_s = EVENT_S[kind]
    n_ev = int(round(ev_s * SAMPLE_RATE_HZ))
    onsets = tuple(round(0.05 + 0.05 * oi + k * (ev_s + GAP_S), 6) for k in range(count))
    peak = PEAK[loudness] * rng.uniform(0.9, 1.0)
    for on in onsets:
        i0 = int(round(on * SAMPLE_RATE_HZ))
        wave[i0:i0 + n_ev] += peak * _event_wave(kind, f, direction, n_ev, rng)
    event = AudioEvent(kind, count, pitch, direction, loudness, onsets, ev_s, f)
    return AudioClip(item_id=f"audio/{split}/{index}", wave=np.clip(wave, -1, 1).astype(np.float32),
                     sample_rate_hz=SAMPLE_RATE_HZ, captions=audio_captions(event, phrasing), event=event)
