"""VQA accuracy with the answer normalisation of the official VQA evaluation (vqaEval.py).

Normalisation (:func:`normalize_answer`), in the official order:

1. newlines and tabs become spaces, surrounding whitespace is stripped;
2. punctuation (``; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !``): each mark is deleted when it
   touches a space somewhere in the answer or when the answer holds a digit-comma-digit group
   (``1,000`` -> ``1000``), otherwise it becomes a space (``black/white`` -> ``black white``);
   then periods not followed by a digit are deleted (``3.5`` keeps its point). The official
   script passes ``re.UNICODE`` where ``re.sub`` expects its *count*, so at most 32 periods go;
   we keep that limit so answers normalise identically;
3. lower-case, number words ``none zero one ... ten`` -> digits, articles ``a an the`` dropped,
   the official contractions table applied word by word (it *adds* apostrophes: ``dont`` ->
   ``don't``; an answer already written ``don't`` stays so, so both spellings meet).

Accuracy of one answer against ``k`` human answers: the official formula averages, over the ``k``
leave-one-out subsets of the humans, ``min(1, #humans in the subset who gave the answer / 3)``
(an answer is fully right when 3 of the other 9 humans gave it). With 10 human answers (VQAv2)
this is the official number. Our generalisation to ``k < 10``: the 3 becomes ``min(3, k - 1)``
(all the other humans, when fewer than 3), and with a single reference answer (our built-in data)
the accuracy is exact match after normalisation, 0 or 1.

One deliberate difference: the official script normalises only when the 10 human answers are not
all identical (it then relies on the annotations being canonical already and compares
case-insensitively); we always normalise both sides, so e.g. ``"Two."`` scores against ten
``"2"`` answers where the official script gives it 0. Results are on 0-100 (metric ``accuracy``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ._inputs import check_text_pairs

_PUNCTUATION = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@",
                "`", ",", "?", "!"]
_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)")
# The official pattern "(?!<=\d)(\.)(?!\d)" starts with a lookahead that can never fail at a '.',
# so it is "a period not followed by a digit".
_PERIOD = re.compile(r"\.(?!\d)")
_OFFICIAL_PERIOD_COUNT = 32  # re.UNICODE, passed as count= in the official script

_NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
                 "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = frozenset(["a", "an", "the"])

# The official contractions table (data, so it must match entry for entry). Written as
# "missing-apostrophe form -> canonical form". Entries whose key has capitals ("Im", "Ive", ...)
# never fire after lower-casing, in the official script as here; they are kept for fidelity.
_CONTRACTIONS = dict(pair.split(">") for pair in """
aint>ain't arent>aren't cant>can't couldve>could've couldnt>couldn't couldn'tve>couldn't've
couldnt've>couldn't've didnt>didn't doesnt>doesn't dont>don't hadnt>hadn't hadnt've>hadn't've
hadn'tve>hadn't've hasnt>hasn't havent>haven't hed>he'd hed've>he'd've he'dve>he'd've hes>he's
howd>how'd howll>how'll hows>how's Id've>I'd've I'dve>I'd've Im>I'm Ive>I've isnt>isn't itd>it'd
itd've>it'd've it'dve>it'd've itll>it'll let's>let's maam>ma'am mightnt>mightn't
mightnt've>mightn't've mightn'tve>mightn't've mightve>might've mustnt>mustn't mustve>must've
neednt>needn't notve>not've oclock>o'clock oughtnt>oughtn't ow's'at>'ow's'at 'ows'at>'ow's'at
'ow'sat>'ow's'at shant>shan't shed've>she'd've she'dve>she'd've she's>she's shouldve>should've
shouldnt>shouldn't shouldnt've>shouldn't've shouldn'tve>shouldn't've somebody'd>somebodyd
somebodyd've>somebody'd've somebody'dve>somebody'd've somebodyll>somebody'll somebodys>somebody's
someoned>someone'd someoned've>someone'd've someone'dve>someone'd've someonell>someone'll
someones>someone's somethingd>something'd somethingd've>something'd've
something'dve>something'd've somethingll>something'll thats>that's thered>there'd
thered've>there'd've there'dve>there'd've therere>there're theres>there's theyd>they'd
theyd've>they'd've they'dve>they'd've theyll>they'll theyre>they're theyve>they've twas>'twas
wasnt>wasn't wed've>we'd've we'dve>we'd've weve>we've werent>weren't whatll>what'll
whatre>what're whats>what's whatve>what've whens>when's whered>where'd wheres>where's
whereve>where've whod>who'd whod've>who'd've who'dve>who'd've wholl>who'll whos>who's
whove>who've whyll>why'll whyre>why're whys>why's wont>won't wouldve>would've wouldnt>wouldn't
wouldnt've>wouldn't've wouldn'tve>wouldn't've yall>y'all yall'll>y'all'll y'allll>y'all'll
yall'd've>y'all'd've y'alld've>y'all'd've y'all'dve>y'all'd've youd>you'd youd've>you'd've
you'dve>you'd've youll>you'll youre>you're youve>you've
""".split())


def _process_punctuation(text: str) -> str:
    delete_all = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        touches_space = (mark + " ") in text or (" " + mark) in text
        out = out.replace(mark, "" if (touches_space or delete_all) else " ")
    return _PERIOD.sub("", out, count=_OFFICIAL_PERIOD_COUNT)


def _process_digits_articles(text: str) -> str:
    words = [_NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def normalize_answer(answer: str) -> str:
    """The official VQA normalisation of one answer (see the module docstring)."""
    text = answer.replace("\n", " ").replace("\t", " ").strip()
    return _process_digits_articles(_process_punctuation(text))


def answer_accuracy(answer: str, human_answers: str | Sequence[str]) -> float:
    """Accuracy in [0, 1] of one answer against its human answers (official formula for 10)."""
    _, refs = check_text_pairs([answer], [human_answers], "vqa accuracy")
    humans = [normalize_answer(h) for h in refs[0]]
    pred = normalize_answer(answer)
    k = len(humans)
    if k == 1:
        return float(pred == humans[0])
    needed = min(3, k - 1)
    matches = sum(h == pred for h in humans)
    # leaving out a matching human removes one match; leaving out another keeps them all
    return (matches * min(1.0, (matches - 1) / needed) + (k - matches) * min(1.0, matches / needed)) / k


def vqa_accuracy(answers: Sequence[str], human_answers: Sequence[str | Sequence[str]]) -> float:
    """Mean VQA accuracy on 0-100 over items; ``human_answers[i]`` is a string or a list.

    Raises ``ValueError`` for no items, mismatched lengths or an item without human answers.
    """
    preds, refs = check_text_pairs(answers, human_answers, "vqa accuracy")
    return 100.0 * sum(answer_accuracy(p, r) for p, r in zip(preds, refs)) / len(preds)
