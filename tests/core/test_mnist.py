import gzip
import hashlib
import shutil

import numpy as np
import pytest

from jaxmem import mnist

SHARED = mnist.default_dir()
IMAGES, LABELS = mnist.FILES["t10k"]
MD5 = {IMAGES: "9fb629c4189551a2d022fa330f9573f3", LABELS: "ec29112dd5afa0611ce80d1b7f02629c"}
COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # digits 0-9, from the README

@pytest.fixture
def shared_files():
    """The MNIST test set shipped in the package (``jaxmem/datasets/mnist``)."""
    if not (SHARED / IMAGES).is_file():
        pytest.fail(f"no MNIST files in {SHARED}: the package ships them in jaxmem/datasets/mnist")
    return SHARED


def _idx(magic: int, shape: tuple, payload: bytes) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in shape)
    return header + payload


def _write(path, raw: bytes) -> None:
    with gzip.open(path, "wb") as f:
        f.write(raw)


def _tiny_set(folder, kind="t10k", n_images=5, n_labels=5):
    images, labels = mnist.FILES[kind]
    rng = np.random.default_rng(0)
    _write(folder / images, _idx(2051, (n_images, 28, 28), rng.integers(0, 256, n_images * 784, np.uint8).tobytes()))
    _write(folder / labels, _idx(2049, (n_labels,), (np.arange(n_labels) % 10).astype(np.uint8).tobytes()))


def test_shared_test_set_is_the_official_one(shared_files):
    for name, digest in MD5.items():
        assert hashlib.md5((SHARED / name).read_bytes()).hexdigest() == digest
    images, labels = mnist.load()
    assert images.shape == (10_000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10_000,) and labels.min() == 0 and labels.max() == 9
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), COUNTS)  # every class present
    flat, same = mnist.load(SHARED, "t10k", as_float=True)
    assert flat.shape == (10_000, 784) and flat.dtype == np.float32
    assert flat.min() == 0.0 and flat.max() == 1.0
    np.testing.assert_array_equal(flat[7].reshape(28, 28), images[7] / np.float32(255))
    np.testing.assert_array_equal(same, labels)
    assert "t10k" in mnist.available()


def test_truncated_gzip_names_the_file(tmp_path, shared_files):
    raw = (SHARED / IMAGES).read_bytes()
    (tmp_path / IMAGES).write_bytes(raw[: len(raw) // 2])
    shutil.copy(SHARED / LABELS, tmp_path / LABELS)
    with pytest.raises(ValueError, match=f"{IMAGES}.*truncated"):
        mnist.load(tmp_path)


def test_payload_shorter_than_header_names_the_file(tmp_path):
    _tiny_set(tmp_path)
    _write(tmp_path / IMAGES, _idx(2051, (5, 28, 28), bytes(4 * 784)))  # a valid gzip, one image short
    message = rf"{IMAGES} is truncated or corrupt: .*shape \(5, 28, 28\) \(3936 bytes\) but it holds 3152 bytes"
    with pytest.raises(ValueError, match=message):
        mnist.load(tmp_path)


def test_bad_magic_number(tmp_path):
    _tiny_set(tmp_path)
    _write(tmp_path / IMAGES, _idx(2049, (5, 28, 28), bytes(5 * 784)))
    with pytest.raises(ValueError, match=f"{IMAGES} has magic number 2049, expected 2051"):
        mnist.load(tmp_path)


def test_not_gzip_missing_and_mismatched(tmp_path):
    with pytest.raises(ValueError, match=f"{IMAGES} not found"):
        mnist.load(tmp_path)
    _tiny_set(tmp_path, n_images=5, n_labels=4)
    with pytest.raises(ValueError, match=f"{IMAGES} holds 5 images but .*{LABELS} holds 4 labels"):
        mnist.load(tmp_path)
    (tmp_path / LABELS).write_bytes(b"not a gzip file at all")
    with pytest.raises(ValueError, match=f"{LABELS} is truncated or not a valid gzip"):
        mnist.load(tmp_path)
    with pytest.raises(ValueError, match="kind must be one of"):
        mnist.load(tmp_path, kind="validation")


def test_training_files_when_given(tmp_path):
    _tiny_set(tmp_path, kind="train", n_images=12, n_labels=12)
    assert mnist.available(tmp_path) == ("train",)
    images, labels = mnist.load(tmp_path, kind="train")
    assert images.shape == (12, 28, 28) and labels.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
