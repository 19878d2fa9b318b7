"""flatness.data: both CIFAR-10 sources, the cache, every error, subsets, augmentation, batches."""

from __future__ import annotations

import hashlib
import pickle
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import flatness.data.cifar10 as cifar10_module
from flatness.data import (
    CIFAR10_CLASSES,
    ArrayDataset,
    DeviceDataset,
    augment_batch,
    cifar10_source,
    imagefolder,
    images_to_tensor,
    known_datasets,
    load_cifar10,
    load_dataset,
    register_dataset,
)
from flatness.data import registry as registry_module
from flatness.errors import FlatnessError
from flatness.paths import cache_subdir


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch) -> Path:
    """An empty cache for one test; returns its ``data`` folder."""
    monkeypatch.setenv("FLATNESS_CACHE", str(tmp_path / "cache"))
    return cache_subdir("data")


def one_line_error(excinfo: pytest.ExceptionInfo, *fragments: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ---------------------------------------------------------------------------- sources


def test_archive_and_extracted_folder_give_the_same_arrays(cifar_tiny, tmp_path):
    train, test = load_cifar10(cifar_tiny)
    with tarfile.open(cifar_tiny) as tar:
        tar.extractall(tmp_path / "tree", filter="data")
    train2, test2 = load_cifar10(tmp_path / "tree")

    assert train.images.shape == (60, 32, 32, 3) and test.images.shape == (20, 32, 32, 3)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    assert np.bincount(train.labels).tolist() == [6] * 10
    assert np.bincount(test.labels).tolist() == [2] * 10
    assert np.all(np.diff(train.labels) >= 0)  # sorted by label, then file name
    assert train.classes == CIFAR10_CLASSES and train.name == "cifar10"
    np.testing.assert_array_equal(train.images, train2.images)
    np.testing.assert_array_equal(test.labels, test2.labels)
    # pixels are Pillow's decoding of each file (oracle: decode one file directly)
    direct = np.asarray(Image.open(tmp_path / "tree" / "train" / "bird" / "0003.jpg"))
    np.testing.assert_array_equal(train.images[2 * 6 + 3], direct)
    # the source names the copy: the archive by its real sha256, the folder by its name
    sha = hashlib.sha256(cifar_tiny.read_bytes()).hexdigest()
    assert train.source == f"cifar-tiny.tar.gz sha256:{sha[:16]}"
    assert test2.source.startswith("tree/ files:")


def test_the_source_id_is_read_without_decoding(cifar_tiny, tmp_path, monkeypatch):
    """Jobs' keys name the data copy: its id must be what the decoded sets carry, for the
    archive, the extracted folder and the official folder, without a decode."""
    with tarfile.open(cifar_tiny) as tar:
        tar.extractall(tmp_path / "tree", filter="data")
    expected = [load_cifar10(c)[0].source for c in (cifar_tiny, tmp_path / "tree")]

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(imagefolder, "read_image_folder", no_decode)
    assert [cifar10_source(c) for c in (cifar_tiny, tmp_path / "tree")] == expected
    (tmp_path / "official").mkdir()  # a folder for the official archive, not downloaded yet
    assert cifar10_source(tmp_path / "official") == "torchvision-official"
    monkeypatch.setenv("FLATNESS_DATA", str(cifar_tiny))
    assert cifar10_source() == expected[0]
    with pytest.raises(FlatnessError, match="missing data path"):
        cifar10_source(tmp_path / "nowhere")


def test_archive_under_one_top_level_folder(make_cifar_copy, tmp_path):
    archive = make_cifar_copy(tmp_path, counts=(1, 1), prefix="cifar10", fmt="PNG")
    train, test = load_cifar10(archive)
    assert len(train) == 10 and len(test) == 10


def test_default_location_comes_from_flatness_data(cifar_tiny, monkeypatch):
    monkeypatch.setenv("FLATNESS_DATA", str(cifar_tiny))
    train, _ = load_cifar10()
    assert len(train) == 60
    train_by_name, _ = load_dataset()
    np.testing.assert_array_equal(train.images, train_by_name.images)


def write_official(root: Path, monkeypatch, seed: int = 0) -> dict[str, tuple]:
    """A fake official folder (cifar-10-batches-py pickles) with torchvision's MD5s patched."""
    from torchvision.datasets import CIFAR10

    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    made, md5 = {}, {}
    for name, count in [*[(f"data_batch_{i}", 3) for i in range(1, 6)], ("test_batch", 4)]:
        images = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count).tolist()
        rows = images.transpose(0, 3, 1, 2).reshape(count, -1)  # official layout: CHW rows
        (folder / name).write_bytes(pickle.dumps({"data": rows, "labels": labels}))
        made[name] = (images, labels)
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CIFAR10_CLASSES)}))
    for path in folder.iterdir():
        md5[path.name] = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]]
                                                for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names",
                                          "md5": md5["batches.meta"]})
    return made


def test_official_folder_is_read_through_torchvision(tmp_path, monkeypatch):
    made = write_official(tmp_path, monkeypatch)
    train, test = load_cifar10(tmp_path)
    expected = np.concatenate([made[f"data_batch_{i}"][0] for i in range(1, 6)])
    np.testing.assert_array_equal(train.images, expected)  # HWC, exactly the pickled pixels
    assert train.labels.tolist() == sum((made[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    np.testing.assert_array_equal(test.images, made["test_batch"][0])
    assert train.source == test.source == "torchvision-official"


def test_default_location_downloads_the_official_archive(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    target = tmp_path / "torchvision"  # does not exist yet: the default may be created
    monkeypatch.delenv("FLATNESS_DATA", raising=False)
    monkeypatch.setattr(cifar10_module, "default_data_location", lambda: str(target))
    made = {}
    monkeypatch.setattr(CIFAR10, "download",
                        lambda self: made.update(write_official(Path(self.root), monkeypatch)))
    _, test = load_cifar10()
    np.testing.assert_array_equal(test.images, made["test_batch"][0])


@pytest.mark.parametrize("default", [True, False])
def test_download_without_network_is_a_clear_error(tmp_path, monkeypatch, fresh_cache, default):
    from torchvision.datasets import CIFAR10

    def no_network(self):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(CIFAR10, "download", no_network)
    if default:
        monkeypatch.delenv("FLATNESS_DATA", raising=False)
        monkeypatch.setattr(cifar10_module, "default_data_location",
                            lambda: str(tmp_path / "absent"))
        data = None
    else:
        (tmp_path / "empty").mkdir()
        data = tmp_path / "empty"
    with pytest.raises(FlatnessError) as excinfo:
        load_cifar10(data)
    one_line_error(excinfo, "could not download CIFAR-10", "no network", "--data PATH")
    assert not list(fresh_cache.iterdir())


def test_corrupt_official_files_are_a_clear_error(tmp_path, monkeypatch):
    write_official(tmp_path, monkeypatch)
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "ab") as handle:
        handle.write(b"garbage")
    with pytest.raises(FlatnessError) as excinfo:
        load_cifar10(tmp_path)
    one_line_error(excinfo, "corrupt official CIFAR-10", "delete that folder")


# ---------------------------------------------------------------------------- errors


def make_bad_copy(kind: str, make_cifar_copy, tmp_path: Path) -> Path:
    """A synthetic copy broken in one way."""
    if kind == "missing":
        return tmp_path / "nowhere" / "cifar.tar.gz"
    if kind == "not gzip":
        (tmp_path / "cifar.tar.gz").write_bytes(b"this is not an archive" * 100)
        return tmp_path / "cifar.tar.gz"
    if kind == "truncated":
        archive = make_cifar_copy(tmp_path, counts=(2, 1))
        archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
        return archive
    if kind == "bad jpeg":
        tree = make_cifar_copy(tmp_path, archive=False, counts=(2, 1))
        (tree / "test" / "frog" / "0000.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
        return tree
    if kind == "extra class":
        return make_cifar_copy(tmp_path, counts=(1, 1), classes=(*CIFAR10_CLASSES, "unicorn"))
    if kind == "missing class":
        return make_cifar_copy(tmp_path, counts=(1, 1), classes=CIFAR10_CLASSES[:9])
    if kind == "wrong size":
        return make_cifar_copy(tmp_path, counts=(1, 1), size=(64, 48))
    if kind == "missing split":
        tree = make_cifar_copy(tmp_path, archive=False, counts=(1, 1))
        for path in sorted((tree / "test").rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        (tree / "test").rmdir()
        return tree
    if kind == "nested":
        tree = make_cifar_copy(tmp_path, archive=False, counts=(1, 1))
        (tree / "train" / "cat" / "sub").mkdir()
        (tree / "train" / "cat" / "0000.jpg").rename(tree / "train" / "cat" / "sub" / "0.jpg")
        return tree
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, fragments", [
    ("missing", ["missing data path", "--data PATH"]),
    ("not gzip", ["corrupt archive", "re-download or re-create"]),
    ("truncated", ["corrupt archive"]),
    ("bad jpeg", ["corrupt image", "test/frog/0000.jpg"]),
    ("extra class", ["unexpected class folders", "'unicorn'", "airplane, automobile"]),
    ("missing class", ["unexpected class folders", "missing: ['truck']"]),
    ("wrong size", ["wrong image size 64x48", "32x32"]),
    ("missing split", ["missing test/ split"]),
    ("nested", ["unexpected file", "train/cat/sub/0.jpg"]),
])
def test_bad_input_is_a_one_line_error_and_caches_nothing(kind, fragments, make_cifar_copy,
                                                           tmp_path, fresh_cache):
    bad = make_bad_copy(kind, make_cifar_copy, tmp_path)
    with pytest.raises(FlatnessError) as excinfo:
        load_cifar10(bad)
    one_line_error(excinfo, *fragments)
    assert not list(fresh_cache.iterdir())


def test_flatness_data_pointing_nowhere_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("FLATNESS_DATA", str(tmp_path / "typo.tar.gz"))
    with pytest.raises(FlatnessError) as excinfo:
        load_cifar10()
    one_line_error(excinfo, "missing data path", "FLATNESS_DATA")


# ---------------------------------------------------------------------------- cache


def test_second_load_reads_the_cache_without_decoding(cifar_tiny, fresh_cache, monkeypatch,
                                                      make_cifar_copy, tmp_path):
    train, test = load_cifar10(cifar_tiny)
    assert len(list(fresh_cache.glob("*.npz"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(imagefolder, "decode_images", no_decoding)
    train2, test2 = load_cifar10(cifar_tiny)
    np.testing.assert_array_equal(train.images, train2.images)
    np.testing.assert_array_equal(test.labels, test2.labels)
    assert train2.source == train.source
    # a different copy has a different key: it is decoded, not served from the cache
    with pytest.raises(AssertionError, match="decoded again"):
        load_cifar10(make_cifar_copy(tmp_path, counts=(1, 1), seed=1))


def test_failed_decode_leaves_no_half_written_cache(cifar_tiny, fresh_cache, monkeypatch):
    real_decode = imagefolder.decode_images
    calls = []

    def fail_on_second_split(files, where):
        calls.append(len(files))
        if len(calls) == 2:
            raise KeyboardInterrupt  # e.g. the user interrupts while the test split decodes
        return real_decode(files, where)

    monkeypatch.setattr(imagefolder, "decode_images", fail_on_second_split)
    with pytest.raises(KeyboardInterrupt):
        load_cifar10(cifar_tiny)
    assert calls == [60, 20]
    assert not list(fresh_cache.iterdir())


def test_interrupted_cache_write_leaves_nothing(cifar_tiny, fresh_cache, monkeypatch):
    def half_write(handle, **arrays):
        handle.write(b"PK\x03\x04 half an npz")
        raise OSError("disk full")

    monkeypatch.setattr(cifar10_module.np, "savez", half_write)
    with pytest.raises(OSError, match="disk full"):
        load_cifar10(cifar_tiny)
    assert not list(fresh_cache.iterdir())


# ---------------------------------------------------------------------------- datasets


def toy_dataset(labels) -> ArrayDataset:
    """Image i is filled with the value i % 256 (to check image-label pairing)."""
    labels = np.asarray(labels, dtype=np.int64)
    images = np.broadcast_to((np.arange(len(labels)) % 256).astype(np.uint8)[:, None, None, None],
                             (len(labels), 32, 32, 3)).copy()
    return ArrayDataset(images, labels, CIFAR10_CLASSES, "toy")


def test_subset_is_class_balanced_seeded_and_deterministic():
    ds = toy_dataset(np.repeat(np.arange(10), 25))
    sub = ds.subset(47, seed=3)
    counts = np.bincount(sub.labels, minlength=10)
    assert counts.sum() == 47 and counts.max() - counts.min() <= 1
    np.testing.assert_array_equal(sub.images, ds.subset(47, seed=3).images)
    assert not np.array_equal(sub.images, ds.subset(47, seed=4).images)
    # pairing kept: image value identifies the original index, whose label must match
    original = sub.images[:, 0, 0, 0].astype(int)
    np.testing.assert_array_equal(ds.labels[original], sub.labels)
    assert len(np.unique(original)) == 47
    assert ds.subset(None, seed=0) is ds
    assert len(ds.subset(250, seed=0)) == 250 and len(ds.subset(0, seed=0)) == 0


def test_subset_of_an_imbalanced_set_takes_small_classes_whole():
    ds = toy_dataset([0] * 2 + [1] * 50 + [2] * 50)
    counts = np.bincount(ds.subset(30, seed=0).labels, minlength=3)
    assert counts.tolist() == [2, 14, 14]


def test_subset_larger_than_the_set_is_a_clear_error():
    with pytest.raises(FlatnessError) as excinfo:
        toy_dataset(np.arange(10)).subset(11, seed=0)
    one_line_error(excinfo, "subset of 11", "has 10")


def test_select_and_validation():
    ds = toy_dataset(np.arange(10))
    picked = ds.select([7, 2])
    assert picked.labels.tolist() == [7, 2] and picked.images[0, 0, 0, 0] == 7
    assert picked.source == "toy" and picked.classes == CIFAR10_CLASSES
    with pytest.raises(FlatnessError, match="uint8"):
        ArrayDataset(ds.images.astype(np.float32), ds.labels, CIFAR10_CLASSES, "toy")
    with pytest.raises(FlatnessError, match="one label per image"):
        ArrayDataset(ds.images, ds.labels[:3], CIFAR10_CLASSES, "toy")


def test_dataset_registry(cifar_tiny, monkeypatch):
    monkeypatch.setattr(registry_module, "_LOADERS", dict(registry_module._LOADERS))
    seen = []

    def loader(data):
        seen.append(data)
        return load_cifar10(data)

    register_dataset("d_test", loader)
    assert "d_test" in known_datasets() and "cifar10" in known_datasets()
    train, _ = load_dataset("d_test", cifar_tiny)
    assert len(train) == 60 and seen == [str(cifar_tiny)]
    with pytest.raises(FlatnessError) as excinfo:
        load_dataset("d_nope")
    one_line_error(excinfo, "unknown dataset 'd_nope'", "d_test")


# ---------------------------------------------------------------------------- augmentation


def which_crop(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """(B, 162) table: does ``out[i]`` equal crop/flip k of ``x[i]`` (4-pixel zero padding)?

    Crop k < 81 is the window at (dy, dx) = divmod(k, 9) of the padded image; k >= 81 is crop
    k - 81 flipped with ``torch.flip``.
    """
    padded = F.pad(x, (4, 4, 4, 4))
    crops = [padded[:, :, dy:dy + 32, dx:dx + 32].contiguous()
             for dy in range(9) for dx in range(9)]
    crops += [torch.flip(c, dims=[3]) for c in crops]
    return torch.stack([(c == out).flatten(1).all(1) for c in crops], dim=1)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_augment_is_a_padded_crop_and_flip_of_each_image(dtype):
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (128, 3, 32, 32), generator=gen, dtype=torch.uint8)
    x = x if dtype == torch.uint8 else x / 255
    out = augment_batch(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == dtype and out.is_contiguous()
    if dtype == torch.float32:
        assert out.min() >= 0 and out.max() <= 1
    matches = which_crop(x, out)
    assert (matches.sum(1) == 1).all()  # exactly one crop/flip explains each (pixels non-zero)
    which = matches.int().argmax(1)
    flipped, offset = which // 81, which % 81
    assert 0.35 < flipped.float().mean() < 0.65  # p = 0.5
    assert set((offset // 9).tolist()) == set(range(9)) == set((offset % 9).tolist())
    assert (offset != 40).float().mean() > 0.8  # most images are shifted (40 = no shift)


def test_augment_is_deterministic_given_the_generator():
    x = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    a = augment_batch(x, torch.Generator().manual_seed(5))
    b = augment_batch(x, torch.Generator().manual_seed(5))
    c = augment_batch(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_augment_channels_last_input():
    x = torch.rand(8, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    a = augment_batch(x, torch.Generator().manual_seed(2))
    b = augment_batch(x.contiguous(), torch.Generator().manual_seed(2))
    assert torch.equal(a, b)


# ---------------------------------------------------------------------------- device dataset


def test_device_dataset_layout():
    ds = toy_dataset(np.arange(300) % 10)
    ds.images[5, 1, 2] = (1, 2, 3)
    dd = DeviceDataset.from_arrays(ds, "cpu")
    assert dd.images.shape == (300, 3, 32, 32) and dd.images.dtype == torch.uint8
    assert dd.labels.dtype == torch.int64 and len(dd) == 300
    assert dd.images[5, :, 1, 2].tolist() == [1, 2, 3]  # HWC -> CHW
    assert dd.classes == CIFAR10_CLASSES


@pytest.mark.parametrize("augment", [False, True])
def test_batches_cover_every_sample_once_per_epoch(augment):
    n = 300
    ds = toy_dataset(np.arange(n))  # label = index, image value = index % 256
    dd = DeviceDataset.from_arrays(ds, "cpu")
    gen = torch.Generator().manual_seed(0)
    epochs = []
    for _ in range(2):
        batches = list(dd.batches(64, shuffle=True, augment=augment, generator=gen))
        assert len(batches) == dd.num_batches(64) == 5
        assert [len(y) for _, y in batches] == [64, 64, 64, 64, 44]
        x = torch.cat([b[0] for b in batches])
        y = torch.cat([b[1] for b in batches])
        assert x.dtype == torch.float32 and x.shape == (n, 3, 32, 32)
        assert x.min() >= 0 and x.max() <= 1
        assert sorted(y.tolist()) == list(range(n))
        # the image travels with its label (the centre pixel survives any 4-pixel shift)
        torch.testing.assert_close(x[:, 0, 16, 16] * 255, (y % 256).float())
        epochs.append(y)
    assert not torch.equal(epochs[0], epochs[1])  # a new order each epoch
    again = list(dd.batches(64, shuffle=True, augment=augment,
                            generator=torch.Generator().manual_seed(0)))
    assert torch.equal(torch.cat([b[1] for b in again]), epochs[0])


def test_batches_in_order_drop_last_and_channels_last():
    dd = DeviceDataset.from_arrays(toy_dataset(np.arange(100)), "cpu")
    batches = list(dd.batches(32, shuffle=False, augment=False, generator=None, drop_last=True,
                              memory_format=torch.channels_last))
    assert len(batches) == dd.num_batches(32, drop_last=True) == 3
    assert torch.cat([y for _, y in batches]).tolist() == list(range(96))
    assert batches[0][0].is_contiguous(memory_format=torch.channels_last)
    assert batches[1][0][5, 2, 7, 9].item() == pytest.approx(37 / 255)


# ---------------------------------------------------------------------------- the real copy


def test_shared_offline_copy(shared_cifar):
    train, test = load_cifar10(shared_cifar)
    assert train.images.shape == (50000, 32, 32, 3) and test.images.shape == (10000, 32, 32, 3)
    assert np.bincount(train.labels).tolist() == [5000] * 10
    assert np.bincount(test.labels).tolist() == [1000] * 10
    mean = train.images.reshape(-1, 3).mean(0) / 255
    np.testing.assert_allclose(mean, (0.4913, 0.4821, 0.4465), atol=1e-3)


def test_images_to_tensor_is_channels_first_in_unit_range():
    images = np.random.default_rng(0).integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    x = images_to_tensor(images[:, ::-1])  # a non-contiguous view converts too
    assert x.shape == (3, 3, 4, 5) and x.dtype == torch.float32
    expected = torch.from_numpy(images[:, ::-1].copy()).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(x, expected)
    assert x.min() >= 0 and x.max() <= 1
    torch.testing.assert_close(images_to_tensor(images, "cpu"), images_to_tensor(images))


def test_every_cut_of_a_gzip_archive_is_refused_as_corrupt(tmp_path):
    """tarfile's stream mode alone reads a copy cut at a tar block boundary as a complete,
    smaller archive (35 of these 80 cuts); the whole gzip stream must be there."""
    import io
    import tarfile

    from flatness.data.imagefolder import _archive_entries

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for i in range(40):
            content = bytes([i]) * 3000
            info = tarfile.TarInfo(f"train/c{i}/x.jpg")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    blob = buffer.getvalue()
    path = tmp_path / "cut.tar.gz"
    for cut in range(100, len(blob) - 1, 7):
        path.write_bytes(blob[:cut])
        with pytest.raises(FlatnessError, match="corrupt archive"):
            _archive_entries(path)
    path.write_bytes(blob)
    assert len(_archive_entries(path)) == 40
