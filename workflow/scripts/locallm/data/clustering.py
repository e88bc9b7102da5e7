"""Topic clusters: fit on a seeded sample, assign every shard, describe them by c-TF-IDF terms.

Each assign job also counts its shard's share of the description (term counts per cluster,
documents per bin and cluster, its closest examples); the summary adds those partial counts up, so
no job reads the text of the whole corpus (the map reads a sample).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy import sparse
from sklearn.cluster import MiniBatchKMeans
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

from locallm.data.cluster_plots import plot_map, plot_shares
from locallm.logs import get_logger
from locallm.tables import atomic_path, read_table, save_figure, write_table, write_tsv

log = get_logger(__name__)

# Words of two or more characters with at least one letter: amounts like "1,000,000" would
# otherwise give the term "000", which describes no topic.
WORD_PATTERN = r"(?u)\b(?=\w*[^\W\d_])\w\w+\b"

# Rows transformed at once when assigning: bounds memory on large shards.
BATCH_ROWS = 4096


@dataclass
class ClusterModel:
    """A fitted feature extractor and MiniBatchKMeans, plus the vocabulary c-TF-IDF counts over."""

    features: str
    kmeans: MiniBatchKMeans
    terms: CountVectorizer
    vectorizer: TfidfVectorizer | None = None
    _encoder: Any = field(default=None, repr=False)

    def transform(self, texts: list[str]) -> np.ndarray | sparse.spmatrix:
        """Feature vectors of `texts` (TF-IDF rows or unit-length sentence embeddings)."""
        if self.vectorizer is not None:
            return self.vectorizer.transform(texts)
        if self._encoder is None:
            self._encoder = load_encoder(self.features)
        return self._encoder.encode(list(texts), normalize_embeddings=True, show_progress_bar=False)

    def __getstate__(self) -> dict:
        # The sentence-transformers model stays at its path; only our own small objects are pickled.
        return {**self.__dict__, "_encoder": None}


def load_encoder(path: str) -> Any:
    """Load a sentence-transformers model from a local folder, with errors that say what to do."""
    if not Path(path).exists():
        raise FileNotFoundError(
            f"config cluster.features is {path!r}: neither `tfidf` nor an existing local folder "
            f"(looked in {Path(path).resolve()})"
        )
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ImportError(
            f"config cluster.features points to a sentence-transformers model ({path}), but the "
            "package is not installed: `pip install sentence-transformers`, or set "
            "cluster.features: tfidf"
        ) from None
    return SentenceTransformer(path, device="cpu")


def sample_rows(
    paths: list[str], n: int, seed: int, columns: list[str] | None = None
) -> pd.DataFrame:
    """Draw up to `n` rows uniformly across Parquet tables with the seed, in file order."""
    counts = [pq.ParquetFile(p).metadata.num_rows for p in paths]
    total = sum(counts)
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False))
    frames, start = [], 0
    for path, count in zip(paths, counts, strict=True):
        local = chosen[(chosen >= start) & (chosen < start + count)] - start
        if len(local):
            frames.append(read_table(path, columns=columns).iloc[local])
        start += count
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)


def fit_clusters(texts: list[str], settings: dict, seed: int) -> ClusterModel:
    """Fit the features named by cluster.features and MiniBatchKMeans(k) on `texts`."""
    k = settings["k"]
    if not texts:
        raise ValueError(
            "no document to cluster: ingest kept none. Every record was rejected; "
            "results/NAME/corpus/ingest_report.tsv counts the reasons and "
            "results/NAME/corpus/rejects/ names each record's (a misspelled corpus column "
            "rejects them all as missing_column)"
        )
    if len(texts) < k:
        raise ValueError(f"config cluster.k is {k} but only {len(texts)} documents to cluster")
    terms = CountVectorizer(
        stop_words="english", max_features=settings["max_features"], token_pattern=WORD_PATTERN
    )
    if settings["features"] == "tfidf":
        vectorizer = TfidfVectorizer(
            stop_words="english",
            max_features=settings["max_features"],
            sublinear_tf=True,
            token_pattern=WORD_PATTERN,
        )
        matrix = vectorizer.fit_transform(texts)
        # c-TF-IDF counts over the same vocabulary the clusters were fitted on.
        terms = CountVectorizer(vocabulary=vectorizer.get_feature_names_out()).fit(texts)
        model = ClusterModel("tfidf", MiniBatchKMeans(k, random_state=seed, n_init=3), terms)
        model.vectorizer = vectorizer
    else:
        terms.fit(texts)
        model = ClusterModel(
            settings["features"], MiniBatchKMeans(k, random_state=seed, n_init=3), terms
        )
        matrix = model.transform(texts)
    model.kmeans.fit(matrix)
    return model


def assign(model: ClusterModel, docs: pd.DataFrame) -> pd.DataFrame:
    """The nearest cluster of each document and its Euclidean distance to that centroid."""
    clusters, distances = [], []
    for start in range(0, len(docs), BATCH_ROWS):
        batch = docs["text"].iloc[start : start + BATCH_ROWS].tolist()
        to_centroids = model.kmeans.transform(model.transform(batch))
        clusters.append(to_centroids.argmin(axis=1))
        distances.append(to_centroids.min(axis=1))
    return pd.DataFrame(
        {
            "doc_id": docs["doc_id"].astype(str).to_numpy(),
            "group_id": docs["group_id"].astype(str).to_numpy(),
            "cluster": np.concatenate(clusters).astype(int) if clusters else np.array([], int),
            "distance": np.concatenate(distances) if distances else np.array([], float),
        }
    )


def cluster_term_counts(
    model: ClusterModel, texts: list[str], clusters: np.ndarray, k: int
) -> np.ndarray:
    """A k × vocabulary matrix of term counts summed over the documents of each cluster."""
    counts = model.terms.transform(texts)
    members = sparse.csr_matrix(
        (np.ones(len(clusters)), (clusters, np.arange(len(clusters)))), shape=(k, len(clusters))
    )
    return np.asarray((members @ counts).todense())


def class_tfidf(counts: np.ndarray) -> np.ndarray:
    """c-TF-IDF (BERTopic): tf normalised per class × log(1 + mean words per class / tf overall)."""
    words_per_class = counts.sum(axis=1, keepdims=True)
    tf = np.divide(
        counts, words_per_class, out=np.zeros_like(counts, float), where=words_per_class > 0
    )
    overall = counts.sum(axis=0)
    mean_words = words_per_class.mean()
    idf = np.log1p(np.divide(mean_words, overall, out=np.zeros(len(overall)), where=overall > 0))
    return tf * idf


def top_terms(scores: np.ndarray, vocabulary: np.ndarray, n: int) -> list[list[str]]:
    """The `n` highest-scoring terms per class (ties by vocabulary order; zero scores left out)."""
    result = []
    for row in scores:
        order = np.argsort(-row, kind="stable")[:n]
        result.append([str(vocabulary[i]) for i in order if row[i] > 0])
    return result


def snippet(text: str, chars: int) -> str:
    """The start of `text` on one line, cut at a word boundary near `chars` characters."""
    flat = re.sub(r"\s+", " ", text).strip()
    if len(flat) <= chars:
        return flat
    cut = flat[:chars].rsplit(" ", 1)[0]
    return cut + " …"


def share_bins(values: pd.Series, settings: dict) -> pd.Series:
    """The bin of each value of the share_by column: value // share_bin * share_bin when binned."""
    width = settings["share_bin"]
    if width is None:
        return values
    if not pd.api.types.is_numeric_dtype(values):
        raise ValueError(
            f"config cluster.share_bin is {width} but column {settings['share_by']!r} is not "
            f"numeric (dtype {values.dtype}); set cluster.share_bin: null"
        )
    return (values // width * width).astype("Int64")


def cluster_shares(sizes: pd.DataFrame) -> pd.DataFrame:
    """Documents per bin and cluster, and each cluster's share within its bin (a tidy table).

    `sizes` holds bin, cluster and size rows, several per pair when they come from several shards.
    """
    table = sizes.groupby(["bin", "cluster"], dropna=False)["size"].sum().reset_index()
    table["share"] = table["size"] / table.groupby("bin", dropna=False)["size"].transform("sum")
    return table.sort_values(["bin", "cluster"], ignore_index=True)


def bin_sizes(bins: pd.Series, clusters: pd.Series) -> pd.DataFrame:
    """Documents per bin and cluster (bin, cluster, size) of some documents."""
    return (
        pd.DataFrame({"bin": bins.to_numpy(), "cluster": clusters.to_numpy()})
        .groupby(["bin", "cluster"], dropna=False)
        .size()
        .rename("size")
        .reset_index()
    )


def term_counts_table(counts: np.ndarray) -> pd.DataFrame:
    """The non-zero cells of a k × vocabulary count matrix as (cluster, term, count) rows."""
    cluster, term = np.nonzero(counts)
    return pd.DataFrame({"cluster": cluster, "term": term, "count": counts[cluster, term]})


def closest_examples(docs: pd.DataFrame, n: int) -> pd.DataFrame:
    """The `n` documents closest to each cluster's centroid (ties by doc_id)."""
    return (
        docs.sort_values(["cluster", "distance", "doc_id"])
        .groupby("cluster")
        .head(n)[["cluster", "distance", "doc_id", "text"]]
    )


def require_share_by(path: str | os.PathLike, share_by: str | None) -> None:
    """Fail naming the file and its columns when cluster.share_by is not one of them."""
    available = pq.read_schema(path).names
    if share_by and share_by not in available:
        raise KeyError(
            f"config cluster.share_by is {share_by!r}, not a column of {path} "
            f"(columns: {', '.join(available)})"
        )


def _label(cluster: int, terms: list[str]) -> str:
    return f"{cluster}: {', '.join(terms[:3])}"


def fit_model(corpus: list[str], settings: dict, seed: int, model: str) -> None:
    """Rule cluster_fit: fit features and clusters on a seeded sample of all corpus shards."""
    sample = sample_rows(corpus, settings["sample_size"], seed, columns=["doc_id", "text"])
    log.info("fitting %d clusters on %d sampled documents", settings["k"], len(sample))
    fitted = fit_clusters(sample["text"].tolist(), settings, seed)
    # scikit-learn estimators have no portable file format; pickle is acceptable here because
    # model.pkl is our own intermediate, written and read only by this workflow's rules with the
    # same pinned versions. Never load a model.pkl from elsewhere: unpickling runs code.
    with atomic_path(model) as tmp:
        joblib.dump(fitted, tmp)


def load_model(path: str | os.PathLike) -> ClusterModel:
    """Read the model that fit_model wrote."""
    return joblib.load(path)


def assign_shard(
    model: str,
    corpus: str,
    settings: dict,
    assignments: str,
    terms: str,
    bins: str,
    examples: str,
) -> None:
    """Rule cluster_assign: each document's cluster, and the shard's counts for the summary."""
    share_by = settings["share_by"]
    require_share_by(corpus, share_by)
    columns = ["doc_id", "group_id", "text"] + ([share_by] if share_by else [])
    docs = read_table(corpus, columns=columns)
    fitted = load_model(model)
    result = assign(fitted, docs)
    log.info(
        "assigned %d documents; sizes %s", len(result), result.cluster.value_counts().to_dict()
    )
    k = settings["k"]
    counts = np.zeros((k, len(fitted.terms.get_feature_names_out())))
    for start in range(0, len(docs), BATCH_ROWS):
        batch = slice(start, start + BATCH_ROWS)
        counts += cluster_term_counts(
            fitted, docs["text"].iloc[batch].tolist(), result["cluster"].to_numpy()[batch], k
        )
    docs = docs.assign(cluster=result["cluster"].to_numpy(), distance=result["distance"].to_numpy())
    share = share_bins(docs[share_by], settings) if share_by else pd.Series("all", docs.index)
    write_table(result, assignments)
    write_table(term_counts_table(counts), terms)
    write_table(bin_sizes(share, docs["cluster"]), bins)
    write_table(closest_examples(docs, settings["examples"]), examples)


def summarise(
    model: str,
    terms: list[str],
    bins: list[str],
    examples: list[str],
    corpus: list[str],
    settings: dict,
    seed: int,
    summary: str,
    map_png: str,
    shares_tsv: str,
    shares_png: str,
) -> None:
    """Rule cluster_summary: topic table, 2-D map and cluster shares, from the shards' counts."""
    fitted = load_model(model)
    k, share_by = settings["k"], settings["share_by"]
    vocabulary = fitted.terms.get_feature_names_out()
    counts = np.zeros((k, len(vocabulary)))
    for path in terms:
        part = read_table(path)
        np.add.at(counts, (part["cluster"].to_numpy(), part["term"].to_numpy()), part["count"])
    binned = pd.concat([read_table(path) for path in bins], ignore_index=True)
    sizes = binned.groupby("cluster")["size"].sum().reindex(range(k), fill_value=0)
    top = top_terms(class_tfidf(counts), vocabulary, settings["top_terms"])
    labels = [_label(c, top[c]) for c in range(k)]
    best = closest_examples(
        pd.concat([read_table(path) for path in examples], ignore_index=True), settings["examples"]
    )
    rows = []
    for cluster in range(k):
        row = {
            "cluster": cluster,
            "size": int(sizes[cluster]),
            "share": sizes[cluster] / max(sizes.sum(), 1),
            "top_terms": ", ".join(top[cluster]),
        }
        chosen = best[best.cluster == cluster].reset_index(drop=True)
        for i in range(settings["examples"]):
            has = i < len(chosen)
            row[f"example_{i + 1}_doc_id"] = chosen.doc_id[i] if has else ""
            row[f"example_{i + 1}_text"] = (
                snippet(chosen.text[i], settings["snippet_chars"]) if has else ""
            )
        rows.append(row)
    write_tsv(pd.DataFrame(rows), summary)
    log.info(
        "clusters:\n%s", "\n".join(f"  {label} ({sizes[i]})" for i, label in enumerate(labels))
    )

    shares = cluster_shares(binned)
    shares.insert(0, "share_by", share_by if share_by else "(none: cluster.share_by is null)")
    write_tsv(shares, shares_tsv)
    axis_label = share_by or "whole corpus (cluster.share_by is null)"
    if share_by and settings["share_bin"]:
        axis_label += f" (bins of {settings['share_bin']})"
    save_figure(plot_shares(shares, labels, axis_label), shares_png)

    sample = sample_rows(corpus, settings["map_points"], seed, columns=["text"])
    save_figure(plot_map(fitted, sample["text"].tolist(), labels, seed), map_png)
