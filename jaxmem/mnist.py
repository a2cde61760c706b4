"""MNIST from its IDX gzip files (LeCun, Cortes & Burges), read with NumPy.

IDX: a big-endian header (magic 2051 for images, 2049 for labels; the item count;
28 and 28 for images), then one uint8 per pixel or label. Every way a file can be
wrong (missing, not gzip, truncated, wrong magic, sizes that disagree) raises a
``ValueError`` naming the file.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

#: kind -> (images file, labels file)
FILES = {
    "t10k": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
}
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
N_CLASSES = 10


def default_dir() -> Path:
    """The official MNIST test set (10,000 images) shipped inside the package,
    ``jaxmem/datasets/mnist``; other IDX files (the 60,000-image training set) via ``data_dir``."""
    return Path(__file__).resolve().parent / "datasets" / "mnist"


def available(data_dir=None) -> tuple[str, ...]:
    """The kinds (``"train"``, ``"t10k"``) whose two files are in ``data_dir``."""
    folder = Path(data_dir) if data_dir is not None else default_dir()
    return tuple(k for k, names in FILES.items() if all((folder / n).is_file() for n in names))


def read_idx(path, magic: int) -> np.ndarray:
    """The uint8 array of one IDX gzip file, shaped by its header.

    Raises:
      ValueError: naming ``path`` when it is missing, not gzip, truncated, has
        another magic number, or holds a different number of bytes than its
        header says.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"MNIST file {path} not found")
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"MNIST file {path} is truncated or not a valid gzip file ({err})") from err
    if len(raw) < 8:
        raise ValueError(f"MNIST file {path} is truncated: {len(raw)} bytes, shorter than its header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(f"MNIST file {path} has magic number {found}, expected {magic}")
    n_dims = 3 if magic == IMAGE_MAGIC else 1
    header = 4 + 4 * n_dims
    if len(raw) < header:
        raise ValueError(f"MNIST file {path} is truncated: {len(raw)} bytes, shorter than its header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(n_dims))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise ValueError(f"MNIST file {path} is truncated or corrupt: its header says shape {shape} "
                         f"({expected} bytes) but it holds {len(raw)} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load(data_dir=None, kind: str = "t10k", as_float: bool = False):
    """Images and labels of one MNIST split.

    Args:
      data_dir: folder holding the IDX gzip files; default ``default_dir()``.
      kind: ``"t10k"`` (10,000 test images) or ``"train"`` (60,000).
      as_float: return images as float32 ``[N, 784]`` scaled to [0, 1] instead
        of uint8 ``[N, 28, 28]``.

    Returns:
      ``(images, labels)`` with labels int32 ``[N]`` in 0..9.
    """
    if kind not in FILES:
        raise ValueError(f"kind must be one of {tuple(FILES)}, got {kind!r}")
    folder = Path(data_dir) if data_dir is not None else default_dir()
    image_path, label_path = (folder / name for name in FILES[kind])
    for path in (image_path, label_path):
        if not path.is_file():
            raise ValueError(f"MNIST file {path} not found; pass data_dir (--data) as a folder holding "
                             f"{FILES[kind][0]} and {FILES[kind][1]}")
    images = read_idx(image_path, IMAGE_MAGIC)
    labels = read_idx(label_path, LABEL_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"MNIST files disagree: {image_path} holds {images.shape[0]} images but "
                         f"{label_path} holds {labels.shape[0]} labels")
    if images.shape[1:] != (28, 28):
        raise ValueError(f"MNIST file {image_path} holds images of shape {images.shape[1:]}, expected (28, 28)")
    if labels.size and labels.max() >= N_CLASSES:
        raise ValueError(f"MNIST file {label_path} holds label {labels.max()}, outside 0..9")
    labels = labels.astype(np.int32)
    if as_float:
        return (images.reshape(images.shape[0], -1) / np.float32(255)).astype(np.float32), labels
    return images, labels
