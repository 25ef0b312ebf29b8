"""VQA accuracy and the official answer normalisation."""

from __future__ import annotations

import math
import random

import pytest

from mtsc_sdr.metrics import answer_accuracy, normalize_answer, vqa_accuracy


@pytest.mark.parametrize("raw,norm", [
    ("Two", "2"),
    ("the dog.", "dog"),
    ("A Dog", "dog"),
    ("dont", "don't"),
    ("don't", "don't"),
    ("none", "0"),
    ("1,000", "1000"),          # digit-comma-digit: punctuation deleted, not spaced
    ("yes, it is", "yes it is"),  # a mark touching a space is deleted
    ("black/white", "black white"),  # otherwise it becomes a space
    ("3.5", "3.5"),             # a period before a digit stays
    ("  red\tand\nblue  ", "red and blue"),
    ("an apple!", "apple"),
    ("Im", "im"),               # capitalised table keys never fire after lower-casing (official)
])
def test_normalize_answer_official_cases(raw, norm):
    assert normalize_answer(raw) == norm


def official_accuracy(answer: str, humans: list[str]) -> float:
    """The official loop, on already normalised strings: leave each human out in turn."""
    accs = []
    for i in range(len(humans)):
        others = humans[:i] + humans[i + 1:]
        accs.append(min(1.0, sum(h == answer for h in others) / 3))
    return sum(accs) / len(accs)


def test_ten_answers_match_the_official_leave_one_out_formula():
    rng = random.Random(0)
    pool = ["yes", "no", "2", "red", "dog"]
    for _ in range(200):
        humans = [rng.choice(pool) for _ in range(10)]
        ans = rng.choice(pool)
        assert answer_accuracy(ans, humans) == pytest.approx(official_accuracy(ans, humans))
    assert answer_accuracy("yes", ["yes"] * 3 + ["no"] * 7) == pytest.approx(0.9)
    assert answer_accuracy("yes", ["yes"] * 4 + ["no"] * 6) == pytest.approx(1.0)


def test_single_reference_is_exact_match_after_normalisation():
    assert answer_accuracy("Two.", "2") == 1.0
    assert answer_accuracy("the red ball", ["red ball"]) == 1.0
    assert answer_accuracy("blue", "red") == 0.0
    assert vqa_accuracy(["two", "blue", "yes", ""], ["2", "red", "Yes", "no"]) == pytest.approx(50.0)


def test_vqa_accuracy_names_bad_input():
    with pytest.raises(ValueError, match="1 hypotheses but 2 reference sets"):
        vqa_accuracy(["yes"], ["yes", "no"])
    with pytest.raises(ValueError, match="item 0 has no reference"):
        vqa_accuracy(["yes"], [[]])


def test_per_item_scores_average_to_the_report_and_give_standard_errors():
    import numpy as np

    from mtsc_sdr.metrics import score_task, score_task_items, standard_error

    hyps, refs = ["two", "blue", "yes", ""], ["2", "red", "Yes", "no"]
    items = score_task_items("vqa", hyps, refs)
    assert items["accuracy"].tolist() == [100.0, 0.0, 100.0, 0.0]
    assert score_task("vqa", hyps, refs)["accuracy"] == pytest.approx(items["accuracy"].mean())
    assert standard_error(items["accuracy"]) == pytest.approx(np.std([100, 0, 100, 0], ddof=1) / 2.0)
    caps = score_task_items("caption_image", ["a red circle", "a blue square"],
                            [["a red circle"], ["a green square"]])
    assert set(caps) == {"cider"} and caps["cider"].shape == (2,)
    assert score_task("caption_image", ["a red circle", "a blue square"],
                      [["a red circle"], ["a green square"]])["cider"] == pytest.approx(caps["cider"].mean())
    assert standard_error(np.array([3.0])) == 0.0
    assert math.isnan(standard_error(np.array([1.0, np.inf])))
