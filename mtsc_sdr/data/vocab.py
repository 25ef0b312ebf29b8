"""The synthetic world's vocabulary (small on purpose, so a small model can learn it) and the
content-keyed split assignment shared by images, audio and video."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

COLOURS_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 235),
    "yellow": (240, 225, 50),
    "purple": (150, 60, 200),
    "orange": (250, 140, 30),
    "white": (245, 245, 245),
}
COLOURS: tuple[str, ...] = tuple(COLOURS_RGB)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
SIZES: tuple[str, ...] = ("small", "large")
#: Image positions; each object of a scene takes a different one.
POSITIONS: tuple[str, ...] = ("left", "right", "top", "bottom", "center")
POSITION_PHRASES: dict[str, str] = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "center": "in the center",
}
#: Video motion.
DIRECTIONS: tuple[str, ...] = ("left", "right", "up", "down")
SPEEDS: tuple[str, ...] = ("slow", "fast")
SPEED_ADVERBS: dict[str, str] = {"slow": "slowly", "fast": "quickly"}
#: Audio.
AUDIO_KINDS: tuple[str, ...] = ("beep", "chirp", "noise")
PITCHES: tuple[str, ...] = ("low", "high")
CHIRP_DIRECTIONS: tuple[str, ...] = ("rising", "falling")
LOUDNESS: tuple[str, ...] = ("quiet", "loud")

NUMBER_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five")

#: Fractions of the content-key space given to each split (train, val, test).
SPLIT_FRACTIONS: dict[str, float] = {"train": 0.8, "val": 0.1, "test": 0.1}
SPLIT_IDS: dict[str, int] = {"train": 0, "val": 1, "test": 2}
#: Text phrasings: ``seen`` templates render train, val and test; ``held_out`` templates (same
#: words, other sentence patterns) render only the evaluation splits below, so training never
#: sees them.
PHRASINGS: tuple[str, ...] = ("seen", "held_out")
#: Evaluation-only splits: split -> (the split whose content it shows, the phrasing of its text).
#: ``test_phrasing`` item ``i`` has the content of ``test`` item ``i``, worded with the held-out
#: question and caption templates.
PHRASING_SPLITS: dict[str, tuple[str, str]] = {"test_phrasing": ("test", "held_out")}
_SPLIT_SALT = b"mtsc-sdr world split v1"


def number_word(n: int) -> str:
    """``2 -> "two"`` for 0..5."""
    return NUMBER_WORDS[n]


def check_split(split: str) -> int:
    """Return the id of the split's content (0 train, 1 val, 2 test; ``test_phrasing`` 2);
    ValueError naming the valid splits."""
    return SPLIT_IDS[resolve_split(split)[0]]


def resolve_split(split: str) -> tuple[str, str]:
    """``(content split, phrasing)`` of ``split``: ``("train", "seen")`` for ``train``,
    ``("test", "held_out")`` for ``test_phrasing`` (:data:`PHRASING_SPLITS`); ValueError naming
    the valid splits."""
    if split in SPLIT_IDS:
        return split, "seen"
    if split in PHRASING_SPLITS:
        return PHRASING_SPLITS[split]
    raise ValueError(f"split must be one of {list(SPLIT_IDS) + list(PHRASING_SPLITS)}, got {split!r}")


def split_of_key(key: tuple) -> str:
    """The split that owns a content key.

    A content key is a canonical tuple of everything discrete that defines an item's content
    (e.g. a scene's sorted object attributes). Its split is decided by a salted BLAKE2b hash of
    ``repr(key)`` -- independent of the seed -- so the same content can never appear in two
    splits, whatever the seed or the number of items drawn. Generators draw keys until one lands
    in the requested split.
    """
    digest = hashlib.blake2b(repr(key).encode("utf-8"), digest_size=8, key=_SPLIT_SALT).digest()
    u = int.from_bytes(digest, "big") / 2.0**64
    if u < SPLIT_FRACTIONS["train"]:
        return "train"
    if u < SPLIT_FRACTIONS["train"] + SPLIT_FRACTIONS["val"]:
        return "val"
    return "test"


def draw_in_split(draw: Callable[[np.random.Generator], tuple], modality: str, modality_id: int, split: str,
                  seed: int, index: int) -> tuple[np.random.Generator, tuple]:
    """Item ``index`` of ``split`` for a generator of ``modality``: its random generator, seeded by
    ``(seed, modality_id, split id, index)``, and the first content key ``draw(rng)`` gives that
    :func:`split_of_key` puts in ``split`` (the generator then goes on to draw the item's details).
    ``split`` is a content split (``train``, ``val`` or ``test``: :func:`resolve_split`)."""
    rng = np.random.default_rng([seed, modality_id, SPLIT_IDS[split], index])
    while True:
        key = draw(rng)
        if split_of_key((modality,) + key) == split:
            return rng, key
