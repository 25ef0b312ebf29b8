"""Synthetic still scenes: 1-4 coloured shapes with captions and VQA pairs.

Every scene is a deterministic function of ``(seed, split, index, image_size)``. Its *content key*
is the sorted tuple of its objects' ``(position, colour, shape, size)``; the key alone decides the
split (:func:`mtsc_sdr.data.vocab.split_of_key`), so no scene content is ever shared between train,
val and test. Within a scene, objects take different positions and different (colour, shape) pairs,
so every question has one answer.
"""

from __future__ import annotations

import numpy as np

from . import render
from .items import QA, SceneImage, SceneObject
from .vocab import (COLOURS, COLOURS_RGB, POSITION_PHRASES, POSITIONS, SHAPES, SIZES,
                    check_split, draw_in_split, number_word)

#: Object centres as fractions of the image side (x, y).
POSITION_XY: dict[str, tuple[float, float]] = {
    "left": (0.18, 0.5), "right": (0.82, 0.5), "top": (0.5, 0.18), "bottom": (0.5, 0.82),
    "center": (0.5, 0.5),
}
#: Object half-extents as fractions of the image side.
SIZE_RADIUS: dict[str, float] = {"small": 0.085, "large": 0.14}
_JITTER = 0.015  # fraction of the side, per axis; not part of the content key
MAX_OBJECTS = 4
_MODALITY_ID = 0


def article(word: str) -> str:
    """``"an"`` before a vowel, else ``"a"``."""
    return "an" if word[0] in "aeiou" else "a"


def join_words(parts: list[str]) -> str:
    """``["a", "b", "c"] -> "a, b and c"``."""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def draw_scene_key(rng: np.random.Generator) -> tuple:
    """Draw a scene content key: tuple of (position, colour, shape, size), in POSITIONS order."""
    n = int(rng.integers(1, MAX_OBJECTS + 1))
    positions = sorted(rng.choice(len(POSITIONS), size=n, replace=False).tolist())
    objs, pairs = [], set()
    for p in positions:
        while True:
            colour = COLOURS[int(rng.integers(len(COLOURS)))]
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            if (colour, shape) not in pairs:
                break
        pairs.add((colour, shape))
        objs.append((POSITIONS[p], colour, shape, SIZES[int(rng.integers(len(SIZES)))]))
    return tuple(objs)


def scene_key(objects) -> tuple:
    """The content key of a list of :class:`SceneObject` (what decides the split)."""
    order = {p: i for i, p in enumerate(POSITIONS)}
    return tuple(sorted(((o.position, o.colour, o.shape, o.size) for o in objects),
                        key=lambda t: order[t[0]]))


def captions_for(objects: tuple[SceneObject, ...]) -> list[str]:
    """Reference captions of a scene, four phrasings, objects in POSITIONS order."""
    n = len(objects)
    plain = [f"{article(o.colour)} {o.colour} {o.shape}" for o in objects]
    sized = [f"{article(o.size)} {o.size} {o.colour} {o.shape}" for o in objects]
    placed = [f"{s} {POSITION_PHRASES[o.position]}" for s, o in zip(sized, objects)]
    noun = "object" if n == 1 else "objects"
    return [
        join_words(plain),
        f"{number_word(n)} {noun}: {join_words(sized)}",
        f"there {'is' if n == 1 else 'are'} {join_words(placed)}",
        f"a picture of {join_words([f'{p} {POSITION_PHRASES[o.position]}' for p, o in zip(plain, objects)])}",
    ]


def questions_for(objects: tuple[SceneObject, ...], rng: np.random.Generator) -> list[QA]:
    """VQA pairs of a scene: count, colour, shape, position, size and existence questions.

    Each object gets a colour, shape, position and size question, phrased so that the answer is
    unique (by shape alone when the shape is unique in the scene, else by position). ``rng`` picks
    the counted shape and the absent (colour, shape) pair of the negative existence question.
    """
    def qa(q: str, a: str, kind: str) -> QA:
        return QA(q, a, kind, (a,))

    out = [qa("how many objects are there?", number_word(len(objects)), "count")]
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    k = sum(o.shape == shape for o in objects)
    out.append(qa(f"how many {shape}s are there?", number_word(k), "count"))
    shape_counts = {s: sum(o.shape == s for o in objects) for s in SHAPES}
    colour_counts = {c: sum(o.colour == c for o in objects) for c in COLOURS}
    for o in objects:
        where = POSITION_PHRASES[o.position]
        if shape_counts[o.shape] == 1:
            out.append(qa(f"what colour is the {o.shape}?", o.colour, "colour"))
        else:
            out.append(qa(f"what colour is the {o.shape} {where}?", o.colour, "colour"))
        if colour_counts[o.colour] == 1:
            out.append(qa(f"what shape is the {o.colour} object?", o.shape, "shape"))
        else:
            out.append(qa(f"what shape is the object {where}?", o.shape, "shape"))
        out.append(qa(f"where is the {o.colour} {o.shape}?", o.position, "position"))
        out.append(qa(f"what size is the {o.colour} {o.shape}?", o.size, "size"))
    o = objects[int(rng.integers(len(objects)))]
    out.append(qa(f"is there {article(o.colour)} {o.colour} {o.shape}?", "yes", "existence"))
    present = {(o.colour, o.shape) for o in objects}
    absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
    c, s = absent[int(rng.integers(len(absent)))]
    out.append(qa(f"is there {article(c)} {c} {s}?", "no", "existence"))
    return out


def make_scene(seed: int, split: str, index: int, image_size: int = 32) -> SceneImage:
    """Generate one scene.

    Args:
        seed: world seed (any non-negative int).
        split: ``train``, ``val`` or ``test``.
        index: item index within the split (non-negative; the split is unbounded).
        image_size: side in pixels (>= 32).

    Returns:
        :class:`SceneImage` with ``image`` uint8 (image_size, image_size, 3), four captions, the QA
        list of :func:`questions_for` and the objects (positions, rendered centres and radii).
        ``item_id`` is ``"scene/{split}/{index}"``.
    """
    check_split(split)
    if image_size < 32:
        raise ValueError(f"image_size must be >= 32 pixels, got {image_size}")
    rng, key = draw_in_split(draw_scene_key, "scene", _MODALITY_ID, split, seed, index)
    img = render.background(rng, image_size)
    objects = []
    for position, colour, shape, size in key:
        fx, fy = POSITION_XY[position]
        jx, jy = rng.uniform(-_JITTER, _JITTER, size=2)
        center = (float((fx + jx) * image_size), float((fy + jy) * image_size))
        radius = SIZE_RADIUS[size] * image_size
        render.composite(img, render.coverage(shape, center, radius, image_size), COLOURS_RGB[colour])
        objects.append(SceneObject(colour, shape, size, position, center, radius))
    objects_t = tuple(objects)
    return SceneImage(
        item_id=f"scene/{split}/{index}",
        image=render.to_uint8(img),
        captions=captions_for(objects_t),
        qa=questions_for(objects_t, rng),
        objects=objects_t,
    )
