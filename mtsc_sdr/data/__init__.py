"""Data: the built-in multimodal synthetic world, natural-image patches and loaders for the real
data sets (VQAv2, COCO captions, CIFAR-10, AudioCaps, MSR-VTT) in their official on-disk formats.

Nothing here downloads anything. Quick start::

    from mtsc_sdr.data import SyntheticWorld, examples, natural_patches
    world = SyntheticWorld(seed=0)
    scene = world.scene("train", 0)          # SceneImage: image uint8 (32, 32, 3), captions, qa
    clip = world.audio("val", 3)             # AudioClip: wave float32 (n,) at 16 kHz
    vid = world.video("test", 5)             # VideoClip: frames uint8 (8, 32, 32, 3)
    batch = examples("train", ["vqa"], n_per_task=64, seed=1)   # list[TaskExample]
    held = examples("test_phrasing", ["vqa"], n_per_task=64)    # test content, held-out wording
    light = SyntheticWorld(domain="light")   # the same content drawn in a style phase I never saw
    patches = natural_patches("test")        # list[Patch], uint8 (32, 32, 3)

Real data sets live in :mod:`mtsc_sdr.data.real`.
"""

from .domains import Domain, domain_names, get_domain
from .errors import DataError, DatasetNotFound, MalformedDataset, UnsafePickle, UnsupportedMedia
from .items import (QA, SPLITS, AudioClip, AudioEvent, Patch, SceneImage, SceneObject,
                    TaskExample, VideoClip)
from .patches import natural_patches
from .scenes import QUESTION_TYPES
from .vocab import PHRASING_SPLITS
from .world import (DEFAULT_SPLIT_SIZES, SyntheticWorld, available, collate, examples, register_examples,
                    unregister_examples, zero_question_inputs)

__all__ = [
    "DataError", "DatasetNotFound", "MalformedDataset", "UnsafePickle", "UnsupportedMedia",
    "QA", "QUESTION_TYPES", "SPLITS", "AudioClip", "AudioEvent", "Patch", "SceneImage", "SceneObject",
    "TaskExample", "VideoClip", "natural_patches", "DEFAULT_SPLIT_SIZES", "SyntheticWorld",
    "available", "collate", "examples", "register_examples", "unregister_examples", "zero_question_inputs",
    "PHRASING_SPLITS", "Domain", "domain_names", "get_domain",
]
