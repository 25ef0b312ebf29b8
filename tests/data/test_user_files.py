"""The user's own files as task examples (:mod:`mtsc_sdr.data.user_files`): which task each file
goes to, what the example holds, and errors that name the option."""

from __future__ import annotations

import wave

import numpy as np
import pytest
from PIL import Image

from mtsc_sdr.data.errors import UnsupportedMedia
from mtsc_sdr.data.user_files import items_from_files, read_video_file


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)).save(path)
    return str(path)


def test_an_image_is_a_caption_a_question_or_a_reconstruction(photo):
    (ex,) = items_from_files(image=photo, image_size=32)
    assert ex.task == "caption_image" and ex.item_id == photo and ex.image.shape == (32, 32, 3)
    assert ex.question is None and ex.target_image is None and ex.references == []
    (ex,) = items_from_files(image=photo, question="what colour is the circle?")
    assert ex.task == "vqa" and ex.question == "what colour is the circle?"
    (ex,) = items_from_files(image=photo, question="ignored", task="reconstruct")
    assert ex.task == "reconstruct" and ex.question is None and ex.target_image is ex.image


def test_options_that_do_not_fit_are_named(photo):
    with pytest.raises(ValueError, match="--task vqa needs --question TEXT"):
        items_from_files(image=photo, task="vqa")
    with pytest.raises(ValueError, match="--image goes with --task vqa, caption_image or reconstruct, not caption_audio"):
        items_from_files(image=photo, task="caption_audio")
    with pytest.raises(ValueError, match="no input: give --split"):
        items_from_files()


def test_audio_and_video(tmp_path):
    wav = tmp_path / "clip.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.sin(np.arange(8000) * 0.1) * 8000).astype(np.int16).tobytes())
    (ex,) = items_from_files(audio=str(wav))
    assert ex.task == "caption_audio" and ex.audio.dtype == np.float32 and len(ex.audio) == 8000

    frames = [Image.fromarray(np.full((40, 40, 3), 20 * k, np.uint8)) for k in range(5)]
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, f in enumerate(frames):
        f.save(folder / f"{k:04d}.png")
    (ex,) = items_from_files(video=str(folder), image_size=32, video_frames=8)
    assert ex.task == "caption_video" and ex.video.shape == (8, 32, 32, 3)
    gif = tmp_path / "clip.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    (ex,) = items_from_files(video=str(gif), image_size=32, video_frames=8)
    assert ex.video.shape == (8, 32, 32, 3) and ex.video[0].mean() < ex.video[-1].mean()


def test_a_video_container_is_refused_with_the_way_out(tmp_path):
    mp4 = tmp_path / "clip.mp4"
    mp4.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    with pytest.raises(UnsupportedMedia, match="extract the frames into a folder"):
        read_video_file(str(mp4), 8, 32)
