"""Threads per job and the order in which ready jobs start (locallm.scheduling)."""

from conftest import ROOT
from locallm.config import load_config, tokenization_id
from locallm.scheduling import chain_priority, job_threads, training_priority

FULL = {"max_steps": 120, "dpo_max_steps": 16}
QLORA = {"max_steps": 20, "dpo_max_steps": 8}


def test_auto_threads_share_the_cores_among_jobs_that_run_at_once():
    assert job_threads("auto", cores=2, jobs_at_once=2) == 1
    assert job_threads("auto", cores=2, jobs_at_once=1) == 2
    assert job_threads("auto", cores=8, jobs_at_once=3) == 2


def test_auto_threads_are_at_least_one_and_one_without_cores():
    assert job_threads("auto", cores=2, jobs_at_once=8) == 1
    assert job_threads("auto", cores=None, jobs_at_once=1) == 1  # a cluster run: no --cores


def test_a_number_of_threads_from_the_config_is_used_as_it_is():
    assert job_threads(3, cores=2, jobs_at_once=2) == 3


def test_the_longest_training_chain_starts_first():
    assert chain_priority([FULL]) == 136
    assert chain_priority([QLORA]) == 28
    assert chain_priority([QLORA, FULL]) == 136  # a tokenize job both variants wait on


def test_a_tokenize_job_counts_the_longest_chain_of_the_variants_that_share_it():
    config = load_config(ROOT / "config" / "config.yaml")  # full: 120 + 16 steps, qlora_r8: 20 + 8
    assert training_priority(config, {"variant": "full"}) == 136
    assert training_priority(config, {"variant": "qlora_r8"}) == 28
    shared = tokenization_id(config, "qlora_r8")
    assert shared == tokenization_id(config, "full")
    assert training_priority(config, {"tokenization": shared}) == 136
