"""Filters at their boundaries, first-filter-wins reasons, clusters, and the accounting."""

import pandas as pd
import pytest
from locallm.config import with_defaults
from locallm.filtering.caps import ClusterCapFilter, GroupCapFilter, cap_ranks
from locallm.filtering.filters import (
    ClusterExcludeFilter,
    ClusterIncludeFilter,
    DuplicatesFilter,
    LanguageFilter,
    LengthFilter,
    apply_filters,
)
from locallm.filtering.gopher import GopherQualityFilter, GopherRepetitionFilter
from locallm.filtering.report import filter_report
from locallm.filtering.shard import filter_shard
from locallm.tables import read_table, write_table

SETTINGS = with_defaults({})["filter"]
PROSE = (
    "The state of the union is strong, and the work of the Congress in the year to come will "
    "decide whether the promise of the nation is kept for the families who have placed their "
    "trust in it. We have reduced the deficit, expanded trade with our neighbours and invested "
    "in the schools, roads and laboratories that carry the country forward. Much remains to be "
    "done, and I ask the members of both houses to join with me in that work."
)


def frame(*texts: str, clusters: list[int] | None = None) -> pd.DataFrame:
    ids = [f"d{i}" for i in range(len(texts))]
    df = pd.DataFrame({"doc_id": ids, "group_id": ids, "text": list(texts)})
    return df.assign(cluster=clusters) if clusters is not None else df


def verdict(rule, text: str) -> str | None:
    """The reason a filter gives for one text, or None when it keeps it."""
    _, rejected = apply_filters(frame(text), [rule])
    return rejected["reason"].iloc[0] if len(rejected) else None


def words(n: int, word: str = "word") -> str:
    return " ".join([word] * n)


def padded(text: str, total: int) -> str:
    """text plus one long filler word, so that the whole is exactly `total` characters."""
    filler = total - len(text) - 1
    assert filler > 0
    return f"{text} {'z' * filler}"


# --- length -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a" * 9, "length.min_chars"),
        ("a" * 10, None),
        ("a" * 20, None),
        ("a" * 21, "length.max_chars"),
    ],
)
def test_length_bounds(text, reason):
    assert verdict(LengthFilter(min_chars=10, max_chars=20), text) == reason


# --- Gopher quality: one check at a time, just inside and just outside ----------------------------


@pytest.mark.parametrize(
    ("rule", "inside", "outside", "reason"),
    [
        (GopherQualityFilter(min_words=50), words(50), words(49), "min_words"),
        (GopherQualityFilter(max_words=100), words(100), words(101), "max_words"),
        # mean word length 3.0 vs 2.9 (nine 3-letter words and one 2-letter word)
        (
            GopherQualityFilter(min_avg_word_length=3),
            words(10, "abc"),
            words(9, "abc") + " ab",
            "min_avg_word_length",
        ),
        (
            GopherQualityFilter(max_avg_word_length=10),
            words(10, "a" * 10),
            words(9, "a" * 10) + " " + "a" * 11,
            "max_avg_word_length",
        ),
        # '#' per word: 1/10 vs 2/10
        (
            GopherQualityFilter(max_symbol_word_ratio=0.1),
            words(10) + " #",
            words(10) + " # #",
            "max_symbol_word_ratio",
        ),
        # '...' and '…' per word: 1/10 vs 2/10
        (
            GopherQualityFilter(max_symbol_word_ratio=0.1),
            words(10) + " ...",
            words(10) + " ... …",
            "max_symbol_word_ratio",
        ),
        # lines starting with a bullet: 9/10 vs 10/10
        (
            GopherQualityFilter(max_bullet_lines_ratio=0.9),
            "\n".join(["- item"] * 9 + ["text"]),
            "\n".join(["• item"] * 10),
            "max_bullet_lines_ratio",
        ),
        # lines ending with an ellipsis: 3/10 vs 4/10
        (
            GopherQualityFilter(max_ellipsis_lines_ratio=0.3),
            "\n".join(["and so..."] * 3 + ["done"] * 7),
            "\n".join(["and so…"] * 4 + ["done"] * 6),
            "max_ellipsis_lines_ratio",
        ),
        # words with a letter: 8/10 vs 7/10 (numbers have no letter; punctuation is no word)
        (
            GopherQualityFilter(min_alpha_words_ratio=0.8),
            words(8) + " 1990 1,234 !!",
            words(7) + " 1990 1,234 12.5",
            "min_alpha_words_ratio",
        ),
        # stop words: 2 vs 1, counted case-insensitively
        (
            GopherQualityFilter(min_stop_words=2),
            "The cat of mine",
            "The cat is mine",
            "min_stop_words",
        ),
    ],
)
def test_gopher_quality_boundaries(rule, inside, outside, reason):
    assert verdict(rule, inside) is None
    assert verdict(rule, outside) == f"gopher_quality.{reason}"


# --- Gopher repetition ---------------------------------------------------------------------------


def paragraphs(dups: int, unique: int, sep: str) -> str:
    return sep.join(["same text"] * (dups + 1) + [f"text {i}" for i in range(unique)])


@pytest.mark.parametrize(
    ("rule", "inside", "outside", "reason"),
    [
        # 3 of 10 paragraphs repeat an earlier one (0.3) vs 4 of 10
        (
            GopherRepetitionFilter(dup_para_frac=0.3),
            paragraphs(3, 6, "\n\n"),
            paragraphs(4, 5, "\n\n"),
            "dup_para_frac",
        ),
        (
            GopherRepetitionFilter(dup_line_frac=0.3),
            paragraphs(3, 6, "\n"),
            paragraphs(4, 5, "\n"),
            "dup_line_frac",
        ),
        # a 20-character paragraph twice: 20 duplicate characters of 100 (0.2) vs of 99
        (
            GopherRepetitionFilter(dup_para_char_frac=0.2),
            "p" * 20 + "\n\n" + "p" * 20 + "\n\n" + "q" * 56,
            "p" * 20 + "\n\n" + "p" * 20 + "\n\n" + "q" * 55,
            "dup_para_char_frac",
        ),
        (
            GopherRepetitionFilter(dup_line_char_frac=0.2),
            "p" * 20 + "\n" + "p" * 20 + "\n" + "q" * 58,
            "p" * 20 + "\n" + "p" * 20 + "\n" + "q" * 57,
            "dup_line_char_frac",
        ),
        # 'ab cd' four times: 4 x 5 characters of 100 (0.2) vs of 99
        (
            GopherRepetitionFilter(top_n_grams={2: 0.2}),
            padded("ab cd ab cd ab cd ab cd", 100),
            padded("ab cd ab cd ab cd ab cd", 99),
            "top_2_gram",
        ),
        # one repeated 5-gram of 10 letters: 10/67 = 0.149 vs 10/66 = 0.152
        (
            GopherRepetitionFilter(dup_n_grams={5: 0.15}),
            padded("aa bb cc dd ee aa bb cc dd ee", 67),
            padded("aa bb cc dd ee aa bb cc dd ee", 66),
            "dup_5_gram",
        ),
    ],
)
def test_gopher_repetition_boundaries(rule, inside, outside, reason):
    assert verdict(rule, inside) is None
    assert verdict(rule, outside) == f"gopher_repetition.{reason}"


def test_top_n_gram_occurring_once_is_not_repetition():
    assert (
        verdict(
            GopherRepetitionFilter(top_n_grams={4: 0.16}),
            "Constitution Massachusetts Pennsylvania Connecticut",
        )
        is None
    )


def test_default_gopher_rules_keep_ordinary_prose():
    quality = dict(SETTINGS["gopher_quality"])
    repetition = dict(SETTINGS["gopher_repetition"])
    quality.pop("enabled"), repetition.pop("enabled")
    assert apply_filters(
        frame(PROSE), [GopherQualityFilter(**quality), GopherRepetitionFilter(**repetition)]
    )[1].empty


# --- apply_filters -----------------------------------------------------------------------------


def test_first_rule_that_removes_a_row_is_its_reason():
    docs = frame("too short", words(60, "the"))
    kept, rejected = apply_filters(
        docs, [LengthFilter(min_chars=20), GopherQualityFilter(min_words=50)]
    )
    assert kept["doc_id"].tolist() == ["d1"]
    assert rejected[["doc_id", "reason", "detail"]].values.tolist() == [
        ["d0", "length.min_chars", "chars=9 < 20"]
    ]


def test_rejected_detail_names_the_value_and_bound():
    _, rejected = apply_filters(frame(words(12)), [GopherQualityFilter(min_words=50)])
    assert rejected["detail"].tolist() == ["words=12 < 50"]


def test_duplicates_are_removed_with_their_kind_and_kept_copy():
    dups = pd.DataFrame(
        {
            "doc_id": ["d1", "d2"],
            "duplicate_of": ["d0", "d0"],
            "estimated_jaccard": [1.0, 0.85],
            "kind": ["exact", "near"],
        }
    )
    kept, rejected = apply_filters(frame("x", "x", "y"), [DuplicatesFilter(dups)])
    assert kept["doc_id"].tolist() == ["d0"]
    assert rejected["reason"].tolist() == ["dedup.exact", "dedup.near"]
    assert rejected["detail"].iloc[1] == "duplicate_of=d0 (estimated Jaccard 0.85)"


def test_cluster_include_and_exclude():
    docs = frame("a", "b", "c", clusters=[0, 1, 2])
    kept, rejected = apply_filters(docs, [ClusterIncludeFilter([0, 1]), ClusterExcludeFilter([1])])
    assert kept["doc_id"].tolist() == ["d0"]
    assert rejected[["doc_id", "reason"]].values.tolist() == [
        ["d2", "cluster.include"],
        ["d1", "cluster.exclude"],
    ]


def test_cluster_cap_is_the_same_whether_shards_are_filtered_apart_or_together():
    assignments = pd.DataFrame(
        {"doc_id": [f"d{i}" for i in range(10)], "cluster": [0] * 7 + [1] * 3}
    )
    no_dups = pd.DataFrame(columns=["doc_id", "duplicate_of", "estimated_jaccard", "kind"])
    ranks = cap_ranks(assignments, no_dups, SETTINGS, seed=3)
    docs = frame(*"abcdefghij", clusters=assignments["cluster"].tolist())
    together, _ = apply_filters(docs, [ClusterCapFilter(2, ranks)])
    apart = pd.concat(
        [apply_filters(part, [ClusterCapFilter(2, ranks)])[0] for part in (docs[:4], docs[4:])]
    )
    assert sorted(together["doc_id"]) == sorted(apart["doc_id"])
    assert together["cluster"].value_counts().to_dict() == {0: 2, 1: 2}


def test_cluster_cap_draw_changes_with_the_seed_and_skips_removed_duplicates():
    assignments = pd.DataFrame({"doc_id": [f"d{i}" for i in range(40)], "cluster": [0] * 40})
    dups = pd.DataFrame(
        {"doc_id": ["d0"], "duplicate_of": ["d1"], "estimated_jaccard": [1.0], "kind": ["exact"]}
    )
    draws = [
        set(r[r < 5].index) for r in (cap_ranks(assignments, dups, SETTINGS, s) for s in (1, 2))
    ]
    assert draws[0] != draws[1]
    assert all("d0" not in draw and len(draw) == 5 for draw in draws)


def test_group_cap_keeps_at_most_n_documents_per_group_across_shards():
    groups = ["long"] * 6 + ["short"] * 2 + ["one"]
    assignments = pd.DataFrame(
        {"doc_id": [f"d{i}" for i in range(9)], "group_id": groups, "cluster": [0] * 9}
    )
    no_dups = pd.DataFrame(columns=["doc_id", "duplicate_of", "estimated_jaccard", "kind"])
    ranks = cap_ranks(assignments, no_dups, SETTINGS, seed=3, by="group_id")
    docs = frame(*"abcdefghi").assign(group_id=groups)
    together, rejected = apply_filters(docs, [GroupCapFilter(2, ranks)])
    apart = pd.concat(
        [apply_filters(part, [GroupCapFilter(2, ranks)])[0] for part in (docs[:3], docs[3:])]
    )
    assert sorted(together["doc_id"]) == sorted(apart["doc_id"])
    assert together["group_id"].value_counts().to_dict() == {"long": 2, "short": 2, "one": 1}
    assert set(rejected["reason"]) == {"group.cap"} and len(rejected) == 4
    assert rejected["detail"].str.startswith("group long: seeded rank").all()


def test_language_filter_keeps_the_configured_language():
    docs = frame(
        "The Congress shall have power to lay and collect taxes for the common defence.",
        "Le gouvernement a présenté son budget pour l'année prochaine devant l'Assemblée.",
    )
    kept, rejected = apply_filters(docs, [LanguageFilter("en")])
    assert kept["doc_id"].tolist() == ["d0"]
    assert rejected["reason"].tolist() == ["language.mismatch"]


# --- the rule and the report: every corpus row is kept or rejected -------------------------------


def test_filter_shards_and_report_account_for_every_row(tmp_path):
    good = PROSE
    shards = {"000": ["short", good, good + " x"], "001": [good + " y", "tiny"]}
    corpus, kept, rejects, clusters = [], [], [], []
    for shard, texts in shards.items():
        docs = frame(*texts).assign(doc_id=lambda d, s=shard: s + d["doc_id"])
        docs["group_id"] = docs["doc_id"]
        corpus.append(tmp_path / f"corpus/{shard}.parquet")
        clusters.append(tmp_path / f"clusters/{shard}.parquet")
        write_table(docs, corpus[-1])
        write_table(docs[["doc_id", "group_id"]].assign(cluster=0, distance=0.0), clusters[-1])
    dups = pd.DataFrame(
        {
            "doc_id": ["000d2"],
            "duplicate_of": ["000d1"],
            "estimated_jaccard": [0.95],
            "kind": ["near"],
        }
    )
    write_table(dups, tmp_path / "duplicates.parquet")
    settings = {**SETTINGS, "min_chars": 10, "cluster_cap": 5}
    for shard, corpus_path, clusters_path in zip(shards, corpus, clusters, strict=True):
        kept.append(tmp_path / f"filtered/{shard}.parquet")
        rejects.append(tmp_path / f"filtered/rejects/{shard}.parquet")
        filter_shard(
            corpus_path,
            tmp_path / "duplicates.parquet",
            clusters_path,
            clusters,
            settings,
            1,
            kept[-1],
            rejects[-1],
        )
    assert read_table(kept[0])["doc_id"].tolist() == ["000d1"]
    assert "cluster" in read_table(kept[0]).columns
    assert read_table(rejects[0]).columns.tolist() == ["doc_id", "group_id", "reason", "detail"]
    report = filter_report(corpus, kept, rejects, tmp_path / "filter_report.tsv")
    total = report[report["shard"] == "total"].set_index("reason")["documents"].to_dict()
    assert total == {"corpus": 5, "kept": 2, "length.min_chars": 2, "dedup.near": 1}


def test_report_fails_when_rows_are_missing(tmp_path):
    docs = frame("a", "b")
    write_table(docs, tmp_path / "corpus.parquet")
    write_table(docs[:1], tmp_path / "kept.parquet")
    write_table(
        pd.DataFrame({"doc_id": [], "group_id": [], "reason": [], "detail": []}),
        tmp_path / "rejects.parquet",
    )
    with pytest.raises(ValueError, match="has 2 rows"):
        filter_report(
            [tmp_path / "corpus.parquet"],
            [tmp_path / "kept.parquet"],
            [tmp_path / "rejects.parquet"],
            tmp_path / "r.tsv",
        )


def test_document_without_cluster_assignment_is_an_error_naming_it():
    from locallm.filtering.shard import with_clusters

    assignments = pd.DataFrame({"doc_id": ["d0"], "cluster": [1]})
    with pytest.raises(ValueError, match="assignments/000.parquet.*'d1'"):
        with_clusters(frame("a", "b"), assignments, "assignments/000.parquet")
