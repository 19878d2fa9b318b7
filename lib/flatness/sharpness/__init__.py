"""Sharpness of trained networks: Hessian spectrum (PyHessian and a fast path), loss landscapes."""

from flatness.sharpness.metrics import ENGINES, as_images, hessian_metrics

__all__ = ["ENGINES", "as_images", "hessian_metrics"]
