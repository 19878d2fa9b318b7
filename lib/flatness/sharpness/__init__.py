"""Sharpness of trained networks: Hessian spectrum (PyHessian and a fast path), loss landscapes.

- :func:`hessian_metrics`: top eigenvalues, trace and spectral density over an image subset.
- :func:`random_direction`, :func:`landscape_1d`, :func:`landscape_2d`, :func:`interpolate`:
  loss/accuracy slices as ``landscape`` result files.
- :func:`sharpness_over_training`: the metrics for chosen epochs of a training run.
"""

from flatness.sharpness.landscape import interpolate, landscape_1d, landscape_2d, random_direction
from flatness.sharpness.metrics import ENGINES, as_images, hessian_metrics
from flatness.sharpness.over_training import sharpness_over_training

__all__ = ["ENGINES", "as_images", "hessian_metrics", "interpolate", "landscape_1d",
           "landscape_2d", "random_direction", "sharpness_over_training"]
