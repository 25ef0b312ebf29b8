"""Numpy rasterisation of the synthetic world's shapes (anti-aliased by supersampling)."""

from __future__ import annotations

import numpy as np

SUPERSAMPLE = 4
#: Grey-level range of the phase-I world's dark backgrounds.
DARK_LEVEL: tuple[float, float] = (25.0, 65.0)


def coverage(shape: str, center_px: tuple[float, float], radius_px: float, size_px: int,
             supersample: int = SUPERSAMPLE) -> np.ndarray:
    """Fraction of each pixel covered by a shape.

    Args:
        shape: ``circle``, ``square`` or ``triangle`` (apex up).
        center_px: (x, y) of the centre in pixels; pixel (i, j) spans [j, j+1) x [i, i+1).
        radius_px: half-extent in pixels (the circle's radius; squares and triangles are scaled to
            a similar area).
        size_px: the image is ``size_px`` x ``size_px``.
        supersample: sub-samples per pixel and axis.

    Returns:
        float32 array (size_px, size_px) in [0, 1].
    """
    n = size_px * supersample
    t = (np.arange(n, dtype=np.float32) + 0.5) / supersample
    x = t[None, :] - np.float32(center_px[0])
    y = t[:, None] - np.float32(center_px[1])
    r = np.float32(radius_px)
    if shape == "circle":
        inside = x * x + y * y <= r * r
    elif shape == "square":
        h = 0.85 * r
        inside = (np.abs(x) <= h) & (np.abs(y) <= h)
    elif shape == "triangle":
        top, base = -1.05 * r, 0.85 * r
        frac = (y - top) / (base - top)
        inside = (y >= top) & (y <= base) & (np.abs(x) <= 1.1 * r * frac)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    cov = inside.astype(np.float32).reshape(size_px, supersample, size_px, supersample)
    return cov.mean(axis=(1, 3))


def background(rng: np.random.Generator, size_px: int,
               level_range: tuple[float, float] = DARK_LEVEL) -> np.ndarray:
    """A lightly textured background: float32 (size_px, size_px, 3) in 0..255.

    A random grey level (``level_range``; default dark, 25..65) with a faint colour cast, a
    gentle gradient and per-pixel noise (std 3 levels), drawn from ``rng``.
    """
    level = rng.uniform(*level_range)
    cast = rng.uniform(-6.0, 6.0, size=3)
    g = np.linspace(-1.0, 1.0, size_px, dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    grad = (np.cos(angle) * g[None, :] + np.sin(angle) * g[:, None]) * rng.uniform(0.0, 8.0)
    img = level + cast[None, None, :] + grad[:, :, None]
    img = img + rng.normal(0.0, 3.0, size=(size_px, size_px, 3))
    return img.astype(np.float32)


def composite(img: np.ndarray, cov: np.ndarray, rgb: tuple[int, int, int]) -> None:
    """Paint colour ``rgb`` over float image ``img`` (H, W, 3) with coverage ``cov`` (H, W), in place."""
    c = cov[:, :, None]
    img *= 1.0 - c
    img += c * np.asarray(rgb, dtype=np.float32)[None, None, :]


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Round and clip a float 0..255 image to uint8."""
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
