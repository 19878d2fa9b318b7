"""The robust and non-robust feature datasets of Ilyas et al. (2019), built from CIFAR-10.

- ``d_r``: images whose robust-model representation matches a training image's (label kept),
- ``d_nr``: the same with a standard model (Ilyas et al.'s D_NR, their ``non_robust_CIFAR``),
- ``d_rand`` / ``d_det``: a standard model's targeted L2 adversarial examples relabelled with
  the target, random (``d_rand``) or ``(y + 1) mod 10`` (``d_det``).

:func:`build_dataset` builds or reuses one (a store artifact) and registers its name
(``d_r@cpu``, :func:`dataset_name`), by which :func:`flatness.data.load_dataset` reads it.
"""

from flatness.data.derived import DatasetArtifact, artifact_path, read_artifact
from flatness.robust.build import Built, build_all, build_dataset, dataset_name, model_config
from flatness.robust.construct import (
    invert_representation,
    next_class_targets,
    random_targets,
    representation_distance,
    start_images,
    targeted_relabel,
)
from flatness.robust.params import KINDS, RobustParams

__all__ = [
    "KINDS", "Built", "DatasetArtifact", "RobustParams", "artifact_path", "build_all",
    "build_dataset", "dataset_name", "invert_representation", "model_config",
    "next_class_targets", "random_targets", "read_artifact", "representation_distance",
    "start_images", "targeted_relabel",
]
