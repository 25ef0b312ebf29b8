"""Property-based fuzzing of every parser of untrusted input (issue 18; the targets are
``tests/fuzz/targets.py``): whatever the bytes, a parser returns or raises one of its documented
errors. Each target gets mutated seeds (bit flips, byte edits, truncation, extension, splices);
the structured tests below feed valid structure with random field values, and keep every crash
found as an ``@example``. Deterministic (``derandomize``), and short enough for ``make test``.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3

import pytest
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st

from tests.fuzz import targets

#: examples per target for the mutated seeds: the file targets cost milliseconds per input
EXAMPLES = {"message": 300, "iq_message": 300, "pmt": 300, "tag_header": 300, "frame_header": 200,
            "federated_update": 200, "checkpoint_weights": 15, "kb_manifest": 20, "kb_store": 40}
DEFAULT_EXAMPLES = 60


def fuzz_settings(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])


_MADE: dict[str, tuple] = {}


@pytest.fixture(scope="session")
def fuzz_root(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def made(name: str, root) -> tuple:
    """(target, run, seeds) of ``name``, made once per session."""
    if name not in _MADE:
        import logging

        logging.getLogger("mtsc_sdr").setLevel(logging.CRITICAL)   # every drop is logged otherwise
        target = targets.get(name)
        work = root / name
        work.mkdir()
        run, seeds = target.make(work)
        _MADE[name] = (target, run, seeds)
    return _MADE[name]


# -- edits of valid seeds -------------------------------------------------------------------------------

_EDIT = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 1 << 20), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 1 << 20), st.integers(1, 64)),
    st.tuples(st.just("insert"), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("int"), st.integers(0, 1 << 20), st.sampled_from([0, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF,
                                                                        (1 << 63) - 1, (1 << 64) - 1])),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 20), st.just(0)),
    st.tuples(st.just("repeat"), st.integers(0, 1 << 20), st.integers(2, 300)),
)


def edited(seed: bytes, edits: list[tuple]) -> bytes:
    """``seed`` after ``edits`` (positions taken modulo the current length)."""
    data = bytearray(seed)
    for op, pos, arg in edits:
        pos %= len(data) + 1
        if op == "flip" and data:
            data[pos % len(data)] ^= 1 << arg
        elif op == "set" and data:
            data[pos % len(data)] = arg
        elif op == "delete":
            del data[pos:pos + arg]
        elif op == "insert":
            data[pos:pos] = arg
        elif op == "int":
            data[pos:pos + 8] = arg.to_bytes(8, "little")
        elif op == "truncate":
            del data[pos:]
        elif op == "repeat":
            data[pos:pos] = data[pos:pos + 4] * arg
    return bytes(data)


@pytest.mark.parametrize("name", targets.NAMES)
def test_seeds_parse_and_edits_raise_only_documented_errors(name, fuzz_root):
    target, run, seeds = made(name, fuzz_root)
    assert seeds
    for seed in seeds:
        assert targets.feed(target, run, seed) is None, f"{name}: a valid seed was refused"

    @fuzz_settings(EXAMPLES.get(name, DEFAULT_EXAMPLES))
    @given(index=st.integers(0, len(seeds) - 1), edits=st.lists(_EDIT, min_size=1, max_size=4),
           tail=st.binary(max_size=32))
    def check(index, edits, tail):
        targets.feed(target, run, edited(seeds[index], edits) + tail)

    check()


@pytest.mark.parametrize("name", ["message", "pmt", "tag_header", "iq_message", "frame_header", "federated_update"])
@fuzz_settings(150)
@given(data=st.binary(max_size=512))
def test_random_bytes_raise_only_documented_errors(name, fuzz_root, data):
    target, run, _ = made(name, fuzz_root)
    targets.feed(target, run, data)


# -- the harness itself -----------------------------------------------------------------------------------


def test_the_verdict_fails_on_an_undocumented_error():
    """A parser that raises something it does not document is a failure, not a pass."""
    def make(work):
        def run(data: bytes) -> None:
            if data.startswith(b"{"):
                raise ValueError("documented")
            {}[data]                                                # KeyError: undocumented
        return run, [b"{}"]

    broken = targets.Target("broken", (ValueError,), make)
    run, seeds = broken.make(None)
    assert targets.feed(broken, run, seeds[0]) == "ValueError"
    with pytest.raises(KeyError):
        targets.feed(broken, run, b"x")


def test_every_target_says_what_it_covers_and_names_its_errors():
    for name in targets.NAMES:
        target = targets.get(name)
        assert len(target.doc) > 40, name
        assert all(isinstance(e, type) and issubclass(e, BaseException) for e in target.errors)
    with pytest.raises(KeyError, match="message"):
        targets.get("nope")


# -- structured inputs, and the crashes they found --------------------------------------------------------

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                     max_leaves=12)
_HEADER_FIELDS = ["v", "kind", "session", "seq", "src", "tensors", "meta"]


@fuzz_settings(300)
@given(fields=st.dictionaries(st.sampled_from(_HEADER_FIELDS), _JSON), spec=st.dictionaries(
    st.sampled_from(["name", "dtype", "shape"]), _JSON | st.sampled_from(["float32", "bool", "x"])),
       payload=st.binary(max_size=64))
@example(fields={}, spec={}, payload=b"[" * 60000)            # deep nesting: RecursionError before the fix
@example(fields={}, spec={"dtype": [], "name": "x"}, payload=b"")   # unhashable dtype: TypeError before the fix
def test_message_headers_with_random_fields(fields, spec, payload, fuzz_root):
    target, run, _ = made("message", fuzz_root)
    header = {"v": 1, "kind": "tensor", "session": 1, "seq": 0, "src": 2, "tensors": [spec], **fields}
    head = payload if payload.startswith(b"[") else json.dumps(header).encode()
    targets.feed(target, run, head + targets.FRAME_SEP + payload)


_YAML_KEYS = st.one_of(st.sampled_from(["snr_db", "clients", "rate_sps", "awgn", "fading", "name", "seed", "channel",
                                        "schema_version", "results", "freq_hz", "timestamp"]),
                       st.integers(), st.text(max_size=5))
_YAML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
    | st.sampled_from(["2025-13-45", "2001-02-30", "1e999", "9" * 400, ".nan", "2025-01-31T12:00:00+00:00"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_YAML_KEYS, inner, max_size=3), max_leaves=10)


@pytest.mark.parametrize("name", ["run_config", "channel_config", "calibration"])
@fuzz_settings(80)
@given(doc=st.dictionaries(_YAML_KEYS, _YAML_VALUES, max_size=6))
@example(doc={1: "a", "b": "c"})                   # mixed key types: TypeError in sorted() before the fix
@example(doc={"rate_sps": 10 ** 400, "snr_db": [10 ** 400]})   # OverflowError converting to float
def test_yaml_configs_with_random_fields(name, doc, fuzz_root):
    import yaml

    target, run, _ = made(name, fuzz_root)
    targets.feed(target, run, yaml.safe_dump(doc).encode())


@pytest.mark.parametrize("name", ["run_config", "channel_config", "calibration", "checkpoint_config",
                                  "checkpoint_tokenizer", "compress_manifest", "sigmf"])
@pytest.mark.parametrize("raw", [
    b"rate_sps: \xff\xfe\n",                      # not UTF-8: UnicodeDecodeError before the fix
    b"schema_version: 2025-13-45\nrate_sps: 2001-02-30\n",   # no such date: a bare ValueError (YAML)
    b"[" * 5000,                                  # nesting past the stack: RecursionError (YAML, JSON)
    b'{"format": "mtsc-sdr-model", "version": 1, "model": {}, "backbone": {"kind": "bart", "config": {}}, '
    b'"tokenizer": [], "tied": {}}',              # a field of the wrong type: AttributeError before the fix
])
def test_crashes_found_by_the_fuzzer_are_documented_errors_now(name, raw, fuzz_root):
    target, run, _ = made(name, fuzz_root)
    targets.feed(target, run, raw)


@pytest.mark.parametrize("manifest_edit", [
    lambda m: m.pop("peak_memory_mb"), lambda m: m.pop("weight_bytes"),   # KeyError before the fix
    lambda m: m.update(peak_memory_mb=[1]), lambda m: m.update(peak_memory_mb={"x86-cpu": "big"}),
    lambda m: m.update(files=["graphs/vqa-512.onnx"]),                   # AttributeError before the fix
    lambda m: m.update(technique=None), lambda m: m.update(files={"/etc/hostname": "0" * 64}),
])
def test_compression_manifests_with_missing_or_mistyped_fields(manifest_edit, fuzz_root):
    target, run, seeds = made("compress_manifest", fuzz_root)
    manifest = json.loads(seeds[0])
    manifest_edit(manifest)
    assert targets.feed(target, run, json.dumps(manifest).encode()) is not None


def test_a_store_whose_schema_sqlite_cannot_parse_quoting_bytes_that_are_not_utf8(fuzz_root):
    """SQLite's error message quotes the damaged schema text; Python's sqlite3 raised the
    UnicodeDecodeError of decoding that message (found by the fuzzer) instead of the error."""
    target, run, seeds = made("kb_store", fuzz_root)
    assert b"CREATE TABLE meta" in seeds[0]
    assert targets.feed(target, run, seeds[0].replace(b"CREATE TABLE meta", b"CREATE TABLE\xe0\x8deta")) == "StoreError"


def test_a_store_whose_schema_was_edited_is_refused(fuzz_root):
    """A schema that still parses but is not the store's (found by the fuzzer: ``chunk_id`` no
    longer ``INTEGER PRIMARY KEY``, so every chunk id read NULL and a TypeError escaped)."""
    target, run, seeds = made("kb_store", fuzz_root)
    key = b"INTEGER PRIMARY KEY AUTOINCREMENT"
    assert key in seeds[0]
    assert targets.feed(target, run, seeds[0].replace(key, b"INTEGER PRIM YRYA EKAUTOINCREMENT")) == "StoreError"


@pytest.mark.parametrize("sidecar_edit", [
    lambda m: m.update(kind="hnsw"),          # a flat index file under an hnsw sidecar: AttributeError before the fix
    lambda m: m.update(kind="hnsw", hnsw={"m": "x"}), lambda m: m.update(hnsw=[1]),
    lambda m: m.update(hnsw={"ef_search": 10 ** 30}), lambda m: m.update(hnsw={"m": 0}),
    lambda m: m.update(hnsw={"ef_construction": True}), lambda m: m.update(vectors="3"),
])
def test_knowledge_base_sidecars_that_keep_the_index_files_sha256(sidecar_edit, fuzz_root):
    """Fields of ``index.json`` other than the sha256 edited (the sha256 still matches the index
    file, so faiss reads it): the index is used or rebuilt, nothing raises."""
    target, run, seeds = made("kb_manifest", fuzz_root)
    sidecar = json.loads(seeds[0])
    sidecar_edit(sidecar)
    assert targets.feed(target, run, json.dumps(sidecar).encode()) is None


_SQL_VALUES = st.one_of(st.none(), st.integers(-(1 << 63), (1 << 63) - 1), st.floats(allow_nan=False),
                        st.text(max_size=12), st.binary(max_size=40))


@fuzz_settings(40)
@given(table_column=st.sampled_from([("meta", "value"), ("documents", "metadata"), ("documents", "text"),
                                     ("chunks", "embedding"), ("chunks", "position"), ("chunks", "text"),
                                     ("documents", "id")]),
       value=_SQL_VALUES)
@example(table_column=("meta", "value"), value="x")            # int("x"): ValueError before the fix
@example(table_column=("documents", "metadata"), value="{no")  # json.loads: JSONDecodeError before the fix
@example(table_column=("chunks", "embedding"), value=12)       # len(12): TypeError before the fix
@example(table_column=("chunks", "text"), value=b"\xff\xfe")   # text not UTF-8: sqlite3.OperationalError
def test_knowledge_base_stores_with_random_row_values(table_column, value, fuzz_root, tmp_path):
    """A store whose rows hold anything SQLite's dynamic types allow (a foreign writer, a bad
    disk): opening and reading it raises KnowledgeBaseError or works."""
    target, run, seeds = made("kb_store", fuzz_root)
    db = tmp_path / "s.sqlite"
    db.write_bytes(seeds[0])
    table, column = table_column
    with sqlite3.connect(db) as conn:
        try:
            conn.execute(f"UPDATE {table} SET {column} = ?", (value,))
        except sqlite3.IntegrityError:      # NOT NULL, UNIQUE: SQLite itself refuses this store
            reject()
    conn.close()
    targets.feed(target, run, db.read_bytes())


@fuzz_settings(60)
@given(metrics=st.dictionaries(st.sampled_from(["num-examples", "loss", "acc"]),
                               st.one_of(st.integers(), st.floats(), st.lists(st.floats(), max_size=3))),
       dtype=st.sampled_from(["float32", "float64", "int8"]), shape=st.lists(st.integers(0, 5), max_size=3))
@example(metrics={"num-examples": 10, "loss": 10 ** 400}, dtype="float32", shape=[3, 2])   # OverflowError before
def test_federated_replies_with_random_metrics_and_arrays(metrics, dtype, shape):
    """A train reply with any metric values and an array of any dtype and shape: accepted or
    rejected with a reason, never an exception out of the strategy."""
    pytest.importorskip("flwr")
    import numpy as np
    from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

    from mtsc_sdr.finetune.strategy import CheckedFedAvg, encode

    class Grid:
        def get_node_ids(self):
            return [11]

    strategy = CheckedFedAvg(min_available_nodes=1, min_train_nodes=1, max_update_norm=50.0, max_examples=1000)
    global_state = {"a.lora_B": np.zeros((3, 2), np.float32)}
    (sent,) = strategy.configure_train(1, encode(global_state), ConfigRecord(), Grid())
    arrays = ArrayRecord({"a.lora_B": Array(np.ones(shape, dtype))})
    reply = Message(RecordDict({"arrays": arrays, "metrics": MetricRecord(metrics)}), reply_to=sent)
    strategy.aggregate_train(1, [reply])
    assert strategy.rounds[-1].train.outcomes[11].status in ("accepted", "rejected")


@pytest.fixture(autouse=True, scope="module")
def flower_task_identity():
    """Flower's Message needs the process's task identity outside a run (its runtimes set it)."""
    if importlib.util.find_spec("flwr") is None:
        yield
        return
    from flwr.supercore.task_identity import TaskIdentity

    saved = TaskIdentity._run_id, TaskIdentity._task_id, TaskIdentity._node_id
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 1
    yield
    TaskIdentity._run_id, TaskIdentity._task_id, TaskIdentity._node_id = saved


# -- round trips of the encoders the seeds come from ---------------------------------------------------------

_PMT = st.recursive(st.none() | st.booleans() | st.integers(-(1 << 63), (1 << 63) - 1) | st.text(max_size=8)
                    | st.floats(allow_nan=False) | st.complex_numbers(allow_nan=False),
                    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
                    | st.dictionaries(st.text(max_size=6), inner, min_size=1, max_size=3), max_leaves=10)


@fuzz_settings(200)
@given(value=_PMT)
def test_pmt_values_round_trip(value):
    from mtsc_sdr.link.pmtcodec import dumps, loads

    raw = dumps(value)
    assert loads(raw) == (value, len(raw))


@fuzz_settings(200)
@given(words=st.tuples(st.integers(0, 15), st.integers(0, 15), st.integers(0, 255), st.integers(0, 65535),
                       st.integers(0, 65535), st.integers(1, 65535)))
def test_frame_headers_round_trip(words):
    import numpy as np

    from mtsc_sdr.phy import header as hdr

    version, task_id, rate_idx, session_id, seq, payload_len = words
    h = hdr.FrameHeader(session_id=session_id, seq=seq, payload_len=payload_len, rate_idx=rate_idx,
                        task_id=task_id, version=version)
    sym = hdr.encode(h)
    assert hdr.decode(hdr.slot_llrs(sym, np.ones(sym.shape))) == (h, version, True)


@pytest.mark.parametrize("field", ["d_model", "encoder_layers", "vocab_size"])
def test_a_checkpoint_config_that_does_not_size_its_backbone_is_refused(field, fuzz_root):
    """Found by the fuzzer: a backbone config without its size fields was built with the
    transformers library's defaults (bart-large: 12 s, 17 s, then past 2 GB for one input);
    now a CheckpointMismatch names the field before anything is built."""
    target, run, seeds = made("checkpoint_config", fuzz_root)
    config = json.loads(seeds[0])
    del config["backbone"]["config"][field]
    with pytest.raises(target.errors, match=field):
        run(json.dumps(config).encode())
