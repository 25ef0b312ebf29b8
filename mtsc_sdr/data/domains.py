"""Domains of the built-in world: the same content drawn in another style, or asked about in
another way, for fine-tuning a phase-I model on something it never saw.

A domain keeps the world's content keys, hence its splits (:func:`mtsc_sdr.data.vocab.split_of_key`:
no content of a domain's val or test split is in any domain's train split), and it words every
caption, question and answer with the words of phase I's world, so a phase-I model's tokenizer has
no ``<unk>`` to meet. Audio is the same in every domain.

=============  ==================================================================================
domain         what differs from phase I's world (``default``)
=============  ==================================================================================
default        nothing: the world phase I was trained on (filled shapes on a dark background)
light          scenes and videos drawn on a light background (grey level 175..215), not a dark one
new_questions  scenes asked only questions phase I never asks (:data:`NEW_QUESTION_TYPES`: how many
               objects of a colour or a size; yes/no about an object's size or what is at a place)
=============  ==================================================================================

``SyntheticWorld(domain="light")`` gives the ``light`` world (:mod:`mtsc_sdr.data.world`). Scenes
and videos of a domain other than ``default`` have ids prefixed with the domain
(``light/scene/val/3``); audio clips keep theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtsc_sdr import tasks as task_table

from . import render

DEFAULT = "default"
#: Question sets a domain can ask (:data:`mtsc_sdr.data.scenes.QUESTION_MAKERS`).
QUESTION_SETS: tuple[str, ...] = ("phase1", "new")
#: The question types (:attr:`QA.kind`) of the ``new`` question set, in report order.
NEW_QUESTION_TYPES: tuple[str, ...] = ("count_colour", "count_size", "verify_size", "verify_at")


@dataclass(frozen=True)
class Domain:
    """A variant of the built-in world.

    Attributes:
        name: the domain's name (``SyntheticWorld(domain=name)``).
        description: one line saying what differs from the default world.
        background_level: range of the background's grey level (0..255) before its colour cast,
            gradient and noise (:func:`mtsc_sdr.data.render.background`).
        questions: the question set of its scenes: ``phase1`` (count, colour, shape, position,
            size, existence: :func:`mtsc_sdr.data.scenes.questions_for`) or ``new``
            (:data:`NEW_QUESTION_TYPES`: :func:`mtsc_sdr.data.scenes.new_questions_for`).
    """

    name: str
    description: str
    background_level: tuple[float, float] = render.DARK_LEVEL
    questions: str = "phase1"

    def __post_init__(self):
        if self.questions not in QUESTION_SETS:
            raise ValueError(f"domain {self.name!r}: questions must be one of {QUESTION_SETS}, "
                             f"got {self.questions!r}")

    def background(self, rng: np.random.Generator, size_px: int) -> np.ndarray:
        """The background, float32 (size_px, size_px, 3) in 0..255, drawn from ``rng``."""
        return render.background(rng, size_px, self.background_level)

    def item_id(self, kind: str, split: str, index: int) -> str:
        """``"{kind}/{split}/{index}"``, prefixed by ``"{name}/"`` outside the default domain."""
        base = f"{kind}/{split}/{index}"
        return base if self.name == DEFAULT else f"{self.name}/{base}"


_DOMAINS: task_table.Registry[Domain] = task_table.Registry("domain")


def register_domain(domain: Domain) -> Domain:
    """Add a domain under its (new) name; returns it."""
    return _DOMAINS.register(domain.name, domain)


def get_domain(name: str) -> Domain:
    """The domain called ``name``; ValueError naming the domains there are when it is unknown."""
    return _DOMAINS.get(name)


def domain_names() -> list[str]:
    """The registered domains' names, ``default`` first."""
    return [d.name for d in _DOMAINS.values()]


register_domain(Domain(DEFAULT, "the world of phase I: filled shapes on a dark background"))
register_domain(Domain("light", "scenes and videos on a light background (grey 175..215) instead of a dark one",
                       background_level=(175.0, 215.0)))
register_domain(Domain("new_questions", "scenes asked only question types phase I never asks "
                                        "(count by colour or size; yes/no on size or on what is at a place)",
                       questions="new"))

__all__ = ["DEFAULT", "NEW_QUESTION_TYPES", "QUESTION_SETS", "Domain", "domain_names", "get_domain",
           "register_domain"]
