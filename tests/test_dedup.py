"""Dedup: normalisation, MinHash signatures, LSH candidates and the kept-copy rule."""

import numpy as np
import pandas as pd
import pytest
from datasketch import MinHash
from locallm.config import with_defaults
from locallm.data.dedup import bands_of_bucket, find_duplicates
from locallm.data.minhash import (
    minhash_signatures,
    normalise,
    shingle_hashes,
    signature_table,
)

SETTINGS = with_defaults({})["dedup"]


def words(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    tokens = text.split()
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def docs(texts: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"doc_id": list(texts), "group_id": list(texts), "text": list(texts.values())}
    )


def duplicates(texts: dict[str, str], **settings) -> pd.DataFrame:
    merged = {**SETTINGS, **settings}
    return find_duplicates(signature_table(docs(texts), merged), merged)


# 404 distinct words make 400 five-word shingles; replacing the last k words leaves 400 - k shared
# shingles out of 400 + k: k = 21 gives Jaccard 379/421 = 0.90, k = 215 gives 185/615 = 0.30.
BASE = words("w", 404)
NEAR_90 = " ".join(BASE[:-21] + words("x", 21))
NEAR_30 = " ".join(BASE[:-215] + words("y", 215))


def test_constructed_pairs_have_the_intended_jaccard():
    assert jaccard(" ".join(BASE), NEAR_90) == pytest.approx(0.90, abs=0.005)
    assert jaccard(" ".join(BASE), NEAR_30) == pytest.approx(0.30, abs=0.005)


def test_near_duplicate_at_jaccard_09_is_caught():
    found = duplicates({"a": " ".join(BASE), "b": NEAR_90})
    assert found[["doc_id", "duplicate_of", "kind"]].values.tolist() == [["b", "a", "near"]]
    assert found["estimated_jaccard"].iloc[0] == pytest.approx(0.90, abs=0.08)


def test_pair_at_jaccard_03_is_not_caught():
    assert duplicates({"a": " ".join(BASE), "c": NEAR_30}).empty


def test_exact_duplicates_after_normalisation_are_caught():
    text = " ".join(BASE)
    found = duplicates({"a": text, "b": text.upper().replace(" w1 ", " w1, ")})
    assert found.values.tolist() == [["b", "a", 1.0, "exact"]]


def test_case_difference_is_not_exact_when_lowercase_is_off():
    text = " ".join(BASE)
    found = duplicates({"a": text, "b": text.upper()}, lowercase=False, near=False)
    assert found.empty


def test_kept_copy_is_the_smallest_doc_id_of_the_cluster():
    text = " ".join(BASE)
    found = duplicates({"c": text, "a2": NEAR_90, "b": text, "a1": text})
    assert dict(zip(found["doc_id"], found["duplicate_of"], strict=True)) == {
        "a2": "a1",
        "b": "a1",
        "c": "a1",
    }


def test_mask_numbers_merges_texts_that_differ_only_in_numbers_only_when_on():
    texts = {"a": "The budget for 1990", "b": "The budget for 1991"}
    assert duplicates(texts, mask_numbers=False).empty
    assert duplicates(texts, mask_numbers=True).values.tolist() == [["b", "a", 1.0, "exact"]]


def test_normalise_applies_each_option():
    settings = {"lowercase": True, "strip_punctuation": True, "mask_numbers": True}
    assert normalise("Budget:  $1,990 —  Approved!", settings) == "budget 0 0 approved"


def test_signature_estimate_tracks_datasketch_on_the_same_shingles():
    # Same true Jaccard, different hash families: both estimates must be near 0.9.
    a, b = " ".join(BASE), NEAR_90
    hashes, doc_index = shingle_hashes([a, b], 5)
    ours = minhash_signatures(hashes, doc_index, 2, 128)
    theirs = []
    for text in (a, b):
        m = MinHash(num_perm=128, seed=1)
        for shingle in shingles(text):
            m.update(" ".join(shingle).encode())
        theirs.append(m)
    assert (ours[0] == ours[1]).mean() == pytest.approx(0.9, abs=0.07)
    assert theirs[0].jaccard(theirs[1]) == pytest.approx(0.9, abs=0.07)


def test_text_shorter_than_ngram_gets_a_signature_and_empty_text_none():
    hashes, doc_index = shingle_hashes(["two words", "", "two words"], 5)
    assert doc_index.tolist() == [0, 2]
    signatures = minhash_signatures(hashes, doc_index, 3, 4)
    assert np.array_equal(signatures[0], signatures[2])
    assert (signatures[1] == np.iinfo(np.uint32).max).all()


def test_signature_width_other_than_bands_times_rows_is_an_error():
    table = signature_table(docs({"a": "one two three"}), SETTINGS)
    with pytest.raises(ValueError, match="bands x dedup.rows"):
        find_duplicates(table, {**SETTINGS, "bands": 10})


def run_stages(tmp_path, shards: list[pd.DataFrame], buckets: int, settings=SETTINGS):
    """minhash per shard, dedup_bucket per bucket, dedup: the three stages through Parquet files."""
    from locallm.data.dedup import dedup, dedup_bucket
    from locallm.data.minhash import minhash_shard
    from locallm.tables import read_table, write_table

    signatures, bands = [], []
    for number, shard in enumerate(shards):
        corpus = tmp_path / f"corpus/{number:03d}.parquet"
        write_table(shard, corpus)
        signatures.append(tmp_path / f"signatures/{number:03d}.parquet")
        bands.append(tmp_path / f"bands/{number:03d}.parquet")
        minhash_shard(corpus, settings, signatures[-1], bands[-1])
    pairs = [tmp_path / f"pairs/{bucket:03d}.parquet" for bucket in range(buckets)]
    for bucket, out in enumerate(pairs):
        dedup_bucket(bands, bucket, buckets, settings, out)
    dedup(pairs, signatures, settings, tmp_path / "duplicates.parquet")
    return read_table(tmp_path / "duplicates.parquet")


def test_signature_shards_round_trip_through_parquet_into_duplicates(tmp_path):
    from locallm.tables import read_table

    text = " ".join(BASE)
    found = run_stages(
        tmp_path,
        [docs({"s0-a": text, "s0-b": NEAR_30}), docs({"s1-a": NEAR_90, "s1-b": text})],
        buckets=2,
    )
    assert read_table(tmp_path / "signatures/000.parquet").columns.tolist() == [
        "doc_id",
        "group_id",
        "exact_hash",
        "signature",
    ]
    bands = read_table(tmp_path / "bands/000.parquet").columns.tolist()
    assert bands == ["exact_hi", "exact_lo"] + [f"band_{b:03d}" for b in range(20)]
    assert found[["doc_id", "duplicate_of", "kind"]].values.tolist() == [
        ["s1-a", "s0-a", "near"],
        ["s1-b", "s0-a", "exact"],
    ]


def test_each_band_slice_goes_to_exactly_one_bucket():
    for bands, buckets in [(20, 1), (20, 3), (20, 20), (20, 7), (4, 9), (3, 30)]:
        held = [bands_of_bucket(bucket, buckets, bands) for bucket in range(buckets)]
        assert sorted({band for part in held for band in part}) == list(range(bands))
        # With more buckets than bands each job reads one or two bands, never all of them.
        assert max(map(len, held)) <= max(1, -(-bands // buckets)) + (buckets > bands)


def test_band_table_of_other_width_is_an_error_naming_the_file(tmp_path):
    from locallm.data.dedup import dedup_bucket
    from locallm.data.minhash import minhash_shard
    from locallm.tables import write_table

    write_table(docs({"a": "one two three"}), tmp_path / "corpus.parquet")
    minhash_shard(
        tmp_path / "corpus.parquet", SETTINGS, tmp_path / "s.parquet", tmp_path / "b.parquet"
    )
    with pytest.raises(ValueError, match=r"b\.parquet holds band keys for 20 bands"):
        dedup_bucket(
            [tmp_path / "b.parquet"], 0, 1, {**SETTINGS, "bands": 10}, tmp_path / "p.parquet"
        )


def planted_corpus(n_docs: int, seed: int) -> list[pd.DataFrame]:
    """Three shards of random-word documents with exact copies, near copies and copies of copies."""
    rng = np.random.default_rng(seed)
    vocabulary = words("v", 3000)
    texts = {}
    for i in range(n_docs):
        # Mostly long documents, and some shorter than a shingle or a few shingles long.
        length = rng.integers(1, 8) if i % 10 == 0 else rng.integers(40, 200)
        texts[f"d{i:04d}"] = " ".join(rng.choice(vocabulary, size=length))
    originals = list(texts.values())
    for i in range(n_docs // 4):
        source = originals[rng.integers(len(originals))]
        tokens = source.split()
        kind = rng.integers(4)
        if kind == 0:  # exact copy, case and punctuation changed
            texts[f"e{i:04d}"] = source.upper() + "!"
        elif kind == 1:  # near copy: a few words replaced
            for position in rng.integers(0, len(tokens), size=max(1, len(tokens) // 80)):
                tokens[position] = "changed"
            texts[f"n{i:04d}"] = " ".join(tokens)
        elif kind == 2:  # a borderline copy: a third replaced
            for position in rng.integers(0, len(tokens), size=len(tokens) // 3):
                tokens[position] = "other"
            texts[f"b{i:04d}"] = " ".join(tokens)
        else:  # a copy of a copy made above, or of an original
            texts[f"c{i:04d}"] = list(texts.values())[rng.integers(len(texts))]
    ids = list(texts)
    rng.shuffle(ids)
    return [docs({i: texts[i] for i in part}) for part in np.array_split(np.array(ids), 3)]


@pytest.mark.parametrize(
    ("buckets", "settings"),
    [
        (1, {}),
        (4, {}),
        (7, {"bands": 5, "rows": 4, "threshold": 0.5}),
        (3, {"exact": False}),
        (2, {"near": False}),
    ],
)
def test_staged_dedup_equals_banding_all_signatures_in_one_process(tmp_path, buckets, settings):
    merged = {**SETTINGS, **settings}
    shards = planted_corpus(600, seed=buckets)
    staged = run_stages(tmp_path, shards, buckets, merged)
    reference = reference_duplicates(signature_table(pd.concat(shards), merged), merged)
    # The planted corpus must exercise each kind of link that the settings turn on.
    kinds = reference["kind"].value_counts()
    for kind, on in (("exact", merged["exact"]), ("near", merged["near"])):
        assert (kinds.get(kind, 0) > 20) if on else kind not in kinds
    pd.testing.assert_frame_equal(staged, reference)
    in_memory = find_duplicates(signature_table(pd.concat(shards), merged), merged)
    pd.testing.assert_frame_equal(in_memory, reference)


# The one-process algorithm that the staged one replaced (locallm before issue 23), kept verbatim as
# the reference the stages must reproduce.
def reference_band_keys(signatures: np.ndarray, band: int, rows: int) -> np.ndarray:
    from locallm.data.minhash import band_keys

    return band_keys(signatures, band, rows)


def reference_candidate_pairs(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    pairs = [np.zeros((0, 2), dtype=np.int64)]
    for band in range(bands):
        keys = pd.DataFrame(
            {"key": reference_band_keys(signatures, band, rows), "i": np.arange(len(signatures))}
        )
        shared = keys[keys["key"].duplicated(keep=False)]
        if shared.empty:
            continue
        both = shared.merge(shared, on="key")
        both = both[both["i_x"] < both["i_y"]]
        pairs.append(both[["i_x", "i_y"]].to_numpy(dtype=np.int64))
    return np.unique(np.concatenate(pairs), axis=0)


def reference_jaccard(signatures: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    if len(pairs) == 0:
        return np.zeros(0)
    return (signatures[pairs[:, 0]] == signatures[pairs[:, 1]]).mean(axis=1)


def reference_duplicates(table: pd.DataFrame, settings) -> pd.DataFrame:
    from locallm.data.minhash import signature_matrix
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    table = table.reset_index(drop=True)
    n = len(table)
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
        distinct = np.arange(n)
        if settings["exact"]:
            distinct = np.flatnonzero(~table["exact_hash"].duplicated().to_numpy())
        pairs = distinct[reference_candidate_pairs(signatures[distinct], bands, rows)]
        jaccard = reference_jaccard(signatures, pairs)
        edges.append(pairs[jaccard >= settings["threshold"]])
    links = np.concatenate(edges)
    graph = coo_matrix((np.ones(len(links)), (links[:, 0], links[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    frame = pd.DataFrame({"index": np.arange(n), "doc_id": doc_ids, "component": component})
    kept_index = frame.sort_values(["component", "doc_id"]).groupby("component")["index"].first()
    keep = kept_index.reindex(component).to_numpy()
    removed = np.flatnonzero(keep != np.arange(n))
    kept_of = keep[removed]
    same_text = table["exact_hash"].to_numpy()[removed] == table["exact_hash"].to_numpy()[kept_of]
    exact = same_text & bool(settings["exact"])
    jaccard = np.where(
        exact, 1.0, reference_jaccard(signatures, np.stack([removed, kept_of], axis=1))
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


def test_minhash_in_batches_equals_hashing_the_shard_at_once(tmp_path, monkeypatch):
    from locallm.data import minhash
    from locallm.tables import read_table, write_table

    shard = planted_corpus(60, seed=5)[0]
    write_table(shard, tmp_path / "corpus.parquet")
    monkeypatch.setattr(minhash, "BATCH_DOCS", 7)
    minhash.minhash_shard(
        tmp_path / "corpus.parquet", SETTINGS, tmp_path / "s.parquet", tmp_path / "b.parquet"
    )
    whole = signature_table(shard.reset_index(drop=True), SETTINGS)
    batched = read_table(tmp_path / "s.parquet")
    assert len(batched) == len(shard) > 14
    assert batched["exact_hash"].tolist() == whole["exact_hash"].tolist()
    assert np.array_equal(np.stack(batched["signature"]), np.stack(whole["signature"]))
