"""locallm: the library behind the workflow's rule scripts.

Each module has one job (see shared DESIGN and docs/); rule scripts in workflow/scripts/ only unpack
Snakemake's input/output/params and call one function from here.
"""
