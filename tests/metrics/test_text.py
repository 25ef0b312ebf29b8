"""BLEU (sacrebleu) and CIDEr-D (ours, checked against pycocoevalcap), and score_task."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mtsc_sdr.metrics import (
    BLEU_STATS_COLUMNS, CIDER_REPORT_SCALE, bleu, bleu_from_stats, bleu_item_stats, cider, cider_scores, coco_tokenize, score_task, sentence_bleu,
)

VOCAB = "a an the man woman dog cat red blue ball grass on with sits runs two small big near".split()


def random_corpus(seed: int, n_items: int, max_refs: int = 5, max_len: int = 12, min_len: int = 0):
    rng = random.Random(seed)

    def caption():
        return " ".join(rng.choice(VOCAB) for _ in range(rng.randint(min_len, max_len)))

    hyps = [caption() for _ in range(n_items)]
    refs = [[caption() for _ in range(rng.randint(1, max_refs))] for _ in range(n_items)]
    return hyps, refs


# --- BLEU ---

def test_bleu_identical_is_100():
    hyps = ["a man rides a red bike down the street", "two dogs play in the snow"]
    assert bleu(hyps, [[h] for h in hyps]) == pytest.approx(100.0)
    assert sentence_bleu(hyps[0], hyps[0]) == pytest.approx(100.0)


def test_bleu_agrees_with_sacrebleu_streams():
    import sacrebleu

    hyps, refs = random_corpus(1, 30, max_refs=1, min_len=4)
    refs2 = [r + [r[0][::-1]] for r in refs]
    expected = sacrebleu.corpus_bleu(hyps, [[r[0] for r in refs2], [r[1] for r in refs2]]).score
    assert bleu(hyps, refs2) == pytest.approx(expected, abs=1e-9)


def test_bleu_variable_reference_counts_are_padded_not_emptied():
    # Repeating a reference changes neither clipped counts nor the closest reference length, so a
    # variable-count corpus must score exactly like the same corpus padded by repetition.
    hyps, refs = random_corpus(2, 40, max_refs=4, min_len=3)
    n = max(len(r) for r in refs)
    padded = [r + [r[0]] * (n - len(r)) for r in refs]
    assert len({len(r) for r in refs}) > 1
    assert bleu(hyps, refs) == pytest.approx(bleu(hyps, padded), abs=1e-9)


def test_bleu_accepts_one_string_per_item_and_empty_hypotheses():
    hyps = ["the cat sat on the mat", "a dog runs in the park"]
    refs = ["the cat sat on the mat", "a dog runs in a park"]
    full = bleu(hyps, refs)
    assert full == bleu(hyps, [[r] for r in refs])
    with_empty = bleu([hyps[0], ""], refs)
    assert 0.0 <= with_empty < full


def test_bleu_item_stats_sum_to_corpus_bleu_of_any_subset():
    """The per-item statistics reproduce corpus BLEU exactly: of all items, of a subset, of a
    resample with repeats (what a bootstrap over items sums), and one row per stacked corpus."""
    hyps, refs = random_corpus(3, 25, max_refs=3, min_len=3)
    hyps[4] = ""
    stats = bleu_item_stats(hyps, refs)
    assert stats.shape == (25, BLEU_STATS_COLUMNS) and stats.dtype == np.int64
    assert bleu_from_stats(stats.sum(0)) == pytest.approx(bleu(hyps, refs), abs=1e-9)
    idx = np.array([0, 0, 3, 7, 7, 7, 12, 24])
    assert bleu_from_stats(stats[idx].sum(0)) == pytest.approx(
        bleu([hyps[i] for i in idx], [refs[i] for i in idx]), abs=1e-9)
    both = bleu_from_stats(np.stack([stats.sum(0), stats[idx].sum(0)]))
    assert both.shape == (2,) and both[0] == pytest.approx(bleu(hyps, refs), abs=1e-9)
    with pytest.raises(ValueError, match="shape"):
        bleu_from_stats(stats.sum(0)[:9])


@pytest.mark.parametrize("fn", [bleu, cider])
def test_text_metrics_name_bad_input(fn):
    with pytest.raises(ValueError, match="2 hypotheses but 1 reference sets"):
        fn(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="no items"):
        fn([], [])
    with pytest.raises(ValueError, match="item 1 has no reference"):
        fn(["a", "b"], [["a"], []])
    with pytest.raises(ValueError, match="hypothesis 0 is int"):
        fn([3], [["a"]])


# --- CIDEr-D ---

@pytest.mark.parametrize("seed,n_items", [(0, 2), (1, 10), (2, 60)])
def test_cider_matches_pycocoevalcap(seed, n_items):
    pycoco = pytest.importorskip("pycocoevalcap.cider.cider")
    hyps, refs = random_corpus(seed, n_items)  # includes empty captions and 1..5 references
    ours, ours_items = cider_scores(hyps, refs, tokenize=False)
    theirs, theirs_items = pycoco.Cider().compute_score(
        {i: refs[i] for i in range(n_items)}, {i: [hyps[i]] for i in range(n_items)}
    )
    assert ours == pytest.approx(theirs, abs=1e-6)
    np.testing.assert_allclose(ours_items, theirs_items, rtol=0, atol=1e-6)


def test_cider_with_tokenizer_matches_pycocoevalcap_on_tokenized_text():
    pycoco = pytest.importorskip("pycocoevalcap.cider.cider")
    hyps = ["A man's dog, running.", "Two cats sit on a (red) mat!", "A kid in a t-shirt."]
    refs = [["A dog runs.", "The man's dog is running!"], ["Two cats on a mat."],
            ["A child wearing a T-shirt.", "a kid, smiling"]]
    tok = {i: [" ".join(coco_tokenize(r)) for r in refs[i]] for i in range(3)}
    res = {i: [" ".join(coco_tokenize(hyps[i]))] for i in range(3)}
    theirs, _ = pycoco.Cider().compute_score(tok, res)
    assert cider(hyps, refs) == pytest.approx(theirs, abs=1e-6)


@pytest.mark.parametrize("text,tokens", [
    ("A man riding a horse.", ["a", "man", "riding", "a", "horse"]),
    ("The dog's ball, isn't it?", ["the", "dog", "'s", "ball", "is", "n't", "it"]),
    ('A "big" (red) T-shirt -- on sale...', ["a", "big", "red", "t-shirt", "on", "sale"]),
    ("It costs $3.50 for 1,000 items", ["it", "costs", "$", "3.50", "for", "1,000", "items"]),
    ("", []),
])
def test_coco_tokenize(text, tokens):
    assert coco_tokenize(text) == tokens


def test_cider_properties():
    hyps, refs = random_corpus(5, 20, min_len=3)
    good = [r[0] for r in refs]
    assert cider(good, refs) > cider(hyps, refs)
    # one item: every n-gram's IDF is log(1) - log(1) = 0
    assert cider(["a dog"], [["a dog"]]) == 0.0


# --- score_task ---

def test_score_task_names_and_scales():
    hyps = ["a dog runs on the grass", "a cat sits on a mat"]
    refs = [["a dog is running on grass", "the dog runs on the grass"], ["a cat on a mat"]]
    scores = score_task("caption_image", hyps, refs)
    assert set(scores) == {"cider", "bleu"}
    assert scores["cider"] == pytest.approx(CIDER_REPORT_SCALE * cider(hyps, refs))
    assert scores["bleu"] == pytest.approx(bleu(hyps, refs))
    vqa = score_task("vqa", ["Two", "yes"], ["2", ["no"] * 10])
    assert vqa["accuracy"] == pytest.approx(50.0) and set(vqa) == {"accuracy", "bleu"}
    img = np.full((12, 12, 3), 0.5)
    assert set(score_task("reconstruct", img, img)) == {"psnr_db", "ssim"}
    with pytest.raises(ValueError, match="unknown task 'caption'"):
        score_task("caption", hyps, refs)
