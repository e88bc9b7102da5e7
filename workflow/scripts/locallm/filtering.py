"""Quality filters: each rule marks the rows it removes, with its name as the reason."""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from locallm.logs import get_logger
from locallm.tables import read_table, read_tables, write_table, write_tsv

log = get_logger(__name__)

REJECT_COLUMNS = ["doc_id", "group_id", "reason", "detail"]
STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
BULLETS = ("•", "-", "*", "·")
ELLIPSES = ("...", "…")
# Words: numbers with separators stay one word ("1,234.5"); other words keep inner apostrophes and
# hyphens; punctuation is skipped (it is not a word).
WORD = re.compile(r"\d+(?:[.,]\d+)*|\w+(?:['’-]\w+)*")
LETTER = re.compile(r"[^\W\d_]")
PARAGRAPH_BREAK = re.compile(r"\n{2,}")
LINE_BREAK = re.compile(r"\n+")

# A check of one text returns None (passes) or (check name, human detail).
Failure = tuple[str, str] | None


def words_of(text: str) -> list[str]:
    """The words of a text (punctuation dropped)."""
    return WORD.findall(text)


class Rule:
    """A filter rule: `name` prefixes the reasons of the rows it removes."""

    name: str = "rule"

    def __call__(self, docs: pd.DataFrame) -> pd.DataFrame:
        """reason and detail for the rows of `docs` this rule removes (a subset of docs.index)."""
        raise NotImplementedError


class TextRule(Rule):
    """A rule that looks at one text at a time through `check`."""

    def check(self, text: str) -> Failure:
        raise NotImplementedError

    def __call__(self, docs: pd.DataFrame) -> pd.DataFrame:
        checked = zip(docs.index, map(self.check, docs["text"]), strict=True)
        failures = {i: failure for i, failure in checked if failure}
        return _rejections(self.name, failures)


def _rejections(name: str, failures: Mapping[Any, tuple[str, str]]) -> pd.DataFrame:
    """A reason/detail frame indexed like the docs, reasons prefixed with the rule's name."""
    return pd.DataFrame(
        {
            "reason": [f"{name}.{check}" for check, _ in failures.values()],
            "detail": [detail for _, detail in failures.values()],
        },
        index=pd.Index(list(failures), dtype=object),
    )


class Length(Rule):
    """Bounds on the number of characters."""

    name = "length"

    def __init__(self, min_chars: int = 0, max_chars: int | None = None):
        self.min_chars, self.max_chars = min_chars, max_chars

    def __call__(self, docs: pd.DataFrame) -> pd.DataFrame:
        chars = docs["text"].str.len()
        failures = {}
        for i, n in chars[chars < self.min_chars].items():
            failures[i] = ("min_chars", f"chars={n} < {self.min_chars}")
        if self.max_chars is not None:
            for i, n in chars[chars > self.max_chars].items():
                failures[i] = ("max_chars", f"chars={n} > {self.max_chars}")
        return _rejections(self.name, failures)


class GopherQuality(TextRule):
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


class GopherRepetition(TextRule):
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


class Language(TextRule):
    """Keep texts whose language (langid.py, offline) is the configured ISO 639-1 code."""

    name = "language"

    def __init__(self, language: str):
        try:
            import langid
        except ImportError as error:
            raise ImportError(
                f"config filter.language is {language!r}, and the language filter needs langid: "
                "pip install langid==1.1.6 (or set filter.language: null)"
            ) from error
        self.language = language
        self.classify = langid.classify

    def check(self, text: str) -> Failure:
        detected, _ = self.classify(text)
        if detected != self.language:
            return "mismatch", f"detected {detected}, want {self.language}"
        return None


class Duplicates(Rule):
    """Remove copies that `dedup` marked (the kept copy of each cluster of duplicates stays)."""

    name = "dedup"

    def __init__(self, duplicates: pd.DataFrame):
        self.duplicates = duplicates.set_index("doc_id")

    def __call__(self, docs: pd.DataFrame) -> pd.DataFrame:
        hits = docs[["doc_id"]].join(self.duplicates, on="doc_id", how="inner")
        failures = {
            i: (kind, f"duplicate_of={of} (estimated Jaccard {j:.2f})")
            for i, kind, of, j in zip(
                hits.index,
                hits["kind"],
                hits["duplicate_of"],
                hits["estimated_jaccard"],
                strict=True,
            )
        }
        return _rejections(self.name, failures)


class ClusterInclude(Rule):
    """Keep only documents of the listed clusters."""

    name = "cluster"

    def __init__(self, clusters: Sequence[int]):
        self.clusters = sorted(set(clusters))

    def __call__(self, docs: pd.DataFrame) -> pd.DataFrame:
        out = docs[~docs["cluster"].isin(self.clusters)]
        detail = f"not in include_clusters {self.clusters}"
        return _rejections(
            self.name, {i: ("include", f"cluster {c} {detail}") for i, c in out["cluster"].items()}
        )


class ClusterExclude(Rule):
    """Remove documents of the listed clusters."""

    name = "cluster"

    def __init__(self, clusters: Sequence[int]):
        self.clusters = sorted(set(clusters))

    def __call__(self, docs: pd.DataFrame) -> pd.DataFrame:
        out = docs[docs["cluster"].isin(self.clusters)]
        return _rejections(
            self.name,
            {i: ("exclude", f"cluster {c} in exclude_clusters") for i, c in out["cluster"].items()},
        )


def seeded_rank(doc_ids: pd.Series, clusters: pd.Series, seed: int) -> pd.Series:
    """Rank of each document inside its cluster (or group) by a seeded hash of its doc_id
    (0 = first drawn).

    The rank depends only on (seed, doc_id) and the cluster's members, never on shards or row order.
    """
    keys = [
        hashlib.blake2b(f"{seed}:{d}".encode(), digest_size=8).hexdigest()
        for d in doc_ids.astype(str)
    ]
    frame = pd.DataFrame(
        {"cluster": clusters.to_numpy(), "key": keys, "doc_id": doc_ids.astype(str).to_numpy()}
    )
    order = frame.sort_values(["cluster", "key", "doc_id"])
    ranks = order.groupby("cluster").cumcount()
    return pd.Series(ranks.reindex(frame.index).to_numpy(), index=doc_ids.index)


class SeededCap(Rule):
    """At most `cap` documents per value of `column`: those with the lowest seeded rank."""

    name = ""
    column = ""

    def __init__(self, cap: int, ranks: pd.Series):
        # ranks: doc_id -> rank inside its cluster or group over the whole corpus (see cap_ranks).
        self.cap, self.ranks = cap, ranks

    def __call__(self, docs: pd.DataFrame) -> pd.DataFrame:
        rank = docs["doc_id"].map(self.ranks)
        out = docs[rank.isna() | (rank >= self.cap)]
        failures = {
            i: (
                "cap",
                f"{self.name} {v}: seeded rank {int(r) if r == r else 'none'} >= cap {self.cap}",
            )
            for i, v, r in zip(out.index, out[self.column], rank[out.index], strict=True)
        }
        return _rejections(self.name, failures)


class ClusterCap(SeededCap):
    """At most `cap` documents per topic cluster, among the eligible."""

    name = "cluster"
    column = "cluster"


class GroupCap(SeededCap):
    """At most `cap` documents per group (e.g. passages per speech), drawn with the seed: a sample
    in which long documents do not outweigh short ones."""

    name = "group"
    column = "group_id"


def apply_rules(
    docs: pd.DataFrame, rules: Sequence[Rule | Callable]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split docs into (kept, rejected); a rejected row carries the first rule that removed it.

    Rules run in order, each on the rows still kept, so later (costlier) rules see fewer rows.
    """
    remaining = docs
    removed = []
    for rule in rules:
        if remaining.empty:
            break
        hits = rule(remaining)
        if len(hits):
            rejected = remaining.loc[hits.index, ["doc_id", "group_id"]].assign(
                reason=hits["reason"].to_numpy(), detail=hits["detail"].to_numpy()
            )
            removed.append(rejected)
            remaining = remaining.drop(index=hits.index)
    rejected = pd.concat(removed) if removed else pd.DataFrame(columns=REJECT_COLUMNS)
    return remaining, rejected[REJECT_COLUMNS].reset_index(drop=True)


def eligible_for_cap(
    assignments: pd.DataFrame, duplicates: pd.DataFrame, settings: Mapping[str, Any]
) -> pd.DataFrame:
    """Assignments of documents that the corpus-wide rules (dedup, include/exclude) keep."""
    keep = pd.Series(True, index=assignments.index)
    if settings["drop_duplicates"]:
        keep &= ~assignments["doc_id"].isin(duplicates["doc_id"])
    if settings["include_clusters"]:
        keep &= assignments["cluster"].isin(settings["include_clusters"])
    keep &= ~assignments["cluster"].isin(settings["exclude_clusters"])
    return assignments[keep]


def cap_ranks(
    assignments: pd.DataFrame,
    duplicates: pd.DataFrame,
    settings: Mapping[str, Any],
    seed: int,
    by: str = "cluster",
) -> pd.Series:
    """doc_id -> seeded rank in its cluster (or `by` column: group_id), over all shards, among
    documents eligible for the cap.

    Quality rules are per shard, so the cap is drawn before them: a cluster ends with at most
    `cluster_cap` documents, fewer where quality rules removed some of the drawn ones.
    """
    eligible = eligible_for_cap(assignments, duplicates, settings)
    ranks = seeded_rank(eligible["doc_id"], eligible[by], seed)
    return pd.Series(ranks.to_numpy(), index=eligible["doc_id"].astype(str).to_numpy())


def rules_from(
    settings: Mapping[str, Any],
    duplicates: pd.DataFrame | None = None,
    ranks: pd.Series | None = None,
    group_ranks: pd.Series | None = None,
) -> list[Rule]:
    """The rules the `filter` settings ask for, cheap ones first (the order decides the reason)."""
    rules: list[Rule] = [Length(settings["min_chars"], settings["max_chars"])]
    if settings["language"]:
        rules.append(Language(settings["language"]))
    quality = dict(settings["gopher_quality"])
    if quality.pop("enabled"):
        rules.append(GopherQuality(**quality))
    repetition = dict(settings["gopher_repetition"])
    if repetition.pop("enabled"):
        rules.append(GopherRepetition(**repetition))
    if settings["drop_duplicates"] and duplicates is not None:
        rules.append(Duplicates(duplicates))
    if settings["include_clusters"]:
        rules.append(ClusterInclude(settings["include_clusters"]))
    if settings["exclude_clusters"]:
        rules.append(ClusterExclude(settings["exclude_clusters"]))
    if settings["cluster_cap"] is not None and ranks is not None:
        rules.append(ClusterCap(settings["cluster_cap"], ranks))
    if settings["group_cap"] is not None and group_ranks is not None:
        rules.append(GroupCap(settings["group_cap"], group_ranks))
    return rules


def with_clusters(docs: pd.DataFrame, assignments: pd.DataFrame, source: str) -> pd.DataFrame:
    """Add the `cluster` column; a document without an assignment is an error naming it."""
    clusters = assignments.set_index("doc_id")["cluster"]
    cluster = docs["doc_id"].map(clusters)
    missing = docs.loc[cluster.isna(), "doc_id"]
    if len(missing):
        raise ValueError(
            f"{len(missing)} documents have no cluster in {source} (first: {missing.iloc[0]!r}); "
            "re-run the cluster rule"
        )
    return docs.assign(cluster=cluster.astype(int).to_numpy())


def filter_shard(
    corpus: str | os.PathLike,
    duplicates: str | os.PathLike,
    clusters: str | os.PathLike,
    all_clusters: Sequence[str],
    settings: Mapping[str, Any],
    seed: int,
    kept: str | os.PathLike,
    rejects: str | os.PathLike,
) -> None:
    """Rule `filter`: apply the rules to one corpus shard, write kept rows and rejects."""
    docs = with_clusters(
        read_table(corpus), read_table(clusters, columns=["doc_id", "cluster"]), str(clusters)
    )
    dups = read_table(duplicates)
    ranks = group_ranks = None
    if settings["cluster_cap"] is not None or settings["group_cap"] is not None:
        assignments = read_tables(list(all_clusters), columns=["doc_id", "group_id", "cluster"])
        ranks = cap_ranks(assignments, dups, settings, seed)
        group_ranks = cap_ranks(assignments, dups, settings, seed, by="group_id")
    kept_docs, rejected = apply_rules(docs, rules_from(settings, dups, ranks, group_ranks))
    counts = rejected["reason"].value_counts().to_dict()
    log.info("%s: %d documents, %d kept, removed %s", corpus, len(docs), len(kept_docs), counts)
    write_table(kept_docs.reset_index(drop=True), kept)
    write_table(rejected, rejects)


def filter_report(
    corpus: Sequence[str], kept: Sequence[str], rejects: Sequence[str], output: str | os.PathLike
) -> pd.DataFrame:
    """Rule `filter_report`: documents per shard and reason (and kept), checking the accounting."""
    rows = []
    for corpus_path, kept_path, rejects_path in zip(corpus, kept, rejects, strict=True):
        shard = os.path.splitext(os.path.basename(kept_path))[0]
        n_corpus = len(read_table(corpus_path, columns=["doc_id"]))
        n_kept = len(read_table(kept_path, columns=["doc_id"]))
        reasons = read_table(rejects_path, columns=["reason"])["reason"]
        if n_corpus != n_kept + len(reasons):
            raise ValueError(
                f"shard {shard}: {corpus_path} has {n_corpus} rows but {kept_path} ({n_kept}) + "
                f"{rejects_path} ({len(reasons)}) = {n_kept + len(reasons)}"
            )
        rows.append({"shard": shard, "reason": "corpus", "documents": n_corpus})
        rows.append({"shard": shard, "reason": "kept", "documents": n_kept})
        for reason, count in sorted(reasons.value_counts().items()):
            rows.append({"shard": shard, "reason": reason, "documents": int(count)})
    table = pd.DataFrame(rows, columns=["shard", "reason", "documents"])
    total = table.groupby("reason", as_index=False)["documents"].sum()
    first = {"corpus": "0", "kept": "1"}  # then the reasons, alphabetically
    total = total.sort_values("reason", key=lambda r: r.map(lambda x: first.get(x, "2" + x)))
    table = pd.concat([table, total.assign(shard="total")[table.columns]], ignore_index=True)
    # Share of the shard's (or the total's) corpus rows.
    corpus_rows = table[table["reason"] == "corpus"].set_index("shard")["documents"]
    table["share"] = (table["documents"] / table["shard"].map(corpus_rows).clip(lower=1)).round(4)
    write_tsv(table, output)
    return table
