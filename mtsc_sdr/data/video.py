"""Synthetic video clips: one or two shapes moving in straight lines, with captions.

Each object moves left, right, up or down, slowly (0.22 of the frame side over the clip) or fast
(0.5 of the side), and stays inside the frame. Content key: the sorted objects'
``(colour, shape, direction, speed, start cell x, start cell y)`` with start cells on a 5x5 grid
of the allowed start region; split by :func:`mtsc_sdr.data.vocab.split_of_key`. Two objects never
touch in any frame and have different (colour, shape) pairs.
"""

from __future__ import annotations

import numpy as np

from . import render
from .domains import DEFAULT, get_domain
from .items import SceneObject, VideoClip
from .vocab import (COLOURS, COLOURS_RGB, DIRECTIONS, SHAPES, SPEED_ADVERBS, SPEEDS, draw_in_split,
                    number_word, resolve_split)
from .scenes import article, join_words

RADIUS = 0.12  # fraction of the frame side
TRAVEL: dict[str, float] = {"slow": 0.22, "fast": 0.5}  # fraction of the side over the whole clip
UNIT: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
GRID = 5
_MODALITY_ID = 2


def _start_range(direction: str, speed: str, axis: int) -> tuple[float, float]:
    """Allowed start coordinate (fraction of the side) along ``axis`` (0 x, 1 y)."""
    lo, hi = RADIUS, 1.0 - RADIUS
    u = UNIT[direction][axis]
    if u > 0:
        hi -= TRAVEL[speed]
    elif u < 0:
        lo += TRAVEL[speed]
    return lo, hi


def _track(obj_key: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Start (x, y) and unit velocity-per-clip (fractions) of one object key."""
    colour, shape, direction, speed, ix, iy = obj_key
    start = []
    for axis, i in enumerate((ix, iy)):
        lo, hi = _start_range(direction, speed, axis)
        start.append(lo + (hi - lo) * i / (GRID - 1))
    return np.array(start), np.array(UNIT[direction], dtype=float) * TRAVEL[speed]


def draw_video_key(rng: np.random.Generator) -> tuple:
    """Draw a video content key: a sorted tuple of one or two object keys."""
    n = int(rng.integers(1, 3))
    while True:
        objs = []
        for _ in range(n):
            objs.append((COLOURS[int(rng.integers(len(COLOURS)))], SHAPES[int(rng.integers(len(SHAPES)))],
                         DIRECTIONS[int(rng.integers(4))], SPEEDS[int(rng.integers(2))],
                         int(rng.integers(GRID)), int(rng.integers(GRID))))
        if n == 2:
            if objs[0][:2] == objs[1][:2]:
                continue
            (s0, v0), (s1, v1) = _track(objs[0]), _track(objs[1])
            tt = np.linspace(0, 1, 33)[:, None]
            d = np.linalg.norm((s0 + tt * v0) - (s1 + tt * v1), axis=1)
            if d.min() < 2 * RADIUS + 0.08:
                continue
        return tuple(sorted(objs))


def content_key(seed: int, split: str, index: int) -> tuple:
    """The content key of clip ``index`` of ``split`` (:func:`draw_video_key`; the same in every
    domain), without drawing the clip; ``key[0]`` is the clip's first object (``objects[0]``)."""
    return draw_in_split(draw_video_key, "video", _MODALITY_ID, resolve_split(split)[0], seed, index)[1]


def video_captions(objects: tuple[SceneObject, ...], phrasing: str = "seen") -> list[str]:
    """Three ``seen`` phrasings, or two ``held_out`` ones (the same words in sentence patterns
    training never sees), naming colour, shape, direction and speed of every object."""
    n = len(objects)
    if phrasing == "held_out":
        h1 = [f"{article(o.colour)} {o.colour} {o.shape} going {o.direction} {SPEED_ADVERBS[o.speed]}"
              for o in objects]
        h2 = [f"{article(o.speed)} {o.speed} {o.colour} {o.shape} moving {o.direction}" for o in objects]
        return [join_words(h1), f"{join_words(h2)}: {number_word(n)} object{'s' if n > 1 else ''}"]
    p1 = [f"{article(o.colour)} {o.colour} {o.shape} moving {o.direction} {SPEED_ADVERBS[o.speed]}"
          for o in objects]
    p2 = [f"{article(o.speed)} {o.speed} {o.colour} {o.shape} going {o.direction}" for o in objects]
    p3 = [f"{article(o.colour)} {o.colour} {o.shape}, moving {o.direction}, {o.speed}" for o in objects]
    return [join_words(p1), join_words(p2),
            f"{number_word(n)} object{'s' if n > 1 else ''}: " + ("; ".join(p3) if n > 1 else p3[0])]


def make_video(seed: int, split: str, index: int, num_frames: int = 8, image_size: int = 32,
               domain: str = DEFAULT) -> VideoClip:
    """Generate one video clip.

    Args:
        seed: world seed.
        split: ``train``, ``val``, ``test`` or ``test_phrasing`` (the test clip, captioned with
            the held-out templates: :func:`mtsc_sdr.data.vocab.resolve_split`).
        index: item index within the split (non-negative).
        num_frames: T >= 8; the travel over the clip is fixed, so px per frame = travel / (T - 1).
        image_size: frame side in pixels (>= 32).
        domain: a variant of the world (:mod:`mtsc_sdr.data.domains`): how the clip is drawn;
            its content and captions are the same in every domain.

    Returns:
        :class:`VideoClip` with ``frames`` uint8 (T, image_size, image_size, 3) on a static
        textured background, the captions of :func:`video_captions` and the objects (first-frame
        ``center_px``, ``velocity_px_per_frame``, direction, speed). ``item_id`` is
        ``"video/{split}/{index}"`` (another domain than ``default``: prefixed with ``"{domain}/"``).
    """
    style = get_domain(domain)
    content, phrasing = resolve_split(split)
    if num_frames < 8:
        raise ValueError(f"num_frames must be >= 8, got {num_frames}")
    if image_size < 32:
        raise ValueError(f"image_size must be >= 32 pixels, got {image_size}")
    rng, key = draw_in_split(draw_video_key, "video", _MODALITY_ID, content, seed, index)
    bg = style.background(rng, image_size)
    radius = RADIUS * image_size
    objects = []
    for ok in key:
        start, travel = _track(ok)
        start = start * image_size + rng.uniform(-0.3, 0.3, size=2)
        vel = travel * image_size / (num_frames - 1)
        objects.append(SceneObject(ok[0], ok[1], "", "", (float(start[0]), float(start[1])), radius,
                                   ok[2], ok[3], (float(vel[0]), float(vel[1]))))
    frames = np.empty((num_frames, image_size, image_size, 3), np.uint8)
    for t in range(num_frames):
        img = bg.copy()
        for o in objects:
            c = (o.center_px[0] + t * o.velocity_px_per_frame[0], o.center_px[1] + t * o.velocity_px_per_frame[1])
            render.composite(img, render.coverage(o.shape, c, radius, image_size), COLOURS_RGB[o.colour])
        frames[t] = render.to_uint8(img)
    objs = tuple(objects)
    return VideoClip(item_id=style.item_id("video", split, index), frames=frames,
                     captions=video_captions(objs, phrasing), objects=objs)
