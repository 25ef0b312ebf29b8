"""Knowledge that changes without retraining: the retrieval-augmented model (``models/rag``) and
the knowledge bases, measured as knowledge-editing benchmarks measure edits, in one run.

The built-in world gains knowledge no model saw: a fresh knowledge state (who owns each of the 21
kinds of object, where each was made: :mod:`mtsc_sdr.data.knowledge`), asked about objects of
test scenes in the training phrasings and in held-out ones. Phases, each on the same items over
the same channel draws (AWGN at ``--snr-db``):

* **without documents**: both bases empty; accuracy against the state (chance: one value in
  24 names or 16 cities);
* **add**: fact by fact, the document goes into a base and the questions about that fact are
  asked right after ``add`` returns (the very next queries); once into the global base (base
  station), once into the local one (client);
* **replace**: each fact is upserted with another value, in the same document template, then
  asked again: how often the answer follows the new fact, per phrasing (``follows_replacement``);
* **reworded replacement**: each fact is upserted once more, with a third value, in the other
  training template ("dave owns the orange square." for "the orange square belongs to bob."):
  how often the answer follows it (``follows_reworded_replacement``). A harder edit than the
  issue's: the reworded document is the base's top hit for fewer of its questions (the embedder
  ranks the same object's other fact, or the same relation of a like object, above it);
* **remove**: each fact is removed, then asked: how often the answer still claims its last value;
* **precedence**: the local base says one value, the global one another: how often the answer
  follows the local one (the documented rule, :mod:`mtsc_sdr.model.knowledge`);
* **locality**: ordinary VQA questions about the image, with both bases empty and with both full:
  the accuracy change (same items, same channel draws);
* **retrieval**: recall@1 and @5 of the needed document over the questions (searched with the
  question's embedding as the model maps it: its query adapter, if it has one), query latency p50 / p99 of
  an exact index of 100,000 documents on one thread beside the peer's (a bare
  ``faiss.IndexFlatIP`` of the same vectors, queries interleaved) and the ratio, ingestion
  documents/s (:func:`mtsc_sdr.rag.bench.retrieval_figures`), and one item's end-to-end latency
  with and without retrieval.

Run::

    .venv/bin/python benchmarks/rag_update.py [--checkpoint models/rag] [--json]

Writes ``results/bench/rag_update/report.json`` ({meta, rows, by_question_template, retrieval}: a
target row per issue target; each knowledge phase's accuracy per question template).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

#: the issue's targets
AFTER_ADD, AFTER_REPLACE, LOCALITY_POINTS, P50_MS = 80.0, 90.0, 1.0, 5.0
#: "near chance": at most this many points above it
NEAR_CHANCE = 5.0


def knowledge_items(n_scenes: int, seed: int):
    """Knowledge questions about objects of test scenes: for each scene and relation one in the
    training phrasing and one in the held-out phrasing (``question_type`` says which)."""
    from mtsc_sdr.data import SyntheticWorld
    from mtsc_sdr.data.knowledge import RELATIONS, knowledge_example

    world, rng = SyntheticWorld(), np.random.default_rng([seed, 17])
    items = []
    for i in range(n_scenes):
        scene = world.scene("test", i)
        for relation in RELATIONS:
            for phrasing in ("seen", "held_out"):
                e = knowledge_example(scene, rng, phrasing, relation)
                items.append(replace(e, item_id=f"{e.item_id}-{phrasing}", question_type=phrasing))
    return items


class Asker:
    """Sends items through the model (client -> AWGN channel -> base station -> client) with the
    same channel draws every time it is asked the same items."""

    def __init__(self, model, snr_db: float, seed: int, k: int, batch: int = 64):
        self.model, self.snr_db, self.seed, self.k, self.batch = model, snr_db, seed, k, batch

    def answers(self, items, local=None, glob=None) -> list[str]:
        import torch

        from mtsc_sdr.data import collate
        from mtsc_sdr.rag.augment import with_context

        items = with_context(items, local, glob, self.k, self.model.client.retrieval_query)
        out: list[str] = []
        for start in range(0, len(items), self.batch):
            chunk = items[start:start + self.batch]
            gen = torch.Generator().manual_seed(self.seed + start)
            out += self.model.predict(collate(chunk), "vqa", self.snr_db, fading=None, generator=gen)
        return out


def question_template(item) -> str:
    """The question template of a knowledge item: its question with the object as ``{s}``."""
    colour, shape = item.fact.split("/")[1].split("-")
    return item.question.replace(f"{colour} {shape}", "{s}")


def accuracy(answers, truth) -> float:
    """Percent of answers equal to the truth (exact match after normalisation)."""
    from mtsc_sdr.metrics.vqa import normalize_answer

    hits = [normalize_answer(a) == normalize_answer(t) for a, t in zip(answers, truth)]
    return 100.0 * float(np.mean(hits)) if hits else float("nan")


def third_value(relation: str, taken: tuple[str, ...], rng) -> str:
    """A value of ``relation`` that is none of ``taken``."""
    from mtsc_sdr.data.knowledge import RELATIONS

    free = [v for v in RELATIONS[relation] if v not in taken]
    return free[int(rng.integers(len(free)))]


def by_fact(items) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, e in enumerate(items):
        out.setdefault(e.fact, []).append(i)
    return out


def fact_by_fact(asker, items, edit, ask_local: bool) -> list[str]:
    """For each fact: ``edit(key)`` (a write to a base), then the questions about it asked at once;
    the answers in item order. ``ask_local``: the edited base is the client's."""
    answers: list[str] = [""] * len(items)
    for key, idx in by_fact(items).items():
        base = edit(key)
        got = asker.answers([items[i] for i in idx], local=base if ask_local else None,
                            glob=None if ask_local else base)
        for i, a in zip(idx, got):
            answers[i] = a
    return answers


def run(args) -> dict:
    from mtsc_sdr.data import examples
    from mtsc_sdr.data.knowledge import RELATIONS, UNKNOWN, Facts, other_value
    from mtsc_sdr.model import load
    from mtsc_sdr.rag.augment import hits, retrieval_k_of
    from mtsc_sdr.rag.bench import retrieval_figures
    from mtsc_sdr.rag.embedder import SentenceEmbedder
    from mtsc_sdr.rag.kb import KnowledgeBase

    model = load(args.checkpoint).eval()
    k = retrieval_k_of(model.cfg, args.k)
    asker = Asker(model, args.snr_db, args.seed, k)
    items = knowledge_items(args.scenes, args.seed)
    phrasing = np.array([e.question_type for e in items])
    template = [question_template(e) for e in items]
    state = Facts(np.random.default_rng([args.seed, 99]))
    new = {key: other_value(key.split("/")[0], v, np.random.default_rng([args.seed, i]))
           for i, (key, v) in enumerate(state.values.items())}
    newer = {key: third_value(key.split("/")[0], (v, new[key]), np.random.default_rng([args.seed, 1000 + i]))
             for i, (key, v) in enumerate(state.values.items())}
    truth = [state.values[e.fact] for e in items]
    truth_new = [new[e.fact] for e in items]
    truth_newer = [newer[e.fact] for e in items]
    unrelated = examples("test", ["vqa"], args.unrelated, seed=args.seed)
    chance = 100.0 * float(np.mean([1.0 / len(RELATIONS[e.fact.split('/')[0]]) for e in items]))
    embedder = SentenceEmbedder()
    rows, tmp = [], Path(tempfile.mkdtemp(prefix="rag_update-"))
    by_template: dict[str, dict[str, float]] = {}

    def row(metric, value, **extra):
        rows.append({"system": "mtsc", "task": "vqa", "channel": "awgn", "snr_db": args.snr_db,
                     "metric": metric, "value": None if value is None else round(float(value), 3), **extra})

    def per_phrasing(metric, answers, truth_, least=None, most=None, **extra):
        """One row for all items and one per phrasing, each with its target (``least`` / ``most`` %)."""
        for ph in ("all", "seen", "held_out"):
            sel = np.arange(len(answers)) if ph == "all" else np.flatnonzero(phrasing == ph)
            acc = accuracy([answers[i] for i in sel], [truth_[i] for i in sel])
            goal = ({"target": f">= {least:g} %", "meets_target": acc >= least} if least is not None else
                    {"target": f"<= {most:g} % (near chance)", "meets_target": acc <= most} if most is not None else {})
            row(metric, acc, phrasing=ph, **extra, **goal)
        name = f"{metric}/{extra['base']}" if "base" in extra else metric
        by_template[name] = {t: accuracy(*zip(*[(a, truth_[i]) for i, a in enumerate(answers) if template[i] == t]))
                             for t in sorted(set(template))}

    def fact_doc(key, value, variant=0):
        return {"id": key, "text": replace(state.fact(key), value=value).text("seen", variant)}

    t0 = time.monotonic()
    # -- without documents
    empty = asker.answers(items)
    per_phrasing("accuracy_without_documents", empty, truth, most=chance + NEAR_CHANCE, chance=round(chance, 2))
    row("unknown_share_without_documents", 100.0 * np.mean([a == UNKNOWN for a in empty]))
    results = {}
    for where in ("global", "local"):
        kb = KnowledgeBase.open(tmp / where, embedder=embedder)
        local = where == "local"
        added = fact_by_fact(asker, items, lambda key: (kb.add([fact_doc(key, state.values[key])]), kb)[1], local)
        per_phrasing("accuracy_after_add", added, truth, AFTER_ADD, base=where)
        replaced = fact_by_fact(asker, items, lambda key: (kb.upsert([fact_doc(key, new[key])]), kb)[1], local)
        per_phrasing("follows_replacement", replaced, truth_new, AFTER_REPLACE, base=where)
        reworded = fact_by_fact(asker, items, lambda key: (kb.upsert([fact_doc(key, newer[key], 1)]), kb)[1], local)
        per_phrasing("follows_reworded_replacement", reworded, truth_newer, AFTER_REPLACE, base=where)
        removed = fact_by_fact(asker, items, lambda key: (kb.remove([key]), kb)[1], local)
        claims = 100.0 * np.mean([a == truth_newer[i] for i, a in enumerate(removed)])
        row("still_claims_after_remove", claims, base=where, target="the answer no longer claims it (<= chance)",
            meets_target=claims <= chance)
        row("unknown_share_after_remove", 100.0 * np.mean([a == UNKNOWN for a in removed]), base=where)
        results[where] = kb
    # -- precedence: local says the state, global the other value
    local_kb, global_kb = results["local"], results["global"]
    local_kb.upsert([fact_doc(key, v) for key, v in state.values.items()])
    global_kb.upsert([fact_doc(key, new[key], 1) for key in state.values])
    both = asker.answers(items, local=local_kb, glob=global_kb)
    row("follows_local_when_bases_disagree", accuracy(both, truth), rule="local wins")
    row("follows_global_when_bases_disagree", accuracy(both, truth_new))
    # -- locality: unrelated questions, bases empty vs full
    before = asker.answers(unrelated)
    after = asker.answers(unrelated, local=local_kb, glob=global_kb)
    refs = [e.references[0] for e in unrelated]
    a0, a1 = accuracy(before, refs), accuracy(after, refs)
    rows.append({"system": "mtsc", "task": "vqa", "channel": "awgn", "snr_db": args.snr_db,
                 "metric": "unrelated_accuracy_change", "value": round(a1 - a0, 3), "before": a0, "after": a1,
                 "items": len(unrelated), "target": f"abs(change) <= {LOCALITY_POINTS:g} point",
                 "meets_target": abs(a1 - a0) <= LOCALITY_POINTS})
    # -- retrieval: recall@5 of the needed document (global base holds the whole state)
    found = [hits(global_kb, e.question, 5, model.client.retrieval_query) for e in items]   # as the model searches
    for n in (1, 5):
        row(f"recall_at_{n}", 100.0 * np.mean([any(h.doc_id == e.fact for h in got[:n]) for e, got in zip(items, found)]),
            unit="%")
    # -- one item end to end, with and without retrieval (batch 1)
    one = Asker(model, args.snr_db, args.seed, k, batch=1)
    lat = {"with": [], "without": []}
    for e in items[:args.latency_items]:
        for name, bases in (("without", (None, None)), ("with", (local_kb, global_kb))):
            t = time.perf_counter()
            one.answers([e], *bases)
            lat[name].append(1e3 * (time.perf_counter() - t))
    for name, v in lat.items():
        rows.append({"system": "mtsc", "task": "vqa", "channel": "awgn", "snr_db": args.snr_db,
                     "metric": "item_latency_ms_p50", "value": round(float(np.percentile(v, 50)), 3),
                     "retrieval": name, "items": len(v)})
    for kb in results.values():
        kb.close()
    figures = retrieval_figures(embedder, n_vectors=args.index_docs)
    rows += figures.pop("rows")
    p50 = figures["faiss_search_ms"]["p50"]
    rows.append({"system": "mtsc", "task": "retrieval", "channel": "none", "snr_db": None,
                 "metric": "query_latency_ms_p50", "value": p50, "stage": "faiss_search", "items": args.index_docs,
                 "target": f"<= {P50_MS:g} ms (exact index, one thread)", "meets_target": p50 <= P50_MS})
    rows.append({"system": "faiss.IndexFlatIP", "task": "retrieval", "channel": "none", "snr_db": None,
                 "metric": "query_latency_ms_p50", "value": figures["faiss_flatip_ms"]["p50"],
                 "stage": "peer, same queries interleaved", "items": args.index_docs})
    rows.append({"system": "mtsc", "task": "retrieval", "channel": "none", "snr_db": None,
                 "metric": "flat_speedup_over_faiss_flatip", "value": figures["flat_speedup"],
                 "stage": f"same hits for every query: {figures['same_hits']}", "items": args.index_docs})
    return {"rows": rows, "retrieval_k": k, "by_question_template": by_template, "retrieval": figures, "wall_s": round(time.monotonic() - t0, 1)}


def markdown(rows) -> str:
    """The rows as one Markdown table: metric, where, value, target and verdict."""
    keys = ("base", "phrasing", "retrieval", "stage", "rule", "chance", "before", "after", "items")
    lines = ["| metric | details | value | target | |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        details = ", ".join(f"{k} {r[k]}" for k in keys if k in r)
        verdict = "" if "meets_target" not in r else ("PASS" if r["meets_target"] else "FAIL")
        lines.append(f"| {r['metric']} | {details} | {r['value']} | {r.get('target', '')} | {verdict} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="models/rag")
    p.add_argument("--scenes", type=int, default=100, help="test scenes; 4 knowledge questions each")
    p.add_argument("--unrelated", type=int, default=300, help="ordinary VQA test items for locality")
    p.add_argument("--snr-db", type=float, default=20.0)
    p.add_argument("-k", type=int, help="snippets retrieved per base (default: the k the model was trained with)")
    p.add_argument("--latency-items", type=int, default=50)
    p.add_argument("--index-docs", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/bench/rag_update")
    p.add_argument("--json", action="store_true")
    p.add_argument("--markdown", action="store_true", help="also print the results as Markdown tables (model card)")
    args = p.parse_args(argv)

    from mtsc_sdr.report import git_commit, run_meta

    result = run(args)
    report = {"meta": {**run_meta(vars(args), {"seed": args.seed}), "commit": git_commit()}, **result}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    ok = True
    for r in result["rows"]:
        verdict = "" if "meets_target" not in r else ("PASS " if r["meets_target"] else "FAIL ")
        ok &= r.get("meets_target", True) is not False
        extra = {k: v for k, v in r.items() if k not in ("system", "task", "channel", "snr_db", "metric", "value",
                                                         "meets_target")}
        print(f"{verdict}{r['metric']}: {r['value']} {json.dumps(extra)}")
    print("accuracy (%) per question template: " + json.dumps(result["by_question_template"]))
    print("retrieval: " + json.dumps(result["retrieval"]))
    if args.markdown:
        print(markdown(result["rows"]))
    print(f"wrote {out / 'report.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
