"""Threads per job and the order in which ready jobs start (locallm.scheduling)."""

from locallm.scheduling import chain_priority, job_threads

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
