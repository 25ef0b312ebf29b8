"""Fitting the query adapter: a learned linear correction of a question's sentence embedding before
it searches a knowledge base (:func:`mtsc_sdr.model.knowledge.adapted_query`).

Why: the embedder (all-MiniLM-L6-v2, not trained on this world) ranks by overall wording. For
"where was the blue triangle made?" it puts "henry owns the blue triangle." (same object, other
relation) and "the green triangle was made in rome." (same relation, like object) above "sofia is
the city where the blue triangle was made.": a fact stated in a template other than its
neighbours' is the top hit for about three quarters of its questions, and the model answers from
what it is given. Retrieval-augmented generation trains its query encoder for the documents it
must find, with the document index fixed (Lewis et al., 2020); here the query side is the frozen
embedder plus a residual matrix ``A`` (dim x dim), ``q' = normalize(q + A q)``, and the document
side stays the embedder's, so no stored vector changes and documents are added as before.

How (:func:`fit_query_adapter`): contrastive, on the built-in world's knowledge
(:mod:`mtsc_sdr.data.knowledge`) in its *training* phrasings only. Each example is a training
question about one object and relation and a random knowledge state of all 42 facts, each stated
in a random training template; the loss is the cross-entropy of the asked fact's document among
the 42 under ``softmax(q' . d / temperature)``, plus ``decay * ||A||^2`` to keep ``q'`` near ``q``.
Adam, ``steps`` steps of ``batch`` questions, seeded: the same matrix for the same arguments.
It reports the asked fact's top-1 rate before and after, for training questions and for the
held-out question phrasings it never saw, with the asked fact's document in the template its
neighbours do not use (the hardest case: rag_update's reworded replacement).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from mtsc_sdr.data import knowledge as kn
from mtsc_sdr.model.knowledge import adapted_query

from .embedder import Embedder, identity


def _embedded(embedder: Embedder, texts: dict) -> dict:
    keys = list(texts)
    vectors = np.concatenate([embedder.embed([texts[k] for k in keys[i:i + 256]]) for i in range(0, len(keys), 256)])
    return {k: vectors[i] for i, k in enumerate(keys)}


class _World:
    """The knowledge world's questions and documents, embedded once: questions by (relation,
    colour, shape, phrasing, template), documents by (relation, colour, shape, value, template)."""

    def __init__(self, embedder: Embedder):
        self.facts = [(r, c, s) for r in kn.RELATIONS for c, s in kn.subjects()]         # 42
        self.questions = _embedded(embedder, {
            (r, c, s, ph, i): kn.question(r, c, s, ph, i) for r, c, s in self.facts for ph in ("seen", "held_out")
            for i in range(len(kn.QUESTIONS[r][ph]))})
        self.documents = _embedded(embedder, {
            (r, c, s, v, i): kn.Fact(r, c, s, v).text("seen", i) for r, c, s in self.facts
            for v in kn.RELATIONS[r] for i in range(len(kn.DOCUMENTS[r]["seen"]))})

    def asked(self, phrasing: str) -> list[tuple]:
        return [k for k in self.questions if k[3] == phrasing]

    def state(self, rng: np.random.Generator, reworded: tuple | None = None) -> np.ndarray:
        """float32 (42, dim): one document per fact, random values; templates random, or (with
        ``reworded``, a fact) template 0 everywhere but that fact's, which is 1."""
        rows = []
        for f in self.facts:
            values = kn.RELATIONS[f[0]]
            template = int(rng.integers(2)) if reworded is None else int(f == reworded)
            rows.append(self.documents[(*f, values[int(rng.integers(len(values)))], template)])
        return np.stack(rows)


def top1(world: _World, adapter: np.ndarray | None, phrasing: str, rng: np.random.Generator, draws: int = 3) -> float:
    """% of ``phrasing`` questions whose fact's document (reworded, :meth:`_World.state`) is the
    best of the 42 for the adapted question, over ``draws`` random states per question."""
    hits = []
    for key in world.asked(phrasing):
        fact = key[:3]
        query = adapted_query(world.questions[key][None], adapter)[0]
        for _ in range(draws):
            scores = world.state(rng, reworded=fact) @ query
            hits.append(scores.argmax() == world.facts.index(fact))
    return 100.0 * float(np.mean(hits))


def fit_query_adapter(embedder: Embedder, *, steps: int = 600, batch: int = 64, lr: float = 1e-3,
                      temperature: float = 0.05, decay: float = 1e-2, seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit the query adapter for ``embedder`` (see the module docstring).

    Returns:
        (adapter float32 (dim, dim), report): the report has the embedder's identity, the
        arguments, the wall time and the top-1 rates (%) before and after, for training
        (``seen``) and held-out question phrasings.
    """
    import torch

    t0 = time.monotonic()
    world = _World(embedder)
    rng = np.random.default_rng([seed, 0xADA])
    generator = torch.Generator().manual_seed(seed)
    dim = int(embedder.dim)
    a = torch.zeros(dim, dim, requires_grad=True)
    opt = torch.optim.Adam([a], lr=lr)
    asked = world.asked("seen")
    for _ in range(steps):
        picks = torch.randint(len(asked), (batch,), generator=generator).tolist()
        queries = torch.from_numpy(np.stack([world.questions[asked[i]] for i in picks]))          # (B, dim)
        documents = torch.from_numpy(np.stack([world.state(rng) for _ in picks]))                 # (B, 42, dim)
        target = torch.tensor([world.facts.index(asked[i][:3]) for i in picks])
        moved = queries + queries @ a.T
        moved = moved / moved.norm(dim=1, keepdim=True)
        logits = torch.einsum("bd,bnd->bn", moved, documents) / temperature
        loss = torch.nn.functional.cross_entropy(logits, target) + decay * (a ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    adapter = a.detach().numpy().astype(np.float32)
    check = np.random.default_rng([seed, 0xE7A1])
    report = {"embedder": identity(embedder), "steps": steps, "batch": batch, "lr": lr, "temperature": temperature,
              "decay": decay, "seed": seed, "final_loss": round(float(loss.detach()), 4),
              "frobenius_norm": round(float(np.linalg.norm(adapter)), 4),
              "top1_reworded_pct": {ph: {"before": round(top1(world, None, ph, check), 2),
                                         "after": round(top1(world, adapter, ph, check), 2)}
                                    for ph in ("seen", "held_out")},
              "wall_s": round(time.monotonic() - t0, 2)}
    return adapter, report
