"""Real data set loaders on tiny fixtures written in the official on-disk formats."""

from __future__ import annotations

import csv
import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image
from scipy.io import wavfile

from mtsc_sdr.data import DatasetNotFound, MalformedDataset, UnsafePickle, UnsupportedMedia
from mtsc_sdr.data import media, real

from .fixtures import cifar_batch as _cifar_batch
from .fixtures import jpg as _jpg
from .fixtures import vqa_answer as ans


def test_vqav2(tmp_path):
    r = tmp_path / "vqa"
    (r / "val2014").mkdir(parents=True)
    qs = {"questions": [{"image_id": 42, "question": "What colour is the bus?", "question_id": 420},
                        {"image_id": 42, "question": "Is it day?", "question_id": 421},
                        {"image_id": 7, "question": "How many?", "question_id": 70}]}
    an = {"annotations": [ans(420, 42, "red", "other"), ans(421, 42, "yes", "yes/no"), ans(70, 7, "2", "number")]}
    (r / "v2_OpenEnded_mscoco_val2014_questions.json").write_text(json.dumps(qs))
    (r / "v2_mscoco_val2014_annotations.json").write_text(json.dumps(an))
    for iid in (42, 7):
        _jpg(str(r / "val2014" / f"COCO_val2014_{iid:012d}.jpg"))
    items = real.load_vqav2(str(r), "val", image_size=32)
    assert [it.item_id for it in items] == ["vqav2/val2014/42", "vqav2/val2014/7"]
    assert items[0].image.shape == (32, 32, 3) and items[0].image.dtype == np.uint8
    assert [q.answer for q in items[0].qa] == ["red", "yes"] and len(items[0].qa[0].answers) == 10
    assert abs(int(items[0].image[16, 16, 0]) - 200) < 10
    os.remove(r / "val2014" / "COCO_val2014_000000000007.jpg")
    with pytest.raises(DatasetNotFound, match="COCO_val2014_000000000007.jpg"):
        real.load_vqav2(str(r), "val")
    with pytest.raises(DatasetNotFound, match="v2_OpenEnded_mscoco_train2014_questions.json"):
        real.load_vqav2(str(r), "train")


def test_coco_captions(tmp_path):
    r = tmp_path / "coco"
    (r / "annotations").mkdir(parents=True)
    obj = {"images": [{"id": 5, "file_name": "COCO_val2014_000000000005.jpg", "width": 40, "height": 30}],
           "annotations": [{"image_id": 5, "id": 1, "caption": "A red wall. "},
                           {"image_id": 5, "id": 2, "caption": "Red paint"}]}
    (r / "annotations" / "captions_val2014.json").write_text(json.dumps(obj))
    _jpg(str(r / "val2014" / "COCO_val2014_000000000005.jpg"))
    items = real.load_coco_captions(str(r), "val", 2014, image_size=48)
    assert items[0].captions == ["A red wall.", "Red paint"] and items[0].image.shape == (48, 48, 3)
    with pytest.raises(DatasetNotFound, match="captions_val2017.json"):
        real.load_coco_captions(str(r), "val", 2017)


def test_cifar10_restricted_reader(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    d = _cifar_batch(base / "test_batch", 5, 0)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in real.CIFAR10_CLASSES],
                     b"num_cases_per_batch": 10000, b"num_vis": 3072}, f, protocol=2)
    items = real.load_cifar10(str(tmp_path), "test")
    assert len(items) == 5 and items[0].image.shape == (32, 32, 3) and items[0].image.dtype == np.uint8
    np.testing.assert_array_equal(items[3].image[:, :, 1].ravel(), d[b"data"][3, 1024:2048])
    assert items[2].label == real.CIFAR10_CLASSES[d[b"labels"][2]]
    with pytest.raises(DatasetNotFound, match="data_batch_1"):
        real.load_cifar10(str(tmp_path), "train")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar10_refuses_code_in_pickle(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "test_batch"
    with open(path, "wb") as f:
        pickle.dump({b"data": _Evil(marker), b"labels": []}, f, protocol=2)
    with pytest.raises(UnsafePickle, match="system"):
        real.read_cifar10_batch(str(path))
    assert not marker.exists()
    with open(path, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), object), b"labels": [0, 1]}, f, protocol=2)
    with pytest.raises(UnsafePickle):
        real.read_cifar10_batch(str(path))
    with open(path, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f, protocol=2)
    with pytest.raises(MalformedDataset, match="3072"):
        real.read_cifar10_batch(str(path))


def test_audiocaps(tmp_path):
    r = tmp_path / "audiocaps"
    (r / "audio" / "test").mkdir(parents=True)
    with open(r / "test.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["audiocap_id", "youtube_id", "start_time", "caption"])
        w.writerow([1, "abc", 30, "a dog barks"])
        w.writerow([2, "abc", 30, "barking"])
        w.writerow([3, "gone", 0, "missing clip"])
        w.writerow([4, "st", 0, "stereo"])
    t = np.arange(44100) / 44100
    wavfile.write(r / "audio" / "test" / "abc.wav", 44100, (np.sin(2 * np.pi * 440 * t) * 16000).astype(np.int16))
    wavfile.write(r / "audio" / "test" / "Yst.wav", 22050, np.zeros((22050, 2), np.float32))
    with pytest.warns(UserWarning, match="skipped 1"):
        clips = real.load_audiocaps(str(r), "test")
    assert [c.item_id for c in clips] == ["audiocaps/test/abc", "audiocaps/test/st"]
    assert clips[0].captions == ["a dog barks", "barking"] and clips[0].sample_rate_hz == 16000
    assert clips[0].wave.dtype == np.float32 and abs(len(clips[0].wave) - 16000) <= 1
    assert len(real.load_audiocaps(str(r), "test", limit=1, max_duration_s=0.5)[0].wave) == 8000
    with pytest.raises(DatasetNotFound, match="gone"):
        real.load_audiocaps(str(r), "test", missing="error")
    with pytest.raises(DatasetNotFound, match="val.csv"):
        real.load_audiocaps(str(r), "val")


def test_msrvtt(tmp_path):
    r = tmp_path / "msrvtt"
    r.mkdir()
    obj = {"info": {}, "videos": [{"video_id": "video0", "split": "train", "id": 0},
                                  {"video_id": "video1", "split": "test", "id": 1}],
           "sentences": [{"video_id": "video1", "caption": "a man is talking", "sen_id": 0},
                         {"video_id": "video1", "caption": "someone speaks", "sen_id": 1}]}
    (r / "MSRVTT_data.json").write_text(json.dumps(obj))
    for k in range(5):
        _jpg(str(r / "frames" / "video1" / f"{k:05d}.jpg"), 64, 48, (k * 50, 0, 0))
    clips = real.load_msrvtt(str(r), "test", num_frames=8, image_size=32)
    assert len(clips) == 1 and clips[0].frames.shape == (8, 32, 32, 3)
    assert clips[0].captions == ["a man is talking", "someone speaks"]
    reds = clips[0].frames[:, 16, 16, 0].astype(int)
    assert reds[0] < 10 and reds[-1] > 190 and np.all(np.diff(reds) >= 0)
    (r / "videos").mkdir()
    (r / "videos" / "video0.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    with pytest.raises(UnsupportedMedia, match="ffmpeg"):
        real.load_msrvtt(str(r), "train")
    (r / "frames" / "video0").mkdir()
    with pytest.raises(UnsupportedMedia, match="no frames"):
        real.load_msrvtt(str(r), "train")


@pytest.mark.parametrize("loader", [real.load_vqav2, real.load_coco_captions, real.load_cifar10,
                                    real.load_audiocaps, real.load_msrvtt])
def test_missing_directory_says_what_is_expected(tmp_path, loader):
    with pytest.raises(DatasetNotFound, match="does not exist.*Expected layout"):
        loader(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError):  # DatasetNotFound is a FileNotFoundError too
        loader(str(tmp_path / "nowhere"))


def test_bad_media_get_clear_errors(tmp_path):
    p = tmp_path / "x.gif"
    Image.new("RGB", (40, 40)).save(p, "GIF")
    with pytest.raises(UnsupportedMedia, match="format GIF"):
        media.read_image(str(p))
    p = tmp_path / "tiny.png"
    Image.new("RGB", (4, 40)).save(p)
    with pytest.raises(UnsupportedMedia, match="4x40"):
        media.read_image(str(p))
    p = tmp_path / "notimage.jpg"
    p.write_bytes(b"hello")
    with pytest.raises(UnsupportedMedia, match="not a readable image"):
        media.read_image(str(p))
    p = tmp_path / "a.wav"
    p.write_bytes(b"ID3\x03fake mp3 data")
    with pytest.raises(UnsupportedMedia, match="WAV"):
        media.read_wav(str(p))
    wavfile.write(tmp_path / "low.wav", 4000, np.zeros(400, np.int16))
    with pytest.raises(UnsupportedMedia, match="4000 Hz"):
        media.read_wav(str(tmp_path / "low.wav"))
    wavfile.write(tmp_path / "empty.wav", 16000, np.zeros(0, np.int16))
    with pytest.raises(UnsupportedMedia, match="no samples"):
        media.read_wav(str(tmp_path / "empty.wav"))
    with pytest.raises(UnsupportedMedia, match=r"uint8 array \(H, W, 3\)"):
        media.check_image(np.zeros((32, 32), np.uint8))
    with pytest.raises(UnsupportedMedia, match="16000"):
        media.check_audio(np.zeros(10, np.float32), 44100)
