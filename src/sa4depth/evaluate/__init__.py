"""sa4depth.evaluate: evaluation protocols (numpy/evo; torch only where a model runs).

* :mod:`~sa4depth.evaluate.metrics`: Monodepth2 depth metrics, crops, median scaling, Scale Std,
  Table I scale variances, least-squares scale+shift.
* :mod:`~sa4depth.evaluate.depth`: KITTI Eigen / Eigen-benchmark, Cityscapes, NYUv2 protocols,
  prediction / GT loading, batched depth-net inference.
* :mod:`~sa4depth.evaluate.scale`: Table I on the validation split.
* :mod:`~sa4depth.evaluate.odometry`: trajectory chaining, KITTI devkit t_err / r_err, evo ATE / RPE.
* :mod:`~sa4depth.evaluate.video`: Table VIII per-sequence aligned video depth, Eq. 19.
* :mod:`~sa4depth.evaluate.provenance`: git / data hash / config block and atomic JSON.
* :mod:`~sa4depth.evaluate.jobs`: the library API of ``sa4depth evaluate`` (config in, an
  :class:`~sa4depth.evaluate.jobs.EvalResult` out, :func:`~sa4depth.evaluate.jobs.write_result` for the
  JSON with provenance): ``from sa4depth.evaluate.jobs import resolve_config, evaluate_depth``.
"""
