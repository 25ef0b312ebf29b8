"""Retrieval in the training loop: every item with a question is trained with what a local and a
global knowledge base would retrieve for it, so the model learns to use retrieved context -- and
to ignore it when it is irrelevant or missing -- rather than to memorise facts.

For each such item, :meth:`RetrievalLoop.attach` draws a fresh knowledge state
(:class:`mtsc_sdr.data.knowledge.Facts`: who owns each kind of object, where it was made), fills
a small local and a small global base with documents of it (distractors: other facts, often the
same object's other relation, whose wording is closest to the question), puts the fact a
knowledge question asks about into neither, the local, the global, both, or both with different
values (:data:`CASES`), and retrieves the top ``k`` of each base for the question by the inner
product of normalized embeddings -- the knowledge bases' own scoring, with the same embedder. The
target is then what the retrieved documents say: the local base's value when it retrieved the
fact (the precedence rule of :mod:`mtsc_sdr.model.knowledge`), else the global one's, else
:data:`~mtsc_sdr.data.knowledge.UNKNOWN`. Ordinary questions keep their answers and get the
distractors only.

Documents and questions come from a finite set of templates, so their embeddings are computed
once and cached (the embedder runs a few thousand sentences when training starts).

**Shuffled wording** (``shuffle``): with that probability, the question of a knowledge item and,
independently, each document it is given are shown to the model with their words in a random
order (after retrieval, which sees the sentence as written). Two templates per relation teach a
small from-scratch model to key on the sentence *pattern*, and it answers "unknown" to a new
pattern made of the same words; shuffled sentences make the words that matter -- the object's
colour and shape, the relation's word, the value -- the only cue. A shuffle that happens to spell a
held-out phrasing (:data:`mtsc_sdr.data.knowledge.QUESTIONS`, ``DOCUMENTS``) is drawn again, so
evaluation phrasings stay unseen. With ``extra_words`` n > 0, a shuffled sentence also gains 0..n
words drawn from its relation's training vocabulary (:func:`relation_words`: every word of the
relation's training question and document templates): a question is then recognised by its object
and any of its relation's words, not only the words of two question templates (a new phrasing
such as "in which city ..." borrows "in" from the documents).

**Filler words** (``filler_words``): a knowledge question, shuffled or not, also gains 0..n words
inserted at random places, drawn from the words of the world's image questions that name no kind
of object and belong to no relation (:func:`filler_vocabulary`: "what", "object", "many", "on", ...).
The relation's words and the object stay the cue, and a word the model knows from elsewhere no
longer turns a knowledge question into "unknown" (the stage-6 release, given the fact as its first
local snippet, answered "whose object is the red circle?" right for 52 % of rag_update's
replacement questions and "unknown" for most of the rest; every other template 100 %). A question
that happens to spell a held-out phrasing is drawn again here too.

**Reordered hits** (``reorder``): with that probability, a base's retrieved snippets are given in
a random order instead of best first. A trained fact's own document is nearly always the best
hit, so without it a model learns to read the first snippet only: the stage-4 release answered
"unknown" to "whose is the orange square?" given "the orange square was made in tokyo. dave owns
the orange square.", and "dave" with the two sentences swapped. A base ranks a reworded or
edited document below its neighbours often enough (rag_update: a reworded replacement is the
top hit for 81 % of its questions) that the answer must not depend on the rank.

**Query adapter** (``query_adapter``): a model that has one (:mod:`.adapter`) searches with the
question's embedding moved by it, here as at inference, so it trains on the hits it will be given.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np

from mtsc_sdr.data import SyntheticWorld, TaskExample
from mtsc_sdr.data import knowledge as kn
from mtsc_sdr.data.vocab import COLOURS, SHAPES
from mtsc_sdr.model.knowledge import adapted_query

from .embedder import Embedder

#: where a knowledge question's fact is put, and how often: (case, probability)
CASES: tuple[tuple[str, float], ...] = (("none", 0.15), ("local", 0.3), ("global", 0.3), ("both", 0.1),
                                        ("conflict", 0.15))


class RetrievalLoop:
    """Attach retrieved local and global context to training items (see the module docstring).

    Args:
        embedder: maps texts to normalized float32 vectors (N, dim) (only ``embed`` is used).
        k: snippets retrieved from each base (the same ``k`` as at inference).
        max_local, max_global: a base holds 0..max documents besides the asked fact.
        cases: :data:`CASES`.
        shuffle: probability that a knowledge question, and each document given with it, is shown
            with its words shuffled (see the module docstring).
        extra_words: at most this many of the relation's words added to a shuffled sentence.
        filler_words: at most this many :func:`filler_vocabulary` words inserted into each knowledge question.
        reorder: probability that a base's retrieved snippets are given in a random order.
        query_adapter: the model's query adapter float32 (dim, dim) (:mod:`.adapter`), applied to
            each question's embedding before it is scored, as at inference; None: the plain embedding.
    """

    def __init__(self, embedder: Embedder, k: int = 2, max_local: int = 6, max_global: int = 10,
                 cases: tuple[tuple[str, float], ...] = CASES, shuffle: float = 0.0, extra_words: int = 0,
                 filler_words: int = 0, reorder: float = 0.0, query_adapter: Optional[np.ndarray] = None):
        for name, prob in (("shuffle", shuffle), ("reorder", reorder)):
            if not 0.0 <= prob <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {prob}")
        for name, n in (("extra_words", extra_words), ("filler_words", filler_words)):
            if n < 0:
                raise ValueError(f"{name} must be >= 0, got {n}")
        self.embedder, self.k, self.shuffle, self.reorder = embedder, int(k), float(shuffle), float(reorder)
        self.extra_words, self.filler_words = int(extra_words), int(filler_words)
        self._filler = filler_vocabulary() if filler_words else []
        self.query_adapter = query_adapter
        self._words = {r: relation_words(r) for r in kn.RELATIONS}
        self._held_out = _held_out_sentences()
        self.max_local, self.max_global = int(max_local), int(max_global)
        self.cases = [c for c, _ in cases]
        p = np.array([w for _, w in cases], dtype=np.float64)
        self.p = p / p.sum()
        self._cache: dict[str, np.ndarray] = {}
        self.vectors([kn.Fact(r, c, s, v).text("seen", i) for r, vals in kn.RELATIONS.items()
                      for c, s in kn.subjects() for v in vals for i in range(len(kn.DOCUMENTS[r]["seen"]))])

    def vectors(self, texts: list[str]) -> np.ndarray:
        """float32 (N, dim) embeddings of ``texts``, computed once per distinct text."""
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if new:
            for t, v in zip(new, np.asarray(self.embedder.embed(new), dtype=np.float32)):
                self._cache[t] = v
        return np.stack([self._cache[t] for t in texts])

    def retrieve(self, query: str, docs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The top ``k`` of ``docs`` ((key, text) pairs) for ``query``, best first."""
        if not docs:
            return []
        scores = self.vectors([d[1] for d in docs]) @ adapted_query(self.vectors([query]), self.query_adapter)[0]
        return [docs[i] for i in np.argsort(-scores, kind="stable")[:self.k].tolist()]

    def attach(self, items: list[TaskExample], rng: np.random.Generator) -> list[TaskExample]:
        """``items`` with ``local_context`` / ``global_context`` set for those with a question,
        and knowledge questions answered by what was retrieved (see the module docstring)."""
        return [self._attach(e, rng) if e.question else e for e in items]

    def _attach(self, item: TaskExample, rng: np.random.Generator) -> TaskExample:
        facts = kn.Facts(rng)
        keys = [k for k in facts.values if k != item.fact]
        local = self._documents(facts, self._distractors(keys, item.fact, self.max_local, rng), rng)
        glob = self._documents(facts, self._distractors(keys, item.fact, self.max_global, rng), rng)
        if item.fact is not None:
            fact = facts.fact(item.fact)
            case = self.cases[int(rng.choice(len(self.cases), p=self.p))]
            if case in ("local", "both", "conflict"):
                local.append((fact.key, fact.text("seen", int(rng.integers(2)))))
            if case in ("global", "both"):
                glob.append((fact.key, fact.text("seen", int(rng.integers(2)))))
            if case == "conflict":
                changed = replace(fact, value=kn.other_value(fact.relation, fact.value, rng))
                glob.append((changed.key, changed.text("seen", int(rng.integers(2)))))
        got_local, got_global = self.retrieve(item.question, local), self.retrieve(item.question, glob)
        if self.reorder:
            got_local, got_global = (self._maybe_reordered(got, rng) for got in (got_local, got_global))
        item = replace(item, local_context=" ".join(t for _, t in got_local),
                       global_context=" ".join(t for _, t in got_global))
        if item.fact is None:
            return item
        item = kn.answered(item, answer_from(item.fact, got_local, got_global))
        if self.shuffle == 0.0 and self.filler_words == 0:
            return item
        shuffler = np.random.default_rng(int(rng.integers(2**63)))   # one draw of rng, however much is shuffled
        question = self._with_filler(self._maybe_shuffled(item.question, item.fact, shuffler), shuffler)
        return replace(item, question=question,
                       local_context=" ".join(self._maybe_shuffled(t, key, shuffler) for key, t in got_local),
                       global_context=" ".join(self._maybe_shuffled(t, key, shuffler) for key, t in got_global))

    def _maybe_reordered(self, hits: list[tuple[str, str]], rng: np.random.Generator) -> list[tuple[str, str]]:
        """``hits`` in a random order with probability ``reorder`` (the same draws of ``rng`` either way)."""
        order = rng.permutation(len(hits)).tolist()
        return [hits[i] for i in order] if rng.random() < self.reorder else hits

    def _with_filler(self, question: str, rng: np.random.Generator) -> str:
        """``question`` with 0..``filler_words`` filler words inserted at random places before its
        final ``?``; never one of the held-out phrasings (redrawn, else unchanged)."""
        n = int(rng.integers(self.filler_words + 1)) if self.filler_words else 0
        if n == 0:
            return question
        for _ in range(8):
            words, end = _words_and_end(question)
            for word in rng.choice(self._filler, size=n).tolist():
                words.insert(int(rng.integers(len(words) + 1)), word)
            out = " ".join(words) + end
            if out not in self._held_out:
                return out
        return question

    def _maybe_shuffled(self, sentence: str, key: str, rng: np.random.Generator) -> str:
        """``sentence`` (about fact ``key``) with its words in a random order (its final ``?`` or
        ``.`` kept last), plus up to ``extra_words`` of its relation's words, with probability
        ``shuffle``; never one of the held-out phrasings (redrawn, else unchanged)."""
        if rng.random() >= self.shuffle:
            return sentence
        words, end = _words_and_end(sentence)
        if self.extra_words:
            vocab = self._words[key.split("/")[0]]
            words += [vocab[i] for i in rng.integers(len(vocab), size=int(rng.integers(self.extra_words + 1)))]
        for _ in range(8):
            out = " ".join(words[i] for i in rng.permutation(len(words))) + end
            if out not in self._held_out:
                return out
        return sentence

    @staticmethod
    def _distractors(keys: list[str], asked: Optional[str], most: int, rng: np.random.Generator) -> list[str]:
        """0..``most`` fact keys other than ``asked``; half the time one of them is the asked
        object's other relation (the hardest distractor)."""
        n = int(rng.integers(most + 1))
        out = [keys[i] for i in rng.choice(len(keys), size=min(n, len(keys)), replace=False).tolist()]
        if asked is not None and n and rng.random() < 0.5:
            relation, kind = asked.split("/")
            sibling = f"{next(r for r in kn.RELATIONS if r != relation)}/{kind}"
            if sibling not in out:
                out[0] = sibling
        return out

    @staticmethod
    def _documents(facts: kn.Facts, keys: list[str], rng: np.random.Generator) -> list[tuple[str, str]]:
        return [(k, facts.fact(k).text("seen", int(rng.integers(2)))) for k in keys]


def _words_and_end(sentence: str) -> tuple[list[str], str]:
    """A sentence's words and its final ``?`` or ``.`` ("" if it has none), kept apart so that a
    reworded sentence can end as the original does."""
    end = sentence[-1] if sentence[-1:] in ("?", ".") else ""
    return (sentence[:-1] if end else sentence).split(), end


def relation_words(relation: str) -> list[str]:
    """Every word of ``relation``'s training (``seen``) question and document templates, sorted,
    without the object and value placeholders and the punctuation."""
    templates = kn.QUESTIONS[relation]["seen"] + kn.DOCUMENTS[relation]["seen"]
    words = {w for t in templates for w in t.replace("?", " ").replace(".", " ").split()}
    return sorted(words - {"{s}", "{v}"})


def filler_vocabulary(n_scenes: int = 200) -> list[str]:
    """The words of the image questions of the first ``n_scenes`` built-in train scenes that are
    neither a colour nor a shape (singular or plural) nor a knowledge word
    (:data:`mtsc_sdr.data.knowledge.WORDS`: the relations' words, values, punctuation), sorted."""
    words = {w for scene in SyntheticWorld(seed=0).scenes("train", n_scenes) for qa in scene.qa
             for w in qa.question.replace("?", " ").replace(",", " ").split()}
    banned = {*COLOURS, *SHAPES, *(f"{s}s" for s in SHAPES), *kn.WORDS}
    return sorted(words - banned)


def _held_out_sentences() -> frozenset[str]:
    """Every question and document the held-out phrasings can spell (evaluation only)."""
    out = {kn.question(r, c, s, "held_out", i) for r in kn.RELATIONS for c, s in kn.subjects()
           for i in range(len(kn.QUESTIONS[r]["held_out"]))}
    out |= {kn.Fact(r, c, s, v).text("held_out", i) for r, vals in kn.RELATIONS.items() for c, s in kn.subjects()
            for v in vals for i in range(len(kn.DOCUMENTS[r]["held_out"]))}
    return frozenset(out)


def answer_from(fact: str, local: list[tuple[str, str]], glob: list[tuple[str, str]]) -> Optional[str]:
    """What retrieved documents ((key, text) pairs) say about ``fact`` under the precedence rule:
    the local base's value if it retrieved the fact, else the global base's, else None. The
    value is read off the document's text (the word the template puts in ``{v}``)."""
    for docs in (local, glob):
        for key, text in docs:
            if key == fact:
                return value_in(fact, text)
    return None


def value_in(fact: str, text: str) -> str:
    """The value a document about ``fact`` (key) states: the one of its relation's values it names."""
    relation = fact.split("/")[0]
    words = set(text.replace(".", " ").split())
    found = [v for v in kn.RELATIONS[relation] if v in words]
    if len(found) != 1:
        raise ValueError(f"document {text!r} names {len(found)} values of {relation}")
    return found[0]
