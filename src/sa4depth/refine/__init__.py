"""sa4depth.refine: SA4Depth's feature-metric Levenberg-Marquardt pose refinement (Sec. V).

- :mod:`.robust`     robust losses rho(||r||^2) and their IRLS weights (Eqs. 8, 11)
- :mod:`.jacobians`  bilinear feature gradient, projection and SE(3) point Jacobians (Eq. 9)
- :mod:`.lm`         damped Cholesky solve, IRLS, batched LM loop (Eqs. 10, 12, 13)
- :mod:`.module`     ``SA4DepthRefiner`` nn.Module (feature net, learnable damping, switches)
- :mod:`.pretrained` frozen TorchScript extractors for MASt3R / PixLoc features (rows 15-16)
- :mod:`.matcher`    ORB/SIFT/SuperGlue + RANSAC essential / PnP baselines (rows 7-9)

Import the submodules directly (``from sa4depth.refine.module import SA4DepthRefiner``); this
package file imports nothing heavy.
"""
