"""Clustering: two obvious topics separate, c-TF-IDF names them, results follow the seed."""

import numpy as np
import pandas as pd
import pytest
from locallm.config import with_defaults
from locallm.data.clustering import (
    assign,
    class_tfidf,
    cluster_shares,
    fit_clusters,
    sample_rows,
    share_bins,
    snippet,
    summarise,
    top_terms,
)
from locallm.tables import write_table

FISHING = [
    "fishing boats left the harbour at dawn with nets and crews",
    "the fishing fleet brought boats full of cod into the harbour",
    "crews mended nets on the fishing boats after the storm",
    "boats of the fishing fleet anchored in the harbour overnight",
]
TAXES = [
    "the tax budget raised revenue and cut the deficit this year",
    "congress debated the budget tax rates and federal revenue",
    "a balanced budget needs tax revenue to match spending",
    "the deficit grew as the tax budget lowered revenue",
]


def two_topic_corpus() -> pd.DataFrame:
    """20 documents about fishing boats, then 20 about tax budgets."""
    texts = [f"{FISHING[i % 4]} story {i}" for i in range(20)]
    texts += [f"{TAXES[i % 4]} report {i}" for i in range(20)]
    ids = [f"d{i:02d}" for i in range(40)]
    return pd.DataFrame({"doc_id": ids, "group_id": ids, "text": texts})


def settings(**overrides) -> dict:
    return {**with_defaults({})["cluster"], "k": 2, **overrides}


def test_two_obvious_topics_separate_perfectly():
    docs = two_topic_corpus()
    result = assign(fit_clusters(docs.text.tolist(), settings(), seed=1), docs)
    fishing, taxes = result.cluster[:20], result.cluster[20:]
    assert fishing.nunique() == 1 and taxes.nunique() == 1
    assert fishing.iloc[0] != taxes.iloc[0]


def test_class_tfidf_top_terms_include_each_topic_word():
    docs = two_topic_corpus()
    model = fit_clusters(docs.text.tolist(), settings(), seed=1)
    clusters = assign(model, docs).cluster.to_numpy()
    from locallm.data.clustering import cluster_term_counts

    counts = cluster_term_counts(model, docs.text.tolist(), clusters, 2)
    terms = top_terms(class_tfidf(counts), model.terms.get_feature_names_out(), 10)
    assert "fishing" in terms[clusters[0]]
    assert "tax" in terms[clusters[20]]
    assert "tax" not in terms[clusters[0]]


def test_class_tfidf_matches_the_formula_on_a_small_matrix():
    counts = np.array([[2.0, 0.0, 2.0], [0.0, 4.0, 0.0]])
    # mean words per class = 4; tf overall = [2, 4, 2]
    expected = np.array([[0.5 * np.log(3), 0.0, 0.5 * np.log(3)], [0.0, np.log(2), 0.0]])
    assert np.allclose(class_tfidf(counts), expected)


def test_assignments_are_deterministic_with_the_seed():
    docs = two_topic_corpus()
    first = assign(fit_clusters(docs.text.tolist(), settings(k=3), seed=5), docs)
    second = assign(fit_clusters(docs.text.tolist(), settings(k=3), seed=5), docs)
    pd.testing.assert_frame_equal(first, second)


def test_too_few_documents_names_cluster_k():
    with pytest.raises(ValueError, match="cluster.k"):
        fit_clusters(["one text", "two texts"], settings(k=3), seed=1)


def test_missing_sentence_transformers_model_names_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="cluster.features"):
        fit_clusters(two_topic_corpus().text.tolist(), settings(features=str(tmp_path / "no")), 1)


def test_sample_rows_draws_across_files_with_the_seed(tmp_path):
    docs = two_topic_corpus()
    paths = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    write_table(docs[:25], paths[0])
    write_table(docs[25:], paths[1])
    first = sample_rows(paths, 10, seed=3, columns=["doc_id"])
    assert len(first) == 10 and first.doc_id.is_unique
    assert first.equals(sample_rows(paths, 10, seed=3, columns=["doc_id"]))
    assert not first.equals(sample_rows(paths, 10, seed=4, columns=["doc_id"]))
    assert len(sample_rows(paths, 100, seed=3)) == 40


def test_share_bins_turn_years_into_decades():
    years = pd.Series([1790, 1799, 1800, 2026])
    assert share_bins(years, {"share_bin": 10, "share_by": "year"}).tolist() == [
        1790,
        1790,
        1800,
        2020,
    ]


def test_share_bin_on_text_column_names_the_key():
    with pytest.raises(ValueError, match="cluster.share_bin"):
        share_bins(pd.Series(["a", "b"]), {"share_bin": 10, "share_by": "party"})


def test_cluster_shares_sum_to_one_per_bin():
    # Two shards' partial counts of one (bin, cluster) pair are added up.
    sizes = pd.DataFrame({"bin": [1, 1, 2, 1], "cluster": [0, 1, 1, 0], "size": [1, 1, 1, 1]})
    shares = cluster_shares(sizes)
    assert shares["size"].tolist() == [2, 1, 1]
    assert shares.groupby("bin")["share"].sum().tolist() == [1.0, 1.0]


def test_snippet_cuts_at_a_word_boundary():
    assert snippet("alpha  beta\ngamma delta", 13) == "alpha beta …"
    assert snippet("short text", 200) == "short text"


PARTS = ["assignments", "terms", "bins", "examples"]


def run_cluster_rules(tmp_path, cfg: dict) -> dict:
    """Fit, assign per shard and summarise a two-shard two-topic corpus; the output paths."""
    from locallm.data.clustering import assign_shard, fit_model

    docs = two_topic_corpus()
    docs["year"] = [1800 + i for i in range(40)]
    corpus = [tmp_path / "000.parquet", tmp_path / "001.parquet"]
    write_table(docs.iloc[::2], corpus[0])
    write_table(docs.iloc[1::2], corpus[1])
    fit_model(corpus, cfg, 1, tmp_path / "model.pkl")
    parts = {kind: [tmp_path / f"{kind}{i}.parquet" for i in (0, 1)] for kind in PARTS}
    for i, c in enumerate(corpus):
        outputs = [parts[kind][i] for kind in PARTS]
        assign_shard(tmp_path / "model.pkl", c, cfg, *outputs)
    out = {n: tmp_path / n for n in ["summary.tsv", "map.png", "shares.tsv", "shares.png"]}
    summarise(
        tmp_path / "model.pkl",
        *[parts[kind] for kind in PARTS[1:]],
        corpus,
        cfg,
        1,
        *[str(p) for p in out.values()],
    )
    return out


def test_summarise_without_share_by_gives_overall_shares(tmp_path):
    out = run_cluster_rules(tmp_path, settings(map_points=30))
    shares = pd.read_csv(out["shares.tsv"], sep="\t")
    assert shares["bin"].unique().tolist() == ["all"]
    assert shares["share"].tolist() == [0.5, 0.5]
    assert shares["share_by"].iloc[0].startswith("(none")


def test_summarise_writes_topics_examples_and_shares(tmp_path):
    out = run_cluster_rules(tmp_path, settings(share_by="year", share_bin=10, map_points=30))
    summary = pd.read_csv(out["summary.tsv"], sep="\t")
    assert summary["size"].tolist() == [20, 20]
    assert summary["share"].sum() == pytest.approx(1.0)
    assert {"example_1_doc_id", "example_3_text"} <= set(summary.columns)
    fishing_row = summary[summary.top_terms.str.contains("fishing")]
    assert len(fishing_row) == 1
    assert fishing_row.example_1_doc_id.iloc[0] < "d20"  # a fishing document represents it
    shares = pd.read_csv(out["shares.tsv"], sep="\t")
    assert sorted(shares["bin"].unique()) == [1800, 1810, 1820, 1830]
    assert out["map.png"].stat().st_size > 0 and out["shares.png"].stat().st_size > 0


def test_map_labels_are_spread_at_least_the_gap_apart():
    from locallm.data.cluster_plots import spread

    y = np.array([0.0, 0.01, 0.5, 0.02])
    placed = spread(y, 0.1)
    assert np.all(np.diff(np.sort(placed)) >= 0.1 - 1e-12)
    assert np.argsort(placed).tolist() == np.argsort(y, kind="stable").tolist()


class FakeEncoder:
    """Stands in for a sentence-transformers model: one dimension per topic word."""

    def encode(self, texts, normalize_embeddings, show_progress_bar):
        vectors = np.array([[t.count("fishing") + 0.1, t.count("tax") + 0.1] for t in texts])
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_embedding_features_cluster_and_the_encoder_is_not_pickled(tmp_path, monkeypatch):
    import pickle

    import locallm.data.clustering as clustering

    monkeypatch.setattr(clustering, "load_encoder", lambda path: FakeEncoder())
    docs = two_topic_corpus()
    model = fit_clusters(docs.text.tolist(), settings(features=str(tmp_path)), seed=1)
    result = assign(model, docs)
    assert result.cluster[:20].nunique() == 1 and result.cluster[20:].nunique() == 1
    assert result.cluster[0] != result.cluster[20]
    assert "fishing" in model.terms.get_feature_names_out()
    assert pickle.loads(pickle.dumps(model))._encoder is None


def test_missing_sentence_transformers_package_says_how_to_fix(tmp_path, monkeypatch):
    import sys

    from locallm.data.clustering import load_encoder

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import now fails
    with pytest.raises(ImportError, match="cluster.features: tfidf"):
        load_encoder(str(tmp_path))


def test_no_document_to_cluster_names_ingest_rejects_not_cluster_k():
    with pytest.raises(ValueError, match="no document to cluster: ingest kept none") as error:
        fit_clusters([], settings(), seed=1)
    assert "cluster.k" not in str(error.value)
    assert "results/NAME/corpus/ingest_report.tsv" in str(error.value)


def test_map_labels_stand_beside_the_documents_not_on_their_core():
    from locallm.data.cluster_plots import plot_map

    docs = two_topic_corpus()
    model = fit_clusters(docs.text.tolist(), settings(k=3), seed=1)
    labels = ["fishing", "tax", "third"]
    fig = plot_map(model, docs.text.tolist(), labels, seed=1)
    (ax,) = fig.axes
    right_of_points = max(o.get_offsets()[:, 0].max() for o in ax.collections)
    annotations = [t for t in ax.texts if t.get_text() in labels]
    assert len(annotations) == 3
    assert all(t.get_position()[0] > right_of_points for t in annotations)
    heights = sorted(t.get_position()[1] for t in annotations)
    assert min(np.diff(heights)) > 0  # none on top of another
