"""Synthetic still scenes: 1-4 coloured shapes with captions and VQA pairs.

Every scene is a deterministic function of ``(seed, split, index, image_size, domain)``; the
domain (:mod:`mtsc_sdr.data.domains`) changes how it is drawn and asked about, not its content.
Its *content key* is the sorted tuple of its objects' ``(position, colour, shape, size)``; the key
alone decides the split (:func:`mtsc_sdr.data.vocab.split_of_key`), so no scene content is ever
shared between train, val and test. Within a scene, objects take different positions and
different (colour, shape) pairs, so every question has one answer.
"""

from __future__ import annotations

import numpy as np

from . import render
from .domains import DEFAULT, get_domain
from .items import QA, SceneImage, SceneObject
from .vocab import (COLOURS, COLOURS_RGB, POSITION_PHRASES, POSITIONS, SHAPES, SIZES,
                    draw_in_split, number_word, resolve_split)

#: Object centres as fractions of the image side (x, y).
POSITION_XY: dict[str, tuple[float, float]] = {
    "left": (0.18, 0.5), "right": (0.82, 0.5), "top": (0.5, 0.18), "bottom": (0.5, 0.82),
    "center": (0.5, 0.5),
}
#: Object half-extents as fractions of the image side.
SIZE_RADIUS: dict[str, float] = {"small": 0.085, "large": 0.14}
_JITTER = 0.015  # fraction of the side, per axis; not part of the content key
MAX_OBJECTS = 4
#: The question types (:attr:`QA.kind`) of the built-in scenes, in report order.
QUESTION_TYPES: tuple[str, ...] = ("count", "colour", "shape", "position", "size", "existence")
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


def content_key(seed: int, split: str, index: int) -> tuple:
    """The content key of scene ``index`` of ``split`` (:func:`draw_scene_key`; the same in every
    domain), without drawing the scene; ``key[0]`` is the scene's first object in POSITIONS order."""
    return draw_in_split(draw_scene_key, "scene", _MODALITY_ID, resolve_split(split)[0], seed, index)[1]


def scene_key(objects) -> tuple:
    """The content key of a list of :class:`SceneObject` (what decides the split)."""
    order = {p: i for i, p in enumerate(POSITIONS)}
    return tuple(sorted(((o.position, o.colour, o.shape, o.size) for o in objects),
                        key=lambda t: order[t[0]]))


def captions_for(objects: tuple[SceneObject, ...], phrasing: str = "seen") -> list[str]:
    """Reference captions of a scene, objects in POSITIONS order: four ``seen`` phrasings, or
    three ``held_out`` ones (:data:`mtsc_sdr.data.vocab.PHRASINGS`; the same words in sentence
    patterns training never sees)."""
    n = len(objects)
    plain = [f"{article(o.colour)} {o.colour} {o.shape}" for o in objects]
    sized = [f"{article(o.size)} {o.size} {o.colour} {o.shape}" for o in objects]
    placed = [f"{s} {POSITION_PHRASES[o.position]}" for s, o in zip(sized, objects)]
    noun = "object" if n == 1 else "objects"
    be = "is" if n == 1 else "are"
    if phrasing == "held_out":
        return [
            f"in the picture there {be} {join_words(sized)}",
            f"{join_words(placed)}: {number_word(n)} {noun}",
            f"{number_word(n)} {noun} in the picture: {join_words(plain)}",
        ]
    return [
        join_words(plain),
        f"{number_word(n)} {noun}: {join_words(sized)}",
        f"there {be} {join_words(placed)}",
        f"a picture of {join_words([f'{p} {POSITION_PHRASES[o.position]}' for p, o in zip(plain, objects)])}",
    ]


#: VQA question templates per phrasing (``{a}`` is the article of ``{colour}``, ``{where}`` a
#: position phrase). The ``held_out`` ones use only words of the ``seen`` ones.
QUESTION_TEMPLATES: dict[str, dict[str, str]] = {
    "seen": {
        "count": "how many objects are there?",
        "count_shape": "how many {shape}s are there?",
        "colour": "what colour is the {shape}?",
        "colour_at": "what colour is the {shape} {where}?",
        "shape": "what shape is the {colour} object?",
        "shape_at": "what shape is the object {where}?",
        "position": "where is the {colour} {shape}?",
        "size": "what size is the {colour} {shape}?",
        "existence": "is there {a} {colour} {shape}?",
    },
    "held_out": {
        "count": "how many objects are in the picture?",
        "count_shape": "how many {shape}s are in the picture?",
        "colour": "the {shape} is what colour?",
        "colour_at": "the {shape} {where} is what colour?",
        "shape": "the {colour} object is what shape?",
        "shape_at": "the object {where} is what shape?",
        "position": "where in the picture is the {colour} {shape}?",
        "size": "the {colour} {shape} is what size?",
        "existence": "is there {a} {colour} {shape} in the picture?",
    },
}


def questions_for(objects: tuple[SceneObject, ...], rng: np.random.Generator,
                  phrasing: str = "seen") -> list[QA]:
    """VQA pairs of a scene: count, colour, shape, position, size and existence questions.

    Each object gets a colour, shape, position and size question, phrased so that the answer is
    unique (by shape alone when the shape is unique in the scene, else by position). ``rng`` picks
    the counted shape and the absent (colour, shape) pair of the negative existence question.
    ``phrasing`` picks the templates (:data:`QUESTION_TEMPLATES`); the questions asked, their
    order, answers and random draws are the same for every phrasing.
    """
    templates = QUESTION_TEMPLATES[phrasing]

    def qa(template: str, answer: str, kind: str, **words: str) -> QA:
        return QA(templates[template].format(**words), answer, kind, (answer,))

    out = [qa("count", number_word(len(objects)), "count")]
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    k = sum(o.shape == shape for o in objects)
    out.append(qa("count_shape", number_word(k), "count", shape=shape))
    shape_counts = {s: sum(o.shape == s for o in objects) for s in SHAPES}
    colour_counts = {c: sum(o.colour == c for o in objects) for c in COLOURS}
    for o in objects:
        where = POSITION_PHRASES[o.position]
        if shape_counts[o.shape] == 1:
            out.append(qa("colour", o.colour, "colour", shape=o.shape))
        else:
            out.append(qa("colour_at", o.colour, "colour", shape=o.shape, where=where))
        if colour_counts[o.colour] == 1:
            out.append(qa("shape", o.shape, "shape", colour=o.colour))
        else:
            out.append(qa("shape_at", o.shape, "shape", where=where))
        out.append(qa("position", o.position, "position", colour=o.colour, shape=o.shape))
        out.append(qa("size", o.size, "size", colour=o.colour, shape=o.shape))
    o = objects[int(rng.integers(len(objects)))]
    out.append(qa("existence", "yes", "existence", a=article(o.colour), colour=o.colour, shape=o.shape))
    present = {(o.colour, o.shape) for o in objects}
    absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
    c, s = absent[int(rng.integers(len(absent)))]
    out.append(qa("existence", "no", "existence", a=article(c), colour=c, shape=s))
    return out


#: Templates of the questions phase I never asks (the ``new`` question set, kinds
#: :data:`mtsc_sdr.data.domains.NEW_QUESTION_TYPES`), in phase I's words; ``held_out`` as in
#: :data:`QUESTION_TEMPLATES`.
NEW_QUESTION_TEMPLATES: dict[str, dict[str, str]] = {
    "seen": {
        "count_colour": "how many {colour} objects are there?",
        "count_size": "how many {size} objects are there?",
        "verify_size": "is the {colour} {shape} {size}?",
        "verify_at": "is there {a} {colour} object {where}?",
    },
    "held_out": {
        "count_colour": "how many {colour} objects are in the picture?",
        "count_size": "how many {size} objects are in the picture?",
        "verify_size": "is the {colour} {shape} in the picture {size}?",
        "verify_at": "{where}, is there {a} {colour} object?",
    },
}


def new_questions_for(objects: tuple[SceneObject, ...], rng: np.random.Generator,
                      phrasing: str = "seen") -> list[QA]:
    """VQA pairs of the types phase I never asks (:data:`NEW_QUESTION_TEMPLATES`), kind = type:

    * ``count_colour``: how many objects of each colour in the scene, and of one absent colour
      (``zero``) drawn by ``rng``;
    * ``count_size``: how many small and how many large objects (``zero`` .. ``four``);
    * ``verify_size``: per object, whether it has a size drawn by ``rng`` (``yes`` / ``no``);
    * ``verify_at``: per object, whether an object of a colour drawn by ``rng`` (its own or
      another, even odds) is at its place (``yes`` / ``no``).

    Answers are unique: a scene's (colour, shape) pairs and positions are all different.
    """
    templates = NEW_QUESTION_TEMPLATES[phrasing]

    def qa(kind: str, answer: str, **words: str) -> QA:
        return QA(templates[kind].format(**words), answer, kind, (answer,))

    colours = [c for c in COLOURS if any(o.colour == c for o in objects)]
    absent = [c for c in COLOURS if c not in colours]
    colours.append(absent[int(rng.integers(len(absent)))])
    out = [qa("count_colour", number_word(sum(o.colour == c for o in objects)), colour=c) for c in colours]
    out += [qa("count_size", number_word(sum(o.size == z for o in objects)), size=z) for z in SIZES]
    for o in objects:
        size = SIZES[int(rng.integers(len(SIZES)))]
        out.append(qa("verify_size", "yes" if size == o.size else "no", colour=o.colour, shape=o.shape, size=size))
    for o in objects:
        others = [c for c in COLOURS if c != o.colour]
        colour = o.colour if rng.random() < 0.5 else others[int(rng.integers(len(others)))]
        out.append(qa("verify_at", "yes" if colour == o.colour else "no", a=article(colour), colour=colour,
                      where=POSITION_PHRASES[o.position]))
    return out


#: Question set (:attr:`mtsc_sdr.data.domains.Domain.questions`) -> the function that asks it.
QUESTION_MAKERS = {"phase1": questions_for, "new": new_questions_for}


def make_scene(seed: int, split: str, index: int, image_size: int = 32, domain: str = DEFAULT) -> SceneImage:
    """Generate one scene.

    Args:
        seed: world seed (any non-negative int).
        split: ``train``, ``val``, ``test`` or ``test_phrasing`` (the test scene, worded with the
            held-out templates: :func:`mtsc_sdr.data.vocab.resolve_split`).
        index: item index within the split (non-negative; the split is unbounded).
        image_size: side in pixels (>= 32).
        domain: a variant of the world (:mod:`mtsc_sdr.data.domains`): how the scene is drawn
            and which questions it is asked; its content and captions are the same in every domain.

    Returns:
        :class:`SceneImage` with ``image`` uint8 (image_size, image_size, 3), the captions of
        :func:`captions_for`, the QA list of :func:`questions_for` (or of the domain's question
        set, :data:`QUESTION_MAKERS`) and the objects (positions, rendered centres and radii).
        ``item_id`` is ``"scene/{split}/{index}"`` (outside the default domain: prefixed with
        ``"{domain}/"``).
    """
    style = get_domain(domain)
    content, phrasing = resolve_split(split)
    if image_size < 32:
        raise ValueError(f"image_size must be >= 32 pixels, got {image_size}")
    rng, key = draw_in_split(draw_scene_key, "scene", _MODALITY_ID, content, seed, index)
    img = style.background(rng, image_size)
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
        item_id=style.item_id("scene", split, index),
        image=render.to_uint8(img),
        captions=captions_for(objects_t, phrasing),
        qa=QUESTION_MAKERS[style.questions](objects_t, rng, phrasing),
        objects=objects_t,
    )
