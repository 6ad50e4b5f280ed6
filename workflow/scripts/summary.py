"""Snakemake script (rule experiment_summary): every evaluation of one experiment, all seeds, in one
small JSON used as a DVC metrics file."""
from sa4depth.report.tables import write_summary

sm = snakemake  # noqa: F821  (injected by Snakemake)
write_summary(list(sm.input), sm.output[0])
with open(sm.log[0], "w") as f:
    f.write(f"summarised {len(sm.input)} files into {sm.output[0]}\n")
