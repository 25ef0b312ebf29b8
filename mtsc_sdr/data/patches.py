"""Natural-image patches for reconstruction, cut from photographs bundled in scikit-image.

Only files that ship inside the scikit-image wheel are read, straight from its ``data`` folder
with Pillow -- never through ``skimage.data`` fetchers, so nothing can be downloaded.

Sources (RGB photographs): astronaut, chelsea, coffee, rocket, motorcycle_left,
hubble_deep_field, ihc, retina. Each photograph is also box-downscaled by 2 and 3, so patches
range from texture close-ups to whole-object, CIFAR-like views.

Split (fixed, spatial): every photograph is cut at 70 % and 85 % of its width; patches whose
footprint in the original lies in the left 70 % are ``train``, in the next 15 % ``val``, in the
last 15 % ``test``; patches crossing a cut are dropped. Splits therefore never share a pixel of
any source, at any scale. Patches are on a non-overlapping 32-px grid (``stride_px``).

Evaluation splits weight every photograph equally. The photographs differ a lot in size and
flatness (retina alone would give 188 of the 542 test patches, and its smooth patches are far
easier to reconstruct than the rest), so a mean over a plain split would mostly measure one
photograph. ``test`` (:data:`CAPPED_SPLITS`) therefore takes the same number of patches from every
photograph -- as many as the photograph with the fewest has -- spread evenly over each
photograph's patches in grid order (all scales, left to right, top to bottom). ``test`` and
``val`` (:data:`BALANCED_SPLITS`) list their patches round-robin, one photograph after another,
so that any prefix is balanced (within one patch per photograph) as long as every photograph has
patches left: ``val`` keeps all its patches (the pipeline benchmark needs hundreds of items), so
only its first 8 x 9 = 72 are balanced. ``train`` keeps every patch of its part of each
photograph in grid order, photograph by photograph (a model's training pool is fixed by it).

With scikit-image 0.26 and the flat-patch filter (:data:`MIN_STD`) that gives 3647 train, 539 val
and 8 x 22 = 176 test patches (542 before the cap; see the test).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import skimage

from .items import Patch
from .vocab import resolve_split

SOURCES: tuple[str, ...] = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
                            "motorcycle_left.png", "hubble_deep_field.jpg", "ihc.png", "retina.jpg")
SCALES: tuple[int, ...] = (1, 2, 3)
SPLIT_CUTS: tuple[float, float] = (0.70, 0.85)
PATCH_PX = 32
#: Patches whose pixel standard deviation (all channels, 0-255 scale) is below this are dropped:
#: they are empty background (the black sky of hubble_deep_field, the mask around retina) with
#: nothing to reconstruct, and any codec sends them exactly (infinite PSNR).
MIN_STD = 4.0
#: Splits listed round-robin over the source photographs, and those of them that keep the same
#: number of patches from every photograph (module docstring).
BALANCED_SPLITS: tuple[str, ...] = ("val", "test")
CAPPED_SPLITS: tuple[str, ...] = ("test",)


def skimage_data_dir() -> str:
    """The ``data`` folder inside the installed scikit-image package."""
    return os.path.join(os.path.dirname(skimage.__file__), "data")


def source_path(name: str) -> str:
    """Path of a bundled photograph; :class:`FileNotFoundError` if this scikit-image lacks it."""
    path = os.path.join(skimage_data_dir(), name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"scikit-image no longer bundles {name} (looked for {path}); "
                                "update mtsc_sdr.data.patches.SOURCES")
    return path


@functools.lru_cache(maxsize=None)
def _load(name: str, scale: int) -> np.ndarray:
    from PIL import Image  # ~50 ms, only when a photograph is first cut into patches

    with Image.open(source_path(name)) as im:
        im = im.convert("RGB")
        if scale > 1:
            im = im.resize((im.width // scale, im.height // scale), Image.Resampling.BOX)
        return np.asarray(im, dtype=np.uint8)


def _split_of_span(x0: float, x1: float) -> str | None:
    a, b = SPLIT_CUTS
    if x1 <= a:
        return "train"
    if x0 >= a and x1 <= b:
        return "val"
    if x0 >= b:
        return "test"
    return None


def patch_index(split: str, stride_px: int = PATCH_PX) -> list[tuple[str, int, int, int]]:
    """``(source, scale, row_px, col_px)`` of every patch of a split, in a fixed order.

    ``row_px``/``col_px`` are the top-left corner in the downscaled image. Patches have no text,
    so a phrasing split (``test_phrasing``) has the patches of its content split. ``train``: every
    patch, photograph by photograph in grid order; ``val`` and ``test``: the balanced selection of
    the module docstring, round-robin over the photographs (:func:`balance`).
    """
    split = resolve_split(split)[0]
    out = _grid_index(split, stride_px)
    return balance(out, cap=split in CAPPED_SPLITS) if split in BALANCED_SPLITS else out


def balance(index: list[tuple[str, int, int, int]], rng: np.random.Generator | None = None,
            cap: bool = True) -> list[tuple[str, int, int, int]]:
    """The entries of ``index`` round-robin over the source photographs.

    Each photograph's first ``m`` entries (``m``: the fewest any photograph of ``index`` has) are
    spread evenly over its entries in their order (``floor((k + 1/2) n / m)``, k < m); with
    ``cap`` only those are kept, otherwise its other entries follow in their order. Rounds of one
    entry per photograph (of those with entries left) follow each other, photographs in
    :data:`SOURCES` order. With ``rng`` each photograph's first ``m`` entries are shuffled (and its
    others among themselves), and so is the photograph order of every round: a random order whose
    every prefix of up to ``m`` rounds is still balanced within one entry per photograph.
    """
    groups = {name: [t for t in index if t[0] == name] for name in SOURCES}
    groups = {name: g for name, g in groups.items() if g}
    if not groups:
        return []
    m = min(len(g) for g in groups.values())

    def ordered(g: list) -> list:
        first = [int((k + 0.5) * len(g) / m) for k in range(m)]
        rest = [] if cap else sorted(set(range(len(g))) - set(first))
        if rng is not None:
            first, rest = list(rng.permutation(first)), list(rng.permutation(rest)) if rest else []
        return [g[i] for i in first] + [g[i] for i in rest]

    kept = {name: ordered(g) for name, g in groups.items()}
    names = list(kept)
    out = []
    for k in range(max(len(g) for g in kept.values())):
        order = names if rng is None else [names[i] for i in rng.permutation(len(names))]
        out += [kept[name][k] for name in order if k < len(kept[name])]
    return out


def _grid_index(split: str, stride_px: int) -> list[tuple[str, int, int, int]]:
    """Every patch of ``split`` (a content split) on the grid, photograph by photograph."""
    out = []
    for name in SOURCES:
        for s in SCALES:
            img = _load(name, s)
            h, w = img.shape[:2]
            for r in range(0, h - PATCH_PX + 1, stride_px):
                for c in range(0, w - PATCH_PX + 1, stride_px):
                    if (_split_of_span(c / w, (c + PATCH_PX) / w) == split
                            and img[r:r + PATCH_PX, c:c + PATCH_PX].std() >= MIN_STD):
                        out.append((name, s, r, c))
    return out


def natural_patches(split: str, limit: int | None = None, seed: int | None = None,
                    stride_px: int = PATCH_PX) -> list[Patch]:
    """Natural-image patches of one split.

    Args:
        split: ``train``, ``val`` or ``test`` (``test_phrasing``: the ``test`` patches).
        limit: at most this many patches (None: all).
        seed: if given, the patches are shuffled with ``np.random.default_rng(seed)`` before
            ``limit`` is applied (``val`` and ``test``: shuffled within each photograph and
            interleaved round-robin, :func:`balance`, so the first ``limit`` stay balanced);
            if None they come in the fixed order of :func:`patch_index`.
        stride_px: grid step in pixels (32: non-overlapping; smaller gives overlapping train
            patches -- splits stay disjoint either way).

    Returns:
        :class:`Patch` list, ``image`` uint8 (32, 32, 3) RGB; ``item_id`` is
        ``"patch/{source}/x{scale}/{row_px}_{col_px}"``.
    """
    content = resolve_split(split)[0]
    if seed is not None and content in BALANCED_SPLITS:
        idx = balance(_grid_index(content, stride_px), np.random.default_rng(seed), cap=content in CAPPED_SPLITS)
        order = np.arange(len(idx))
    else:
        idx = patch_index(split, stride_px)
        order = np.arange(len(idx))
        if seed is not None:   # train: a plain permutation (training pools depend on it)
            order = np.random.default_rng(seed).permutation(len(idx))
    if limit is not None:
        order = order[:limit]
    out = []
    for i in order:
        name, s, r, c = idx[i]
        img = _load(name, s)[r:r + PATCH_PX, c:c + PATCH_PX]
        out.append(Patch(f"patch/{name.rsplit('.', 1)[0]}/x{s}/{r}_{c}", np.ascontiguousarray(img)))
    return out
