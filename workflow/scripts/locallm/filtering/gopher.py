"""Gopher quality and repetition filters (Rae et al. 2021), as in datatrove."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping

from locallm.filtering.filters import Failure, TextFilter

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
BULLETS = ("•", "-", "*", "·")
ELLIPSES = ("...", "…")
# Words: numbers with separators stay one word ("1,234.5"); other words keep inner apostrophes and
# hyphens; punctuation is skipped (it is not a word).
WORD = re.compile(r"\d+(?:[.,]\d+)*|\w+(?:['’-]\w+)*")
LETTER = re.compile(r"[^\W\d_]")
PARAGRAPH_BREAK = re.compile(r"\n{2,}")
LINE_BREAK = re.compile(r"\n+")


def words_of(text: str) -> list[str]:
    """The words of a text (punctuation dropped)."""
    return WORD.findall(text)


class GopherQualityFilter(TextFilter):
    """Gopher quality heuristics (Rae et al. 2021, appendix A.1.1); None disables a check.

    Words are the tokens with a letter or digit (punctuation marks are not words), so the share
    of words with a letter is about numbers and symbols, not about commas; stop words are counted
    case-insensitively.
    """

    name = "gopher_quality"

    def __init__(
        self,
        min_words: int | None = None,
        max_words: int | None = None,
        min_avg_word_length: float | None = None,
        max_avg_word_length: float | None = None,
        max_symbol_word_ratio: float | None = None,
        max_bullet_lines_ratio: float | None = None,
        max_ellipsis_lines_ratio: float | None = None,
        min_alpha_words_ratio: float | None = None,
        min_stop_words: int | None = None,
    ):
        self.min_words, self.max_words = min_words, max_words
        self.min_avg_word_length, self.max_avg_word_length = (
            min_avg_word_length,
            max_avg_word_length,
        )
        self.max_symbol_word_ratio = max_symbol_word_ratio
        self.max_bullet_lines_ratio = max_bullet_lines_ratio
        self.max_ellipsis_lines_ratio = max_ellipsis_lines_ratio
        self.min_alpha_words_ratio = min_alpha_words_ratio
        self.min_stop_words = min_stop_words

    def check(self, text: str) -> Failure:
        words = words_of(text)
        n = len(words)
        if self.min_words is not None and n < self.min_words:
            return "min_words", f"words={n} < {self.min_words}"
        if self.max_words is not None and n > self.max_words:
            return "max_words", f"words={n} > {self.max_words}"
        mean = sum(map(len, words)) / n if n else 0.0
        if self.min_avg_word_length is not None and mean < self.min_avg_word_length:
            return (
                "min_avg_word_length",
                f"mean word length={mean:.2f} < {self.min_avg_word_length}",
            )
        if self.max_avg_word_length is not None and mean > self.max_avg_word_length:
            return (
                "max_avg_word_length",
                f"mean word length={mean:.2f} > {self.max_avg_word_length}",
            )
        if self.max_symbol_word_ratio is not None:
            for symbol, count in (
                ("#", text.count("#")),
                ("...", text.count("...") + text.count("…")),
            ):
                ratio = count / max(n, 1)
                if ratio > self.max_symbol_word_ratio:
                    return (
                        "max_symbol_word_ratio",
                        f"'{symbol}' per word={ratio:.3f} > {self.max_symbol_word_ratio}",
                    )
        lines = text.splitlines() or [""]
        if self.max_bullet_lines_ratio is not None:
            ratio = sum(line.lstrip().startswith(BULLETS) for line in lines) / len(lines)
            if ratio > self.max_bullet_lines_ratio:
                return (
                    "max_bullet_lines_ratio",
                    f"bullet lines={ratio:.3f} > {self.max_bullet_lines_ratio}",
                )
        if self.max_ellipsis_lines_ratio is not None:
            ratio = sum(line.rstrip().endswith(ELLIPSES) for line in lines) / len(lines)
            if ratio > self.max_ellipsis_lines_ratio:
                return (
                    "max_ellipsis_lines_ratio",
                    f"lines ending in an ellipsis={ratio:.3f} > {self.max_ellipsis_lines_ratio}",
                )
        if self.min_alpha_words_ratio is not None:
            ratio = sum(map(bool, map(LETTER.search, words))) / max(n, 1)
            if ratio < self.min_alpha_words_ratio:
                return (
                    "min_alpha_words_ratio",
                    f"words with a letter={ratio:.3f} < {self.min_alpha_words_ratio}",
                )
        if self.min_stop_words is not None:
            stops = sum(map(STOP_WORDS.__contains__, map(str.lower, words)))
            if stops < self.min_stop_words:
                return "min_stop_words", f"stop words={stops} < {self.min_stop_words}"
        return None


def ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    """The word n-grams of a text, in order (zip of shifted lists: no Python loop per n-gram)."""
    return list(zip(*(words[i:] for i in range(n)), strict=False))


def _duplicates(items: list[str]) -> tuple[int, int]:
    """Number of items equal to an earlier one, and their characters."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def _duplicated_ngram_chars(words: list[str], n: int) -> int:
    """Characters of words inside n-grams that repeat an earlier n-gram (overlaps counted once).

    As in datatrove: after a repeated n-gram the scan jumps n words ahead.
    """
    grams = ngrams(words, n)
    seen: set[tuple[str, ...]] = set()
    chars = i = 0
    while i < len(grams):
        gram = grams[i]
        if gram in seen:
            chars += sum(map(len, gram))
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


class GopherRepetitionFilter(TextFilter):
    """Gopher repetition heuristics (Rae et al. 2021, table A1); None disables a check.

    Fractions of characters are over len(text). A top n-gram counts only if it occurs at least
    twice: a short text's one unique n-gram is not repetition (datatrove counts it too).
    """

    name = "gopher_repetition"

    def __init__(
        self,
        dup_line_frac: float | None = None,
        dup_para_frac: float | None = None,
        dup_line_char_frac: float | None = None,
        dup_para_char_frac: float | None = None,
        top_n_grams: Mapping[int, float] | None = None,
        dup_n_grams: Mapping[int, float] | None = None,
    ):
        self.dup_line_frac, self.dup_para_frac = dup_line_frac, dup_para_frac
        self.dup_line_char_frac, self.dup_para_char_frac = dup_line_char_frac, dup_para_char_frac
        self.top_n_grams = sorted((int(n), f) for n, f in (top_n_grams or {}).items())
        self.dup_n_grams = sorted((int(n), f) for n, f in (dup_n_grams or {}).items())

    def check(self, text: str) -> Failure:
        chars = max(len(text), 1)
        for unit, pieces, frac, char_frac in (
            (
                "para",
                PARAGRAPH_BREAK.split(text.strip()),
                self.dup_para_frac,
                self.dup_para_char_frac,
            ),
            ("line", LINE_BREAK.split(text), self.dup_line_frac, self.dup_line_char_frac),
        ):
            count, dup_chars = _duplicates(pieces)
            if frac is not None and count / len(pieces) > frac:
                return f"dup_{unit}_frac", f"duplicate {unit}s={count}/{len(pieces)} > {frac}"
            if char_frac is not None and dup_chars / chars > char_frac:
                return (
                    f"dup_{unit}_char_frac",
                    f"characters in duplicate {unit}s={dup_chars / chars:.3f} > {char_frac}",
                )
        words = words_of(text)
        for n, frac in self.top_n_grams:
            grams = Counter(ngrams(words, n))
            if not grams:
                continue
            gram, count = grams.most_common(1)[0]
            share = len(" ".join(gram)) * count / chars
            if count > 1 and share > frac:
                return (
                    f"top_{n}_gram",
                    f"'{' '.join(gram)}' x{count}: {share:.3f} of characters > {frac}",
                )
        for n, frac in self.dup_n_grams:
            grams = ngrams(words, n)
            # No repeated n-gram means no repeated longer one either: the common case for prose.
            if len(set(grams)) == len(grams):
                break
            share = _duplicated_ngram_chars(words, n) / chars
            if share > frac:
                return f"dup_{n}_gram", f"characters in repeated {n}-grams={share:.3f} > {frac}"
        return None
