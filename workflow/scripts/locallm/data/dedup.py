"""Exact and near duplicates in bounded memory: bucket jobs over band keys, then one small merge.

The minhash stage (locallm.data.minhash) writes each shard's signatures and, apart, its exact hashes
and LSH band keys. A `dedup_bucket` job holds one slice of the band keys of every shard (a range of
bands, cut further by key when there are more buckets than bands) and the exact hashes of its share
of texts; it writes exact links and LSH candidate pairs as global row numbers (shards in order). The
`dedup` job then reads the signatures of only the documents in a pair, confirms candidates by their
estimated Jaccard, joins exact and near links into connected components and keeps the smallest
doc_id of each. No job reads text or holds every signature, and the result equals banding all
signatures in one process.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from locallm.data.minhash import band_column, band_table, signature_matrix
from locallm.logs import get_logger
from locallm.tables import read_tables, write_table

log = get_logger(__name__)

DUPLICATE_COLUMNS = ["doc_id", "duplicate_of", "estimated_jaccard", "kind"]
# A link between two global rows: `exact` (same normalised text) or `candidate` (a shared band,
# to be confirmed by the estimated Jaccard).
LINK_COLUMNS = ["left", "right", "kind"]


def key_parts(bands: int, buckets: int) -> int:
    """Parts each band's keys are cut into, so that there are at least as many slices as buckets."""
    return max(1, math.ceil(buckets / bands))


def bands_of_bucket(bucket: int, buckets: int, bands: int) -> list[int]:
    """The bands that hold a slice of bucket `bucket` (the only band columns its job reads)."""
    parts = key_parts(bands, buckets)
    return sorted({slot // parts for slot in range(bands * parts) if slot % buckets == bucket})


def in_bucket(band: int, keys: np.ndarray, bucket: int, buckets: int, parts: int) -> np.ndarray:
    """Which of one band's keys fall in the bucket: slices (band, key mod parts) dealt out."""
    slot = np.uint64(band * parts) + keys % np.uint64(parts)
    return slot % np.uint64(buckets) == np.uint64(bucket)


def bucket_slice(
    index: np.ndarray,
    exact: np.ndarray,
    keys: Mapping[int, np.ndarray],
    bucket: int,
    buckets: int,
    bands: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One bucket's share of some rows: (exact: index, hi, lo) and (near: band, key, index, hi, lo).

    `index` holds the rows' global numbers, `exact` their n x 2 exact hashes and `keys` maps a band
    to its keys (only the bands of this bucket need be there). All copies of a text share an exact
    hash, and all texts sharing a band key share its slice, so no link crosses buckets.
    """
    mine = exact[:, 0] % np.uint64(buckets) == np.uint64(bucket)
    exact_rows = pd.DataFrame({"index": index[mine], "hi": exact[mine, 0], "lo": exact[mine, 1]})
    near = []
    for band, band_keys in keys.items():
        chosen = in_bucket(band, band_keys, bucket, buckets, key_parts(bands, buckets))
        near.append(
            pd.DataFrame(
                {
                    "band": np.full(int(chosen.sum()), band, dtype=np.int32),
                    "key": band_keys[chosen],
                    "index": index[chosen],
                    "hi": exact[chosen, 0],
                    "lo": exact[chosen, 1],
                }
            )
        )
    return exact_rows, pd.concat(near, ignore_index=True)


def exact_links(rows: pd.DataFrame) -> np.ndarray:
    """(first copy, other copy) for each row whose exact hash an earlier row shares."""
    first = rows.groupby(["hi", "lo"])["index"].transform("min").to_numpy()
    index = rows["index"].to_numpy()
    other = first != index
    return np.stack([first[other], index[other]], axis=1).astype(np.int64)


def candidate_pairs(near: pd.DataFrame, collapse_exact: bool) -> np.ndarray:
    """Global row pairs (i < j) that share the key of at least one band."""
    shared = near[near.duplicated(["band", "key"], keep=False)]
    if collapse_exact:
        # Exact copies share every band key, and exact links already join them: pair only the
        # first copy of each text, so a text repeated k times does not make k^2 candidate pairs.
        shared = shared.sort_values("index", kind="stable").drop_duplicates(
            ["band", "key", "hi", "lo"]
        )
        shared = shared[shared.duplicated(["band", "key"], keep=False)]
    if shared.empty:
        return np.zeros((0, 2), dtype=np.int64)
    slim = shared[["band", "key", "index"]]
    both = slim.merge(slim, on=["band", "key"])
    both = both[both["index_x"] < both["index_y"]]
    # A 64-bit key collision could pair different band slices; LSH only proposes candidates, and
    # the Jaccard check decides, so such a pair costs one comparison.
    return np.unique(both[["index_x", "index_y"]].to_numpy(dtype=np.int64), axis=0)


def bucket_links(
    exact_rows: pd.DataFrame, near: pd.DataFrame, settings: Mapping[str, Any]
) -> pd.DataFrame:
    """The exact links and LSH candidate pairs of one bucket (columns LINK_COLUMNS)."""
    frames = [
        pd.DataFrame({"left": [], "right": [], "kind": []}).astype(
            {"left": "int64", "right": "int64"}
        )
    ]
    if settings["exact"]:
        links = exact_links(exact_rows)
        frames.append(pd.DataFrame({"left": links[:, 0], "right": links[:, 1], "kind": "exact"}))
    if settings["near"]:
        pairs = candidate_pairs(near, collapse_exact=settings["exact"])
        frames.append(
            pd.DataFrame({"left": pairs[:, 0], "right": pairs[:, 1], "kind": "candidate"})
        )
    links = pd.concat(frames, ignore_index=True)
    return links.astype({"left": "int64", "right": "int64", "kind": "str"})


def estimated_jaccard(
    signatures: np.ndarray, pairs: np.ndarray, block: int = 1 << 16
) -> np.ndarray:
    """Share of equal signature slots for each pair: the MinHash estimate of their Jaccard.

    Pairs are compared a block at a time: millions of candidate pairs would otherwise gather two
    copies of their signatures at once (pairs x slots x 4 bytes each).
    """
    shares = [np.zeros(0)]
    for lo in range(0, len(pairs), block):
        part = pairs[lo : lo + block]
        shares.append((signatures[part[:, 0]] == signatures[part[:, 1]]).mean(axis=1))
    return np.concatenate(shares)


def resolve_duplicates(
    links: pd.DataFrame,
    rows: np.ndarray,
    doc_ids: np.ndarray,
    exact_hashes: np.ndarray,
    signatures: np.ndarray,
    settings: Mapping[str, Any],
) -> pd.DataFrame:
    """One row per removed copy: doc_id, duplicate_of (the kept doc_id), estimated_jaccard, kind.

    `rows` (sorted global row numbers) are the documents in a link, with their doc_ids, exact hashes
    and signatures. Candidates are confirmed at an estimated Jaccard >= threshold; exact and near
    links join into connected components (transitively), and in each the smallest doc_id is kept.
    """
    local = {
        kind: np.searchsorted(rows, part[["left", "right"]].to_numpy(dtype=np.int64)).reshape(-1, 2)
        for kind, part in (
            ("exact", links[links["kind"] == "exact"]),
            ("candidate", links[links["kind"] == "candidate"]),
        )
    }
    candidates = np.unique(local["candidate"], axis=0)
    confirmed = candidates[estimated_jaccard(signatures, candidates) >= settings["threshold"]]
    if settings["near"]:
        log.info(
            "%d LSH candidate pairs, %d confirmed at Jaccard >= %s",
            len(candidates),
            len(confirmed),
            settings["threshold"],
        )
    edges = np.concatenate([local["exact"], confirmed])
    n = len(rows)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    # The kept copy: the smallest doc_id of each component (deterministic, independent of shards).
    frame = pd.DataFrame({"index": np.arange(n), "doc_id": doc_ids, "component": component})
    kept_index = frame.sort_values(["component", "doc_id"]).groupby("component")["index"].first()
    keep = kept_index.reindex(component).to_numpy()
    removed = np.flatnonzero(keep != np.arange(n))
    kept_of = keep[removed]
    exact = (exact_hashes[removed] == exact_hashes[kept_of]) & bool(settings["exact"])
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


def find_duplicates(table: pd.DataFrame, settings: Mapping[str, Any]) -> pd.DataFrame:
    """All stages in one process on a signature table (doc_id, exact_hash, signature)."""
    if len(table) == 0:
        return pd.DataFrame(columns=DUPLICATE_COLUMNS)
    bands = settings["bands"]
    signatures = signature_matrix(table, bands * settings["rows"])
    index = np.arange(len(table))
    exact, keys = band_arrays(band_table(table, settings), range(bands))
    links = bucket_links(*bucket_slice(index, exact, keys, 0, 1, bands), settings)
    doc_ids = table["doc_id"].astype(str).to_numpy()
    hashes = table["exact_hash"].to_numpy()
    return resolve_duplicates(links, index, doc_ids, hashes, signatures, settings)


def band_arrays(table: pa.Table, bands: Sequence[int]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The n x 2 exact hashes and the keys of the given bands, from a band table."""
    exact = np.stack([table["exact_hi"].to_numpy(), table["exact_lo"].to_numpy()], axis=1).astype(
        np.uint64
    )
    return exact, {band: table[band_column(band)].to_numpy().astype(np.uint64) for band in bands}


def row_counts(paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """Rows of each Parquet file, from its footer (no data read)."""
    return np.array([pq.ParquetFile(path).metadata.num_rows for path in paths], dtype=np.int64)


def read_band_columns(path: str | os.PathLike, bands: Sequence[int], total: int) -> pa.Table:
    """The exact hashes and the given bands' keys of one shard's band table, checked for width."""
    names = pq.read_schema(path).names
    if band_column(total - 1) not in names or band_column(total) in names:
        raise ValueError(
            f"{path} holds band keys for {sum(n.startswith('band_') for n in names)} bands but "
            f"dedup.bands = {total}; re-run the minhash rule"
        )
    return pq.read_table(path, columns=["exact_hi", "exact_lo", *map(band_column, bands)])


def dedup_bucket(
    bands: Sequence[str | os.PathLike],
    bucket: int,
    buckets: int,
    settings: Mapping[str, Any],
    output: str | os.PathLike,
) -> None:
    """Rule `dedup_bucket`: one bucket's exact links and LSH candidate pairs over all shards."""
    total = settings["bands"]
    wanted = bands_of_bucket(bucket, buckets, total)
    starts = np.concatenate([[0], np.cumsum(row_counts(bands))])
    exact_parts, near_parts = [], []
    for path, start in zip(bands, starts, strict=False):
        table = read_band_columns(path, wanted, total)
        index = np.arange(start, start + table.num_rows, dtype=np.int64)
        exact, keys = band_arrays(table, wanted)
        exact_rows, near = bucket_slice(index, exact, keys, bucket, buckets, total)
        exact_parts.append(exact_rows)
        near_parts.append(near)
    links = bucket_links(
        pd.concat(exact_parts, ignore_index=True),
        pd.concat(near_parts, ignore_index=True),
        settings,
    )
    log.info(
        "bucket %d of %d (bands %s): %d rows, %d band entries, links %s",
        bucket,
        buckets,
        wanted,
        int(starts[-1]),
        sum(len(part) for part in near_parts),
        links["kind"].value_counts().to_dict(),
    )
    write_table(links, output)


def linked_rows(
    signatures: Sequence[str | os.PathLike], rows: np.ndarray, num_perm: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """doc_ids, exact hashes and signatures of the given global rows, one shard read at a time.

    Signatures go from Arrow to one uint32 matrix without a Python object per row: the linked
    rows can be a large share of a corpus with much reused text.
    """
    starts = np.concatenate([[0], np.cumsum(row_counts(signatures))])
    ids, hashes, matrices = [], [], [np.zeros((0, num_perm), dtype=np.uint32)]
    for path, start, end in zip(signatures, starts[:-1], starts[1:], strict=True):
        wanted = rows[(rows >= start) & (rows < end)] - start
        if len(wanted) == 0:
            continue
        table = pq.read_table(path, columns=["doc_id", "exact_hash", "signature"]).take(wanted)
        column = table["signature"].combine_chunks()
        widths = pc.unique(pc.list_value_length(column)).to_pylist()
        if widths != [num_perm]:
            raise ValueError(
                f"signatures have {widths[0]} slots but dedup.bands x dedup.rows = {num_perm}; "
                "re-run the minhash rule"
            )
        matrices.append(column.flatten().to_numpy().reshape(-1, num_perm).astype(np.uint32))
        ids.append(table["doc_id"].to_pandas().astype(str).to_numpy())
        hashes.append(table["exact_hash"].to_pandas().to_numpy())
    empty = [np.zeros(0, dtype=object)]
    return np.concatenate(ids or empty), np.concatenate(hashes or empty), np.concatenate(matrices)


def dedup(
    pairs: Sequence[str | os.PathLike],
    signatures: Sequence[str | os.PathLike],
    settings: Mapping[str, Any],
    output: str | os.PathLike,
) -> None:
    """Rule `dedup`: confirm every bucket's links and write the duplicates table."""
    total = int(row_counts(signatures).sum())
    if total == 0:
        write_table(pd.DataFrame(columns=DUPLICATE_COLUMNS), output)
        return
    links = read_tables(list(pairs), columns=LINK_COLUMNS)
    rows = np.unique(links[["left", "right"]].to_numpy(dtype=np.int64))
    doc_ids, hashes, matrix = linked_rows(signatures, rows, settings["bands"] * settings["rows"])
    duplicates = resolve_duplicates(links, rows, doc_ids, hashes, matrix, settings)
    counts = duplicates["kind"].value_counts().to_dict()
    log.info("%d documents, %d removed copies %s", total, len(duplicates), counts)
    write_table(duplicates, output)
