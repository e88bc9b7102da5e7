"""MinHash signatures, exact hashes and LSH band keys of one corpus shard (dedup's first stage).

The later stages (locallm.data.dedup) read only the band keys and exact hashes written here, never
the text; the signatures are read back only for the few documents that share a band.
"""

from __future__ import annotations

import hashlib
import os
import re
import string
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from locallm.logs import get_logger
from locallm.tables import atomic_path, write_table

log = get_logger(__name__)

# The num_perm hash functions are multiply-add-shift hashes h(x) = (a*x + b mod 2^64) >> 32 of
# 32-bit shingle hashes, strongly universal (Dietzfelbinger 1996): one multiply, add and shift per
# value and no division, so hashing every shingle with every function at once is cheap.
MAX_HASH = np.uint64((1 << 32) - 1)
# Fixed seed for the permutations: signatures must be comparable across runs and shards, and the
# config seed is about sampling, not about which hash family is used.
PERMUTATION_SEED = 1

# Documents hashed at once: their shingles (a few bytes per word per hash function block) bound
# the job's memory, whatever the shard's size.
BATCH_DOCS = 2000

PUNCTUATION = re.compile(
    f"[{re.escape(string.punctuation)}\u2018\u2019\u201c\u201d\u2013\u2014\u2026]"
)
DIGITS = re.compile(r"\d+")
SPACES = re.compile(r"\s+")


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


def exact_keys(hashes: pd.Series) -> np.ndarray:
    """The 128-bit exact hashes (hex) as n x 2 uint64: compact, and equal exactly when they are."""
    if len(hashes) == 0:
        return np.zeros((0, 2), dtype=np.uint64)
    raw = bytes.fromhex("".join(hashes))
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(-1, 2)


def band_column(band: int) -> str:
    """The column of a band table that holds one band's keys."""
    return f"band_{band:03d}"


def band_table(table: pd.DataFrame, settings: Mapping[str, Any]) -> pa.Table:
    """exact_hi, exact_lo and one uint64 key column per LSH band for each row of a signature table.

    This is all that the bucket stage of dedup reads, each job only its bands' columns: 8 bytes per
    band and document, against 4 per signature slot and the text.
    """
    bands, rows = settings["bands"], settings["rows"]
    signatures = signature_matrix(table, bands * rows)
    exact = exact_keys(table["exact_hash"])
    columns = {"exact_hi": exact[:, 0], "exact_lo": exact[:, 1]}
    for band in range(bands):
        columns[band_column(band)] = band_keys(signatures, band, rows)
    return pa.table({name: pa.array(values, pa.uint64()) for name, values in columns.items()})


def minhash_shard(
    corpus: str | os.PathLike, settings: Mapping[str, Any], output: str, bands: str
) -> None:
    """Rule `minhash`: write the signatures and the band keys of one corpus shard.

    Documents are hashed in batches of BATCH_DOCS read from the file, so memory follows the batch
    (the shingles of a few thousand texts), not the shard; signatures do not depend on the batch.
    """
    if not Path(corpus).exists():
        raise FileNotFoundError(f"table not found: {corpus}")
    batches = pq.ParquetFile(corpus).iter_batches(
        batch_size=BATCH_DOCS, columns=["doc_id", "group_id", "text"]
    )
    parts = [signature_table(batch.to_pandas(), settings) for batch in batches]
    columns = ["doc_id", "group_id", "text"]
    table = (
        pd.concat(parts, ignore_index=True)
        if parts
        else signature_table(pd.DataFrame(columns=columns), settings)
    )
    log.info(
        "%d signatures of %d permutations from %s",
        len(table),
        settings["bands"] * settings["rows"],
        corpus,
    )
    write_table(table, output)
    with atomic_path(bands) as tmp:
        pq.write_table(band_table(table, settings), tmp)


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
