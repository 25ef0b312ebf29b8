"""``mtsc-sdr kb`` (:mod:`mtsc_sdr.rag.cli`) through :func:`mtsc_sdr.cli.main`, embedding with the
tiny fixture BERT (``minilm_env``: the default embedder reads it)."""

from __future__ import annotations

import json

import pytest

from mtsc_sdr.cli import main


@pytest.fixture
def kb_dir(tmp_path, minilm_env):
    return tmp_path / "kb"


def run_json(capsys, *argv: str) -> dict:
    capsys.readouterr()
    assert main(["kb", *argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_add_query_remove_stats_rebuild(kb_dir, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("the red circle is left of the blue square\n")
    (tmp_path / "more.jsonl").write_text(
        json.dumps({"id": "j1", "text": "a green triangle above a yellow star", "metadata": {"scene": 3}}) + "\n\n"
        + json.dumps({"id": "j2", "text": "the dog is next to the car", "metadata": {"scene": 4}}) + "\n")
    out = run_json(capsys, "add", "--kb", str(kb_dir), "--id", "d1", "--text", "a small white ring",
                   "--metadata", '{"scene": 1}', "--file", str(tmp_path / "notes.txt"), "--file",
                   str(tmp_path / "more.jsonl"))
    assert [r["doc_id"] for r in out["rows"]] == ["d1", "notes", "j1", "j2"]
    assert {r["action"] for r in out["rows"]} == {"added"} and out["meta"]["kb"]["documents"] == 4
    assert out["meta"]["command"] == "kb add" and "versions" in out["meta"]

    out = run_json(capsys, "query", "--kb", str(kb_dir), "the dog is next to the car", "-k", "2")
    assert [r["rank"] for r in out["rows"]] == [1, 2] and out["rows"][0]["doc_id"] == "j2"
    assert out["rows"][0]["score"] == pytest.approx(1.0, abs=1e-4) and out["rows"][0]["metadata"] == {"scene": 4}
    out = run_json(capsys, "query", "--kb", str(kb_dir), "the dog is next to the car", "--where", "scene=3")
    assert [r["doc_id"] for r in out["rows"]] == ["j1"] and out["meta"]["where"] == {"scene": 3}
    out = run_json(capsys, "query", "--kb", str(kb_dir), "car", "--where", 'scene="3"')
    assert out["rows"] == []                                             # "3" (a string) is not 3

    out = run_json(capsys, "add", "--kb", str(kb_dir), "--id", "j2", "--text", "the cat sleeps", "--upsert")
    assert out["rows"] == [{"doc_id": "j2", "action": "replaced", "chunks": 1}]
    out = run_json(capsys, "remove", "--kb", str(kb_dir), "d1", "zz", "--missing-ok")
    assert out["rows"] == [{"doc_id": "d1", "action": "removed"}, {"doc_id": "zz", "action": "absent"}]

    out = run_json(capsys, "stats", "--kb", str(kb_dir))
    figures = {r["metric"]: r["value"] for r in out["rows"]}
    assert figures["documents"] == 3 and figures["chunks"] == 3 and figures["generation"] == 3
    assert figures["index_vectors"] == 3 and out["meta"]["kb"]["embedder"]["dim"] == 32

    out = run_json(capsys, "rebuild", "--kb", str(kb_dir), "--index", "hnsw")
    assert out["rows"][0] == {"metric": "index_vectors", "value": 3} and out["meta"]["kb"]["index"]["kind"] == "hnsw"
    assert main(["kb", "stats", "--kb", str(kb_dir)]) == 0
    text = capsys.readouterr().out
    assert "documents   3" in text and "hnsw, 3 vectors" in text
    assert main(["kb", "query", "--kb", str(kb_dir), "the cat sleeps", "-k", "1"]) == 0
    assert "j2  the cat sleeps" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["add", "--id", "x"], "--id and --text go together"),
    (["add"], "nothing to add"),
    (["add", "--id", "x", "--text", "   "], "empty or only whitespace"),
    (["add", "--id", "x", "--text", "t", "--metadata", "[1]"], "expected a JSON object"),
    (["add", "--file", "missing.txt"], "cannot read"),
    (["query", "anything"], "no knowledge base at"),
    (["stats"], "no knowledge base at"),
    (["remove", "x"], "no knowledge base at"),
])
def test_errors_exit_2_with_one_line(kb_dir, capsys, argv, message):
    capsys.readouterr()
    assert main(["kb", argv[0], "--kb", str(kb_dir), *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.startswith(f"mtsc-sdr kb {argv[0]}: error:")
    assert not kb_dir.exists()                       # refused before anything was made


def test_errors_on_an_existing_knowledge_base(kb_dir, tmp_path, capsys):
    assert main(["kb", "add", "--kb", str(kb_dir), "--id", "a", "--text", "the red circle"]) == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "b", "text": "fine"}\n{"id": "c", "text": \n')
    capsys.readouterr()
    assert main(["kb", "add", "--kb", str(kb_dir), "--file", str(bad)]) == 2
    assert f"{bad}:2: not JSON" in capsys.readouterr().err
    assert main(["kb", "add", "--kb", str(kb_dir), "--id", "a", "--text", "again"]) == 2
    assert "already in" in capsys.readouterr().err
    assert main(["kb", "remove", "--kb", str(kb_dir), "a", "nope"]) == 2
    assert "not in" in capsys.readouterr().err
    assert main(["kb", "query", "--kb", str(kb_dir), "x", "--where", "novalue"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    (kb_dir / "store.sqlite").write_bytes(b"garbage" * 100)
    assert main(["kb", "stats", "--kb", str(kb_dir)]) == 2
    assert "not an SQLite database" in capsys.readouterr().err
