"""flatness: sharpness, sharpness-aware minimizers and adversarial transferability.

A reproduction and extension of Gubri, Cordy and Le Traon, *Going Further: Flatness at the
Rescue of Early Stopping for Adversarial Example Transferability*. Sub-packages:

- ``flatness.data``: CIFAR-10 (official archive or image-folder copy), on-device augmentation.
- ``flatness.models``: the CIFAR model zoo, normalisation inside the model.
- ``flatness.training``: the training engine, runs identified by their configuration's store key.
- ``flatness.minimizers``: SGD, SAM and its family, SWA behind one step API.
- ``flatness.attacks``: BIM/PGD and transfer techniques, transferability evaluation.
- ``flatness.sharpness``: Hessian spectrum (PyHessian and a fast path), loss landscapes.
- ``flatness.scales``: the named experiment sizes (smoke, cpu, gpu, paper).
- ``flatness.store``: the one content-addressed store of runs, datasets, job outputs, results.
- ``flatness.robust``: the derived datasets of Ilyas et al. (built here, read by ``data``).
- ``flatness.study``: the chapters as graphs of stored jobs, the target zoo, the book's results.

Layers: ``data``, ``models``, ``minimizers``, ``attacks``, ``sharpness`` and ``training`` never
import ``scales``, ``robust`` or ``study`` (training takes its adversary as an argument).
"""

from flatness.errors import FlatnessError

__version__ = "0.1.0"
__all__ = ["FlatnessError", "__version__"]
