"""Snakemake script (rule synth_paths): write the dataset roots of one scale/profile of the
synthetic data, merged into training configs with `sa4depth train --config FILE`."""
from sa4depth.files import dump_yaml
from sa4depth import pipeline as P

sm = snakemake  # noqa: F821  (injected by Snakemake)
text = dump_yaml(P.synthetic_paths(sm.wildcards.scale, sm.wildcards.profile))
with open(sm.output[0], "w") as f:
    f.write("# written by the workflow (rule synth_paths); merged with `sa4depth train --config`\n" + text)
with open(sm.log[0], "w") as f:
    f.write(f"wrote {sm.output[0]}\n")
