"""Procedural synthetic benchmark: ray-cast analytic scenes written in real dataset layouts.

``render_sequence`` renders in memory; ``sa4depth synth`` (:mod:`.writers`) writes the KITTI raw /
KITTI odometry / Cityscapes / NYUv2 layouts described in ``docs/DATA_LAYOUTS.md``.
"""
from .profiles import NOISE_SIGMA, PROFILES, Episode, KittiRig, make_episode, render_sequence

__all__ = ["NOISE_SIGMA", "PROFILES", "Episode", "KittiRig", "make_episode", "render_sequence"]
