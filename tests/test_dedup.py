"""Dedup: normalisation, MinHash signatures, LSH candidates and the kept-copy rule."""

import numpy as np
import pandas as pd
import pytest
from datasketch import MinHash
from locallm.config import with_defaults
from locallm.data.dedup import (
    find_duplicates,
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


def test_signature_shards_round_trip_through_parquet_into_duplicates(tmp_path):
    from locallm.data.dedup import dedup, minhash_shard
    from locallm.tables import read_table, write_table

    text = " ".join(BASE)
    write_table(docs({"s0-a": text, "s0-b": NEAR_30}), tmp_path / "corpus/000.parquet")
    write_table(docs({"s1-a": NEAR_90, "s1-b": text}), tmp_path / "corpus/001.parquet")
    shards = [tmp_path / f"signatures/{s}.parquet" for s in ("000", "001")]
    for shard, out in zip(("000", "001"), shards, strict=True):
        minhash_shard(tmp_path / f"corpus/{shard}.parquet", SETTINGS, out)
    assert read_table(shards[0]).columns.tolist() == [
        "doc_id",
        "group_id",
        "exact_hash",
        "signature",
    ]
    dedup(shards, SETTINGS, tmp_path / "duplicates.parquet")
    found = read_table(tmp_path / "duplicates.parquet")
    assert found[["doc_id", "duplicate_of", "kind"]].values.tolist() == [
        ["s1-a", "s0-a", "near"],
        ["s1-b", "s0-a", "exact"],
    ]
