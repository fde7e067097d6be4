"""Text front end: normalisation (digits, symbols) and phonemes from the CMU dictionary.

The dictionary is the one shipped in the ``pocketsphinx`` wheel (39 ARPAbet phones, no stress).
Words missing from it get a letter-to-sound fallback (:func:`letter_to_sound`), so any English
text yields phonemes; text with no speakable word is an error the caller reports.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from seqverse.core.clikit import InputError

PHONES = ("AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH "
          "UH UW V W Y Z ZH").split()
PAD, SIL, SP = "<pad>", "sil", "sp"
SYMBOLS = (PAD, SIL, SP, *PHONES)
SYMBOL_ID = {s: i for i, s in enumerate(SYMBOLS)}
_PAUSE = set(",;:.!?-")


@functools.lru_cache(maxsize=1)
def cmudict() -> dict[str, list[str]]:
    """word -> phones (first pronunciation) from pocketsphinx's en-us cmudict."""
    import pocketsphinx

    path = Path(pocketsphinx.__file__).parent / "model" / "en-us" / "cmudict-en-us.dict"
    table: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            parts = line.split()
            if len(parts) < 2 or "(" in parts[0]:
                continue
            table.setdefault(parts[0].lower(), parts[1:])
    return table


def _number_words(match: re.Match) -> str:
    from num2words import num2words

    digits, suffix = match.group(1).replace(",", ""), (match.group(2) or "").lower()
    if "." in digits:
        words = num2words(float(digits))
    elif suffix in ("st", "nd", "rd", "th"):
        words = num2words(int(digits), to="ordinal")
    else:
        words = num2words(int(digits))
    return " " + words.replace("-", " ").replace(",", "") + " "


def normalise(text: str) -> str:
    """Lower-case words and pause marks: digits spelled (num2words), symbols named, rest dropped."""
    text = text.replace("&", " and ").replace("%", " percent ").replace("@", " at ").replace("+", " plus ")
    text = re.sub(r"\$(\d[\d,]*(?:\.\d+)?)", r"\1 dollars", text)
    text = re.sub(r"(\d[\d,]*(?:\.\d+)?)(st|nd|rd|th)?", _number_words, text)
    text = text.lower().replace("\u2019", "'")
    text = re.sub(r"[^a-z' ,;:.!?\-]", " ", text)
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)
    text = re.sub(r"([,;:.!?])", r" \1 ", text)
    text = re.sub(r"(?<=\s)-+|-+(?=\s)", " - ", text)
    return re.sub(r"\s+", " ", text).strip()


# Letter-to-sound fallback: longest grapheme match first; rough but always pronounceable.
_LTS = {
    "tch": "CH", "sch": "S K", "igh": "AY", "eau": "OW",
    "ch": "CH", "sh": "SH", "th": "TH", "ph": "F", "wh": "W", "ck": "K", "ng": "NG", "qu": "K W",
    "ee": "IY", "ea": "IY", "oo": "UW", "ou": "AW", "ow": "OW", "oi": "OY", "oy": "OY", "ai": "EY",
    "ay": "EY", "au": "AO", "aw": "AO", "ie": "IY", "ey": "IY", "er": "ER", "ir": "ER", "ur": "ER",
    "ar": "AA R", "or": "AO R", "gh": "", "kn": "N", "wr": "R", "mb": "M",
    "a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH", "i": "IH",
    "j": "JH", "k": "K", "l": "L", "m": "M", "n": "N", "o": "AA", "p": "P", "q": "K", "r": "R",
    "s": "S", "t": "T", "u": "AH", "v": "V", "w": "W", "x": "K S", "y": "Y", "z": "Z", "'": "",
}


def letter_to_sound(word: str) -> list[str]:
    """Phones for a word not in the dictionary (greedy grapheme rules; final silent 'e' dropped)."""
    w = word.lower()
    if len(w) > 2 and w.endswith("e") and not w.endswith("ee"):
        w = w[:-1]
    phones, i = [], 0
    while i < len(w):
        for n in (3, 2, 1):
            g = w[i:i + n]
            if g in _LTS:
                phones += _LTS[g].split()
                i += n
                break
        else:
            i += 1
    if word.endswith("y") and len(word) > 2 and phones and phones[-1] == "Y":
        phones[-1] = "IY"
    return phones


def to_phonemes(text: str, *, strict: bool = False) -> tuple[list[str], list[str]]:
    """``(phonemes, unknown_words)`` for ``text``: ``sil`` at both ends, ``sp`` at pause marks.

    ``strict`` returns unknown words instead of guessing them (the corpus builder skips such
    sentences); otherwise unknown words use :func:`letter_to_sound`. Empty or unspeakable text
    raises :class:`InputError`.
    """
    norm = normalise(text)
    table = cmudict()
    phones, unknown = [SIL], []
    for token in norm.split():
        if token in _PAUSE or set(token) <= _PAUSE:
            if phones[-1] not in (SIL, SP):
                phones.append(SP)
            continue
        pron = table.get(token) or table.get(token.strip("'"))
        if pron is None:
            unknown.append(token)
            if strict:
                continue
            pron = letter_to_sound(token)
        phones += pron
    if phones[-1] == SP:
        phones.pop()
    phones.append(SIL)
    if len(phones) <= 2 and not strict:
        raise InputError(f"text {text!r} has no speakable words (after normalisation: {norm!r})")
    return phones, unknown


def phoneme_ids(phones: list[str]) -> list[int]:
    return [SYMBOL_ID[p] for p in phones]
