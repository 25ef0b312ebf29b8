"""DataSource: each real data set feeds its task at the model's input sizes, mixing with the built-in
world, clear errors for bad specs and layouts, and streaming (reading N items holds one)."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

from mtsc_sdr.data import DatasetNotFound, examples, real
from mtsc_sdr.data.sources import DataSource, InputSizes, LazyExamples, parse_data_spec

from .fixtures import write_all, write_coco


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("real"), n=3)


def test_each_set_feeds_its_task_at_the_model_sizes(specs):
    src = DataSource(specs, InputSizes(image_size=48, audio_max_s=0.5, video_frames=4))
    assert src.tasks == ("vqa", "caption_image", "caption_audio", "caption_video", "reconstruct")
    for split in ("train", "test"):
        vqa = src.examples(split, "vqa")
        assert isinstance(vqa, LazyExamples) and len(vqa) == 3 * 2          # one example per question
        e = vqa[1]
        assert e.task == "vqa" and e.image.shape == (48, 48, 3) and e.question and e.references == ["red"] * 10
        cap = src.examples(split, "caption_image")[0]
        assert cap.image.shape == (48, 48, 3) and cap.references == ["a red square on grey", "something red"]
        aud = src.examples(split, "caption_audio")[2]
        assert aud.audio.dtype == np.float32 and aud.audio.shape == (8000,) and aud.sample_rate_hz == 16000
        vid = src.examples(split, "caption_video")[0]
        assert vid.video.shape == (4, 48, 48, 3) and vid.references
        rec = src.examples(split, "reconstruct")[0]
        assert rec.image.shape == (48, 48, 3) and rec.target_image is rec.image
    assert len(src.examples("train", "reconstruct")) == 5 * 3 and len(src.examples("test", "reconstruct")) == 3
    assert src.examples("train", "vqa")[0].item_id == "vqav2/train2014/1#q0"
    # n items drawn by seed, reproducibly, in file order
    a, b = src.examples("train", "reconstruct", n=4, seed=1), src.examples("train", "reconstruct", n=4, seed=1)
    assert [e.item_id for e in a] == [e.item_id for e in b] and len(a) == 4
    assert [e.item_id for e in a] == sorted((e.item_id for e in a), key=lambda s: int(s.rsplit("/", 1)[1]))


def test_mixing_with_the_builtin_world(specs):
    vqa_spec = specs[0]
    src = DataSource(["builtin", vqa_spec])
    assert src.tasks == ("vqa", "caption_image", "caption_audio", "caption_video", "reconstruct")
    assert src.origin("vqa") == vqa_spec and src.origin("caption_image") == "builtin"
    assert src.examples("test", "vqa")[0].item_id.startswith("vqav2/")
    builtin = src.examples("test", "caption_image", n=3, seed=2)
    assert [e.item_id for e in builtin] == [e.item_id for e in examples("test", ["caption_image"], 3, seed=2)]
    only = DataSource([vqa_spec])
    assert only.tasks == ("vqa",)
    with pytest.raises(ValueError, match=r"no data for task\(s\) \['caption_audio'\].*audiocaps"):
        only.examples("test", "caption_audio")


def test_bad_specs_and_layouts_are_clear(tmp_path, specs):
    assert parse_data_spec("builtin") == ("builtin", None)
    with pytest.raises(ValueError, match="NAME one of"):
        parse_data_spec("imagenet=/x")
    with pytest.raises(ValueError, match="NAME=PATH"):
        parse_data_spec("coco")
    with pytest.raises(ValueError, match=r"coco: '.*nowhere' is not a directory; expected .*captions_"):
        parse_data_spec(f"coco={tmp_path / 'nowhere'}")
    with pytest.raises(ValueError, match="given twice"):
        DataSource([specs[0], specs[0]])
    (tmp_path / "empty").mkdir()
    src = DataSource([f"audiocaps={tmp_path / 'empty'}"])
    with pytest.raises(DatasetNotFound, match="AudioCaps: train.csv not found"):
        src.examples("train", "caption_audio")
    with pytest.raises(DatasetNotFound, match=r"(?s)captions_train2014.json.*captions_train2017.json"):
        DataSource([f"coco={tmp_path / 'empty'}"]).examples("train", "caption_image")


def _traced(fn):
    """(bytes still held, peak bytes) while ``fn()`` runs, as tracemalloc counts them."""
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        fn()
        now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return now - base, peak - base


def test_reading_n_items_holds_one_not_n(tmp_path):
    """Streaming: the index holds paths and captions; iterating decodes one item at a time."""
    n, size = 80, 64
    write_coco(tmp_path / "coco", "train", n_images=n)
    source = DataSource([f"coco={tmp_path / 'coco'}"], InputSizes(image_size=size))
    source.examples("train", "caption_image")[0]  # warm up imports and PIL's caches
    item_bytes, held = size * size * 3, []
    index, _ = _traced(lambda: held.append(source.examples("train", "caption_image")))
    seq = held[0]
    kept, peak = _traced(lambda: held.append([e.item_id for e in seq]))   # every item decoded, none kept
    assert len(held[1]) == n
    assert index < n * item_bytes / 4, f"the index of {n} items takes {index} bytes"
    assert kept < 2 * item_bytes, f"{kept} bytes kept after reading {n} items"
    assert peak < n * item_bytes / 4, f"peak {peak} bytes for {n} items of {item_bytes}"
    # the eager loader, by contrast, holds every decoded image
    eager, _ = _traced(lambda: held.append(real.load_coco_captions(str(tmp_path / "coco"), "train", 2014, size)))
    assert eager > n * item_bytes
