"""``mtsc-sdr kb``: build and query a knowledge base directory (see :mod:`mtsc_sdr.rag.kb`).

::

    mtsc-sdr kb add --kb DIR --id ID --text TEXT [--metadata JSON] [--upsert]
    mtsc-sdr kb add --kb DIR --file notes.txt --file more.jsonl     # .txt: one document, id = file stem
    mtsc-sdr kb remove --kb DIR ID [ID ...] [--missing-ok]            # .jsonl: {"id", "text", "metadata"} a line
    mtsc-sdr kb query --kb DIR "what is left of the red circle?" -k 5 --where scene=3
    mtsc-sdr kb stats --kb DIR
    mtsc-sdr kb rebuild --kb DIR [--index hnsw]

Every action takes ``--json`` (one object: ``meta`` with the command, the knowledge base and its
state, and ``rows``: one record per document written or removed, per hit, or per figure), and
``--embedder DIR`` for another local sentence model than the packaged all-MiniLM-L6-v2. Errors
(bad input, a corrupt store, another embedder, a held lock) print one line and exit with status 2.
torch, transformers and faiss are imported only when an action runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from mtsc_sdr.options import add_json, add_threads
from mtsc_sdr.report import run_meta

from .errors import KnowledgeBaseError

ACTIONS = ("add", "remove", "query", "stats", "rebuild")
INDEX_KINDS = ("flat", "hnsw")


def add_arguments(p: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--kb", required=True, metavar="DIR", help="the knowledge base directory")
    common.add_argument("--embedder", metavar="DIR", help="a local sentence-transformers BERT directory "
                        "(config.json, model.safetensors, tokenizer.json); default: the packaged all-MiniLM-L6-v2")
    common.add_argument("--index", choices=INDEX_KINDS, help="index kind: flat (exact) or hnsw (approximate, "
                        "large stores); default: the kind saved, else flat")
    add_threads(common, 1, help="torch threads of the embedder")
    add_json(common)
    sub = p.add_subparsers(dest="kb_action", metavar="ACTION", required=True)
    a = sub.add_parser("add", parents=[common], help="add documents (one transaction)",
                       description="Add documents: --id/--text, and/or --file (repeatable).")
    a.add_argument("--id", help="document id (with --text)")
    a.add_argument("--text", help="document text (with --id)")
    a.add_argument("--metadata", metavar="JSON", help="metadata object of the --id document and of .txt files")
    a.add_argument("--file", action="append", metavar="F", default=[],
                   help=".txt: one document, id = the file's stem; .jsonl: one {\"id\", \"text\", \"metadata\"} a line")
    a.add_argument("--upsert", action="store_true", help="replace documents stored under the same ids")
    r = sub.add_parser("remove", parents=[common], help="remove documents by id")
    r.add_argument("ids", nargs="+", metavar="ID")
    r.add_argument("--missing-ok", action="store_true", help="ignore ids that are not stored")
    q = sub.add_parser("query", parents=[common], help="the documents closest to a text")
    q.add_argument("text")
    q.add_argument("-k", type=int, default=5, help="documents returned (default 5)")
    q.add_argument("--where", action="append", metavar="KEY=VALUE", default=[],
                   help="metadata filter (repeatable, all must hold); VALUE is read as JSON when it parses "
                        "(3, true, \"3\"), else as a string")
    sub.add_parser("stats", parents=[common], help="counts, embedder, generation, index")
    sub.add_parser("rebuild", parents=[common], help="rebuild the index from the store and save it")


def parse_where(items: list[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> ``{key: value}``; a value is JSON when it parses, else a string."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise KnowledgeBaseError(f"--where {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _metadata(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise KnowledgeBaseError(f"--metadata: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise KnowledgeBaseError(f"--metadata: expected a JSON object, got {text!r}")
    return value


def read_documents(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The documents ``kb add`` was given: ``--id``/``--text``, then each ``--file`` in order."""
    docs: list[dict[str, Any]] = []
    if (args.id is None) != (args.text is None):
        raise KnowledgeBaseError("add: --id and --text go together")
    metadata = _metadata(args.metadata)
    if args.id is not None:
        docs.append({"id": args.id, "text": args.text, "metadata": metadata})
    for name in args.file:
        path = Path(name)
        try:
            content = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KnowledgeBaseError(f"add: cannot read {path}: {exc}") from None
        if path.suffix == ".txt":
            docs.append({"id": path.stem, "text": content, "metadata": metadata})
        elif path.suffix == ".jsonl":
            for number, line in enumerate(content.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                except ValueError as exc:
                    raise KnowledgeBaseError(f"add: {path}:{number}: not JSON ({exc})") from None
                if not isinstance(doc, dict):
                    raise KnowledgeBaseError(f"add: {path}:{number}: expected an object with id, text, metadata")
                docs.append(doc)
        else:
            raise KnowledgeBaseError(f"add: {path}: expected a .txt or .jsonl file")
    if not docs:
        raise KnowledgeBaseError("add: nothing to add (give --id and --text, or --file)")
    return docs


def _open(args: argparse.Namespace, create: bool):
    from .embedder import SentenceEmbedder
    from .kb import KnowledgeBase

    embedder = SentenceEmbedder(args.embedder, threads=args.threads)
    return KnowledgeBase.open(args.kb, embedder, create=create, index=args.index)


def _report(args: argparse.Namespace, stats: dict[str, Any], rows: list[dict[str, Any]], **extra: Any) -> str:
    config = {k: v for k, v in vars(args).items() if k not in ("verbose", "command")}
    meta = {**run_meta(config, {}), "command": f"kb {args.kb_action}", "kb": stats, **extra}
    return json.dumps({"meta": meta, "rows": rows})


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (KnowledgeBaseError, OSError) as exc:
        print(f"mtsc-sdr kb {args.kb_action}: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from .kb import as_documents, chunk_text

    action = args.kb_action
    # bad input is refused before a model is loaded or a directory made
    checked = as_documents(read_documents(args), "upsert" if args.upsert else "add") if action == "add" else []
    where = parse_where(args.where) if action == "query" else None
    with _open(args, create=action == "add") as kb:
        rows: list[dict[str, Any]] = []
        extra: dict[str, Any] = {}
        if action == "add":
            replaced = {d.id for d in checked if d.id in kb} if args.upsert else set()
            n = kb.add(checked, upsert=args.upsert)
            rows = [{"doc_id": d.id, "action": "replaced" if d.id in replaced else "added",
                     "chunks": len(chunk_text(d.text))} for d in checked]
            text = f"kb add: {n} document{'s' * (n != 1)} written to {args.kb}"
        elif action == "remove":
            present = {i for i in args.ids if isinstance(i, str) and i in kb}
            n = kb.remove(args.ids, missing_ok=args.missing_ok)
            rows = [{"doc_id": i, "action": "removed" if i in present else "absent"} for i in args.ids]
            text = f"kb remove: {n} document{'s' * (n != 1)} removed from {args.kb}"
        elif action == "query":
            hits = kb.query(args.text, k=args.k, where=where)
            rows = [{"rank": r, **hit.to_dict()} for r, hit in enumerate(hits, 1)]
            extra = {"query": args.text, "k": args.k, "where": where}
            text = "\n".join(f"{r['rank']:>3}. {r['score']:.4f}  {r['doc_id']}  {_short(r['text'])}"
                             + (f"  {json.dumps(r['metadata'])}" if r["metadata"] else "") for r in rows) \
                or "kb query: no documents match"
        elif action == "rebuild":
            t0 = time.perf_counter()
            index = kb.rebuild(args.index)
            elapsed_s = time.perf_counter() - t0
            rows = [{"metric": "index_vectors", "value": index.ntotal},
                    {"metric": "rebuild_s", "value": round(elapsed_s, 3), "unit": "s"}]
            text = f"kb rebuild: {index.kind} index of {index.ntotal} vectors saved in {elapsed_s:.2f} s"
        else:
            text = ""
        stats = kb.stats()
    if action == "stats":
        rows = [{"metric": m, "value": v} for m, v in (("documents", stats["documents"]), ("chunks", stats["chunks"]),
                                                      ("generation", stats["generation"]),
                                                      ("index_vectors", stats["index"]["vectors"]))]
        rows.append({"metric": "store_bytes", "value": stats["store_bytes"], "unit": "B"})
        emb = stats["embedder"]
        text = (f"knowledge base {stats['path']}\n  documents   {stats['documents']}\n  chunks      {stats['chunks']}\n"
                f"  generation  {stats['generation']}\n  embedder    {emb['name']} ({emb['dim']}-d, sha256 "
                f"{emb['sha256'][:16]}...)\n  index       {stats['index']['kind']}, {stats['index']['vectors']} "
                f"vectors\n  store       {stats['store_bytes']} bytes")
    elif action in ("add", "remove"):
        text += f" (generation {stats['generation']}; {stats['documents']} documents, {stats['chunks']} chunks)"
    print(_report(args, stats, rows, **extra) if args.json else text)
    return 0


def _short(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."
