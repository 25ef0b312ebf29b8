"""Knowledge about the built-in world that no image shows, for retrieval-augmented generation.

Every kind of object (a colour and a shape: 21 kinds) has an **owner** (a person's name) and an
**origin** (the city it was made in). Which owner and which city is not a property of the world:
it is a *knowledge state* (:class:`Facts`) that changes over time, lives only in documents of a
knowledge base, and is drawn at random for every training question, so a model cannot learn any
one state and must read the documents it is given. A knowledge question asks about an object of
its scene ("who owns the red circle?"); its answer is the value the documents give, or
:data:`UNKNOWN` when none of them states it.

Documents and questions have ``seen`` phrasings (training) and ``held_out`` ones (evaluation
only), as the world's captions and questions do (:data:`mtsc_sdr.data.vocab.PHRASINGS`): the
held-out ones are sentence patterns training never shows, made of words it does show. (A paraphrase
with words training never shows -- "whom", "come from" -- is beyond a model whose vocabulary is
the built-in world's: stage 1 of the release model answered such questions at 0-32.5 % where it answered the
trained ones at 97 %.)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from .items import SceneImage, TaskExample
from .vocab import COLOURS, SHAPES

#: people who own objects, and cities objects are made in (the values of the two relations)
NAMES: tuple[str, ...] = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "henry", "irene",
                          "jack", "karen", "leo", "maria", "nick", "olga", "paul", "rosa", "sam",
                          "tina", "victor", "wendy", "yusuf", "zara", "omar")
PLACES: tuple[str, ...] = ("paris", "tokyo", "lima", "oslo", "cairo", "delhi", "quito", "rome",
                           "seoul", "dakar", "hanoi", "riga", "sofia", "perth", "accra", "bern")
RELATIONS: dict[str, tuple[str, ...]] = {"owner": NAMES, "origin": PLACES}
#: the answer to a knowledge question whose fact no retrieved document states
UNKNOWN = "unknown"
#: ``question_type`` of knowledge questions (:attr:`TaskExample.question_type`)
QUESTION_TYPE = "knowledge"

#: document templates per relation and phrasing: ``{s}`` the subject ("red circle"), ``{v}`` the value
DOCUMENTS: dict[str, dict[str, tuple[str, ...]]] = {
    "owner": {"seen": ("the {s} belongs to {v}.", "{v} owns the {s}."),
              "held_out": ("{v} is who the {s} belongs to.",)},
    "origin": {"seen": ("the {s} was made in {v}.", "{v} is the city where the {s} was made."),
               "held_out": ("the city where the {s} was made is {v}.",)},
}
#: question templates per relation and phrasing
QUESTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "owner": {"seen": ("who owns the {s}?", "whose is the {s}?"),
              "held_out": ("the {s} belongs to who?", "whose object is the {s}?")},
    "origin": {"seen": ("where was the {s} made?", "which city made the {s}?"),
               "held_out": ("in which city was the {s} made?", "the {s} was made in which city?")},
}


@dataclass(frozen=True)
class Fact:
    """One fact: ``relation`` (``owner`` or ``origin``) of the objects of one kind is ``value``."""

    relation: str
    colour: str
    shape: str
    value: str

    @property
    def key(self) -> str:
        """What the fact is about, e.g. ``"owner/red-circle"`` (also its document id in a base)."""
        return fact_key(self.relation, self.colour, self.shape)

    def text(self, phrasing: str = "seen", variant: int = 0) -> str:
        """The fact as a document sentence: template ``variant`` (modulo their number) of ``phrasing``."""
        templates = DOCUMENTS[self.relation][phrasing]
        return templates[variant % len(templates)].format(s=f"{self.colour} {self.shape}", v=self.value)


def fact_key(relation: str, colour: str, shape: str) -> str:
    """``"owner/red-circle"``: the key of the fact of ``relation`` about the (colour, shape) objects."""
    if relation not in RELATIONS:
        raise ValueError(f"relation must be one of {list(RELATIONS)}, got {relation!r}")
    return f"{relation}/{colour}-{shape}"


def subjects() -> list[tuple[str, str]]:
    """Every (colour, shape) kind of object, in vocabulary order (21)."""
    return [(c, s) for c in COLOURS for s in SHAPES]


def question(relation: str, colour: str, shape: str, phrasing: str = "seen", variant: int = 0) -> str:
    """The question asking ``relation`` of the (colour, shape) objects, template ``variant``."""
    templates = QUESTIONS[relation][phrasing]
    return templates[variant % len(templates)].format(s=f"{colour} {shape}")


class Facts:
    """A knowledge state: one value per (relation, kind of object), drawn with ``rng``.

    Args:
        rng: the generator that draws the values (uniform over each relation's values).
    """

    def __init__(self, rng: np.random.Generator):
        self.values = {fact_key(r, c, s): vals[int(rng.integers(len(vals)))]
                       for r, vals in RELATIONS.items() for c, s in subjects()}

    def fact(self, key: str) -> Fact:
        """The :class:`Fact` of ``key`` (:func:`fact_key`) in this state."""
        relation, kind = key.split("/")
        colour, shape = kind.split("-")
        return Fact(relation, colour, shape, self.values[key])

    def facts(self) -> list[Fact]:
        """Every fact of the state (2 relations x 21 kinds)."""
        return [self.fact(k) for k in self.values]


def other_value(relation: str, value: str, rng: np.random.Generator) -> str:
    """A value of ``relation`` other than ``value`` (a changed fact)."""
    vals = [v for v in RELATIONS[relation] if v != value]
    return vals[int(rng.integers(len(vals)))]


def knowledge_example(scene: SceneImage, rng: np.random.Generator, phrasing: str = "seen",
                      relation: Optional[str] = None) -> TaskExample:
    """A ``vqa`` example asking a knowledge question about one object of ``scene`` (drawn with
    ``rng``): ``question_type`` :data:`QUESTION_TYPE`, ``fact`` the key it asks about, and
    references ``[UNKNOWN]`` until a knowledge state answers it (:func:`answered`)."""
    obj = scene.objects[int(rng.integers(len(scene.objects)))]
    relation = relation or list(RELATIONS)[int(rng.integers(len(RELATIONS)))]
    n = len(QUESTIONS[relation][phrasing])
    q = question(relation, obj.colour, obj.shape, phrasing, int(rng.integers(n)))
    return TaskExample(f"{scene.item_id}#k-{relation}", "vqa", image=scene.image, question=q,
                       references=[UNKNOWN], question_type=QUESTION_TYPE,
                       fact=fact_key(relation, obj.colour, obj.shape))


def answered(example: TaskExample, value: Optional[str]) -> TaskExample:
    """``example`` with its reference set to ``value`` (None: :data:`UNKNOWN`)."""
    return replace(example, references=[value or UNKNOWN])


#: The words a tokenizer trained on the world's captions lacks, in the order they are added to it
#: (:func:`vocabulary`). Fixed, not derived from the templates, so that editing a template never
#: renumbers the tokens of a model trained with them (a test checks that every template word is here).
WORDS: tuple[str, ...] = (
    "the", "belongs", "to", "owns", "owner", "of", "is", "was", "made", "in", "city", "where", "comes", "from",
    "who", "whose", "whom", "which", "does", "come", *NAMES, *PLACES, UNKNOWN, ".", "?")


def vocabulary() -> list[str]:
    """Every word of the knowledge documents, questions and answers (lower case, in a stable
    order, :data:`WORDS`): what a tokenizer trained on the world's captions lacks, to be added to it."""
    return list(WORDS)
