"""Exact and near-duplicate detection: MinHash signatures per shard, LSH banding over all."""

from __future__ import annotations

import hashlib
import os
import re
import string
import unicodedata
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from locallm.logs import get_logger
from locallm.tables import read_table, read_tables, write_table

log = get_logger(__name__)

# The num_perm hash functions are multiply-add-shift hashes h(x) = (a*x + b mod 2^64) >> 32 of
# 32-bit shingle hashes, strongly universal (Dietzfelbinger 1996): one multiply, add and shift per
# value and no division, so hashing every shingle with every function at once is cheap.
MAX_HASH = np.uint64((1 << 32) - 1)
# Fixed seed for the permutations: signatures must be comparable across runs and shards, and the
# config seed is about sampling, not about which hash family is used.
PERMUTATION_SEED = 1

PUNCTUATION = re.compile(
    f"[{re.escape(string.punctuation)}\u2018\u2019\u201c\u201d\u2013\u2014\u2026]"
)
DIGITS = re.compile(r"\d+")
SPACES = re.compile(r"\s+")

DUPLICATE_COLUMNS = ["doc_id", "duplicate_of", "estimated_jaccard", "kind"]


def normalise(text: str, settings: Mapping[str, Any]) -> str:
    """Normalise text for hashing as the dedup settings ask (case, punctuation, numbers, spaces)."""
    text = unicodedata.normalize("NFC", text)
    if settings["lowercase"]:
        text = text.lower()
    if settings["strip_punctuation"]:
        text = PUNCTUATION.sub(" ", text)
    if settings["mask_numbers"]:
        text = DIGITS.sub("0", text)
    return SPACES.sub(" ", text).strip()


def exact_hash(normalised: str) -> str:
    """A stable digest of normalised text: equal digests are exact duplicates."""
    return hashlib.blake2b(normalised.encode("utf-8"), digest_size=16).hexdigest()


def _hash64(text: str) -> int:
    """A stable 64-bit hash of a string (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def _word_hashes(words: np.ndarray) -> np.ndarray:
    """Stable 64-bit hashes of words (hash each distinct word once; Python's hash() is salted)."""
    if len(words) == 0:
        return np.zeros(0, dtype=np.uint64)
    codes, unique = pd.factorize(words)  # hash-based: linear, unlike sorting strings
    table = np.fromiter((_hash64(w) for w in unique), dtype=np.uint64, count=len(unique))
    return table[codes]


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads the bits of combined word hashes before truncating to 32."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def shingle_hashes(normalised: list[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of the word n-gram shingles of many texts, and each shingle's text index.

    A text with fewer than `ngram` words is one shingle of all its words; an empty text has none.
    """
    tokens = [t.split() for t in normalised]
    lengths = np.array([len(t) for t in tokens], dtype=np.int64)
    words = np.array([w for t in tokens for w in t], dtype=object)
    word_hash = _word_hashes(words)
    doc_of_word = np.repeat(np.arange(len(tokens)), lengths)
    # Order-sensitive combination of n consecutive word hashes (wrapping uint64 arithmetic).
    n_windows = max(len(words) - ngram + 1, 0)
    combined = np.zeros(n_windows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(ngram):
            combined = combined * np.uint64(0x100000001B3) + word_hash[offset : offset + n_windows]
        full = _mix64(combined)
    # Keep windows that start and end inside the same text.
    window_doc = doc_of_word[:n_windows]
    inside = window_doc == doc_of_word[ngram - 1 : ngram - 1 + n_windows]
    hashes, docs = [full[inside]], [window_doc[inside]]
    # Short texts (1..ngram-1 words): one shingle of all their words.
    short = np.flatnonzero((lengths > 0) & (lengths < ngram))
    if len(short):
        hashes.append(np.array([_hash64(normalised[i]) for i in short], dtype=np.uint64))
        docs.append(short)
    hashes_all = np.concatenate(hashes) & MAX_HASH
    docs_all = np.concatenate(docs)
    order = np.argsort(docs_all, kind="stable")
    return hashes_all[order], docs_all[order]


def permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) parameters of the num_perm hash functions; fixed so signatures always compare."""
    rng = np.random.default_rng(PERMUTATION_SEED)
    a = rng.integers(0, np.iinfo(np.uint64).max, size=num_perm, dtype=np.uint64, endpoint=True)
    b = rng.integers(0, np.iinfo(np.uint64).max, size=num_perm, dtype=np.uint64, endpoint=True)
    return a | np.uint64(1), b


def minhash_signatures(
    hashes: np.ndarray, doc_index: np.ndarray, n_docs: int, num_perm: int, block: int = 1 << 10
) -> np.ndarray:
    """MinHash signatures (n_docs x num_perm, uint32) from shingle hashes sorted by doc_index.

    All hash functions are applied at once to a block of shingles (a matrix), and the minimum per
    document is taken with np.minimum.reduceat; a text without shingles keeps the maximum value.
    """
    a, b = permutations(num_perm)
    signatures = np.full((n_docs, num_perm), MAX_HASH, dtype=np.uint64)
    for lo in range(0, len(hashes), block):
        h = hashes[lo : lo + block].astype(np.uint64)
        d = doc_index[lo : lo + block]
        values = np.multiply(h[:, None], a[None, :])  # wraps mod 2^64, as intended
        values += b
        values >>= np.uint64(32)
        # Segment starts of each document inside this block (a document may span two blocks).
        seg = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
        mins = np.minimum.reduceat(values, seg, axis=0)
        docs = d[seg]
        signatures[docs] = np.minimum(signatures[docs], mins)
    return signatures.astype(np.uint32)


def signature_table(docs: pd.DataFrame, settings: Mapping[str, Any]) -> pd.DataFrame:
    """doc_id, group_id, exact_hash and MinHash signature (list of uint32) for each document."""
    normalised = [normalise(t, settings) for t in docs["text"]]
    num_perm = settings["bands"] * settings["rows"]
    hashes, doc_index = shingle_hashes(normalised, settings["ngram"])
    signatures = minhash_signatures(hashes, doc_index, len(docs), num_perm)
    return pd.DataFrame(
        {
            "doc_id": docs["doc_id"].astype(str).to_numpy(),
            "group_id": docs["group_id"].astype(str).to_numpy(),
            "exact_hash": [exact_hash(t) for t in normalised],
            "signature": list(signatures),
        }
    )


def minhash_shard(corpus: str | os.PathLike, settings: Mapping[str, Any], output: str) -> None:
    """Rule `minhash`: write the signatures of one corpus shard."""
    docs = read_table(corpus, columns=["doc_id", "group_id", "text"])
    table = signature_table(docs, settings)
    log.info(
        "%d signatures of %d permutations from %s",
        len(table),
        settings["bands"] * settings["rows"],
        corpus,
    )
    write_table(table, output)


def signature_matrix(table: pd.DataFrame, num_perm: int) -> np.ndarray:
    """Stack the signature column into a matrix; a width other than bands*rows is an error."""
    if len(table) == 0:
        return np.zeros((0, num_perm), dtype=np.uint32)
    matrix = np.stack(table["signature"].to_numpy()).astype(np.uint32)
    if matrix.shape[1] != num_perm:
        raise ValueError(
            f"signatures have {matrix.shape[1]} slots but dedup.bands x dedup.rows = {num_perm}; "
            "re-run the minhash rule"
        )
    return matrix


def band_keys(signatures: np.ndarray, band: int, rows: int) -> np.ndarray:
    """One 64-bit key per document for one band: equal band slices give equal keys."""
    key = np.zeros(len(signatures), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in range(band * rows, (band + 1) * rows):
            key = _mix64(key * np.uint64(0x100000001B3) + signatures[:, column].astype(np.uint64))
    return key


def candidate_pairs(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Index pairs (i < j) that share at least one LSH band (all rows of the band equal)."""
    pairs = [np.zeros((0, 2), dtype=np.int64)]
    for band in range(bands):
        keys = pd.DataFrame(
            {"key": band_keys(signatures, band, rows), "i": np.arange(len(signatures))}
        )
        shared = keys[keys["key"].duplicated(keep=False)]
        if shared.empty:
            continue
        # Every pair inside a bucket; exact copies are collapsed before this, so buckets stay small.
        both = shared.merge(shared, on="key")
        both = both[both["i_x"] < both["i_y"]]
        pairs.append(both[["i_x", "i_y"]].to_numpy(dtype=np.int64))
    # A 64-bit key collision could pair different band slices; LSH only proposes candidates, and
    # the Jaccard check decides, so such a pair costs one comparison.
    return np.unique(np.concatenate(pairs), axis=0)


def estimated_jaccard(signatures: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Share of equal signature slots for each pair: the MinHash estimate of their Jaccard."""
    if len(pairs) == 0:
        return np.zeros(0)
    return (signatures[pairs[:, 0]] == signatures[pairs[:, 1]]).mean(axis=1)


def find_duplicates(table: pd.DataFrame, settings: Mapping[str, Any]) -> pd.DataFrame:
    """One row per removed copy: doc_id, duplicate_of (the kept doc_id), estimated_jaccard, kind.

    Exact duplicates share exact_hash; near duplicates share an LSH band and have an estimated
    Jaccard >= threshold. Both kinds of link are merged into connected components (transitively),
    and in each component the copy with the smallest doc_id is kept.
    """
    n = len(table)
    if n == 0:
        return pd.DataFrame(columns=DUPLICATE_COLUMNS)
    bands, rows = settings["bands"], settings["rows"]
    signatures = signature_matrix(table, bands * rows)
    doc_ids = table["doc_id"].astype(str).to_numpy()
    edges = [np.zeros((0, 2), dtype=np.int64)]
    if settings["exact"]:
        codes = pd.factorize(table["exact_hash"])[0]
        first = pd.Series(np.arange(n)).groupby(codes).transform("min").to_numpy()
        linked = np.flatnonzero(first != np.arange(n))
        edges.append(np.stack([first[linked], linked], axis=1))
    if settings["near"]:
        # Exact copies (already linked) have identical signatures: search near pairs among one copy
        # of each text, so a text repeated k times does not make k^2 candidate pairs.
        distinct = np.arange(n)
        if settings["exact"]:
            distinct = np.flatnonzero(~table["exact_hash"].duplicated().to_numpy())
        pairs = distinct[candidate_pairs(signatures[distinct], bands, rows)]
        jaccard = estimated_jaccard(signatures, pairs)
        confirmed = pairs[jaccard >= settings["threshold"]]
        log.info(
            "%d LSH candidate pairs, %d confirmed at Jaccard >= %s",
            len(pairs),
            len(confirmed),
            settings["threshold"],
        )
        edges.append(confirmed)
    links = np.concatenate(edges)
    graph = coo_matrix((np.ones(len(links)), (links[:, 0], links[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    # The kept copy: the smallest doc_id of each component (deterministic, independent of shards).
    frame = pd.DataFrame({"index": np.arange(n), "doc_id": doc_ids, "component": component})
    kept_index = frame.sort_values(["component", "doc_id"]).groupby("component")["index"].first()
    keep = kept_index.reindex(component).to_numpy()
    removed = np.flatnonzero(keep != np.arange(n))
    kept_of = keep[removed]
    same_text = table["exact_hash"].to_numpy()[removed] == table["exact_hash"].to_numpy()[kept_of]
    exact = same_text & bool(settings["exact"])
    jaccard = np.where(
        exact, 1.0, estimated_jaccard(signatures, np.stack([removed, kept_of], axis=1))
    )
    result = pd.DataFrame(
        {
            "doc_id": doc_ids[removed],
            "duplicate_of": doc_ids[kept_of],
            "estimated_jaccard": jaccard.astype(float),
            "kind": np.where(exact, "exact", "near"),
        }
    )
    return result.sort_values("doc_id", ignore_index=True)


def dedup(signatures: list[str], settings: Mapping[str, Any], output: str) -> None:
    """Rule `dedup`: read all signature shards and write the duplicates table."""
    table = read_tables(signatures)
    duplicates = find_duplicates(table, settings)
    counts = duplicates["kind"].value_counts().to_dict()
    log.info("%d documents, %d removed copies %s", len(table), len(duplicates), counts)
    write_table(duplicates, output)
