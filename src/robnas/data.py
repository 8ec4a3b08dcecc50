"""Datasets in their official formats, ``.npz`` archives, synthetic data, and proxy batches.

Images are held as uint8 arrays (N, H, W, 3) with int64 labels; models receive float
tensors (N, 3, H, W). Normalisation is explicit: :class:`Normalize` is a module that a
model can carry, so attacks always work in [0, 1] pixel space.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from robnas.errors import ConfigError, DataError

#: Channel statistics used by the reference implementations (CIFAR: the zero-cost-nas values).
MEAN_STD: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "imagenet16-120": (
        (122.68 / 255, 116.66 / 255, 104.01 / 255),
        (63.22 / 255, 61.26 / 255, 65.09 / 255),
    ),
    "synthetic": ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
}

NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "svhn": 10, "imagenet16-120": 120}


@dataclass
class ImageArrays:
    """Images (N, H, W, C) uint8 and labels (N,) int64, plus the data set's name."""

    x: np.ndarray
    y: np.ndarray
    name: str = "custom"
    num_classes: int = 10

    def __post_init__(self) -> None:
        if self.x.ndim != 4 or self.x.shape[-1] not in (1, 3):
            raise DataError(f"images must be (N, H, W, C) with C in (1, 3), got shape {self.x.shape}")
        if self.x.dtype != np.uint8:
            raise DataError(f"images must be uint8, got {self.x.dtype}")
        if len(self.x) != len(self.y):
            raise DataError(f"{len(self.x)} images but {len(self.y)} labels")
        self.y = np.asarray(self.y, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.x)

    def digest(self) -> str:
        """A fingerprint of the images and labels (:func:`robnas.fingerprint.array_digest`), computed once."""
        if "_digest" not in self.__dict__:
            from robnas.fingerprint import array_digest

            self.__dict__["_digest"] = array_digest(self.x, self.y)
        return self.__dict__["_digest"]

    def subset(self, indices: np.ndarray | list[int]) -> ImageArrays:
        idx = np.asarray(indices)
        return ImageArrays(self.x[idx], self.y[idx], self.name, self.num_classes)

    def tensors(self, indices: np.ndarray | None = None) -> tuple[Tensor, Tensor]:
        """Float images in [0, 1], shape (N, C, H, W), and int64 labels."""
        x = self.x if indices is None else self.x[indices]
        y = self.y if indices is None else self.y[indices]
        return to_tensor(x), torch.from_numpy(np.ascontiguousarray(y))

    @property
    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return MEAN_STD.get(self.name, MEAN_STD["cifar10"])


def to_tensor(x: np.ndarray) -> Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float().div_(255.0)


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` as a module, input in [0, 1], shape (N, C, H, W)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def normalize(x: Tensor, dataset: str = "cifar10") -> Tensor:
    """Normalise images in [0, 1] with the statistics of ``dataset``."""
    mean, std = MEAN_STD.get(dataset, MEAN_STD["cifar10"])
    return Normalize(mean, std).to(x.device)(x)


def _require(path: Path, what: str, source: str) -> Path:
    if not path.exists():
        raise DataError(f"{path}: not found; expected {what} ({source})")
    return path


def load_npz(path: str | Path, split: str = "train", name: str | None = None) -> ImageArrays:
    """An ``.npz`` archive with ``x_<split>`` uint8 (N, H, W, 3) and ``y_<split>``."""
    path = _require(Path(path), f"an .npz with x_{split} and y_{split}", "for example made with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            if f"x_{split}" not in keys or f"y_{split}" not in keys:
                raise DataError(f"{path}: expected arrays x_{split} and y_{split}, found {sorted(keys)}")
            x, y = data[f"x_{split}"], data[f"y_{split}"]
    except DataError:
        raise
    except Exception as exc:  # zip errors, truncated files
        raise DataError(f"{path}: cannot read the .npz archive ({exc})") from exc
    num_classes = int(y.max()) + 1 if len(y) else 10
    guessed = name or ("cifar10" if x.shape[1:3] == (32, 32) and num_classes <= 10 else "custom")
    return ImageArrays(x, y, guessed, max(num_classes, NUM_CLASSES.get(guessed, 0)))


CIFAR_SOURCES = {
    "cifar10": ("cifar-10-batches-py", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                "c58f30108f718f92721af3b95e74349a"),
    "cifar100": ("cifar-100-python", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                 "eb9058c3a382ffc7106e4002c42a8d85"),
}
SVHN_SOURCE = "http://ufldl.stanford.edu/housenumbers/{split}_32x32.mat"


def _download(url: str, target: Path, md5: str | None = None) -> Path:
    """Fetch ``url`` to ``target`` (only ever called when the user asked for ``--download``)."""
    import hashlib
    import urllib.request

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".part")
    try:
        urllib.request.urlretrieve(url, tmp)
    except OSError as exc:
        raise DataError(f"cannot download {url} ({exc})") from exc
    if md5 is not None and hashlib.md5(tmp.read_bytes()).hexdigest() != md5:
        tmp.unlink()
        raise DataError(f"{url}: checksum mismatch, the download is corrupt")
    tmp.replace(target)
    return target


def _unpickle(path: Path, what: str, source: str) -> dict:
    _require(path, what, source)
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh, encoding="latin1")
    except Exception as exc:
        raise DataError(f"{path}: not a readable {what} ({exc}); {source}") from exc


def load_cifar(root: str | Path, name: str = "cifar10", train: bool = True, download: bool = False) -> ImageArrays:
    """CIFAR-10/100 from the official python batches (the layout torchvision also uses).

    ``root`` holds ``cifar-10-batches-py/`` (``data_batch_1..5``, ``test_batch``) or
    ``cifar-100-python/`` (``train``, ``test``; fine labels). Nothing is downloaded unless
    ``download=True``.
    """
    if name not in CIFAR_SOURCES:
        raise ConfigError(f"unknown CIFAR variant {name!r}; expected cifar10 or cifar100")
    folder, url, md5 = CIFAR_SOURCES[name]
    base = Path(root) / folder
    if download and not base.is_dir():
        import tarfile

        archive = _download(url, Path(root) / url.rsplit("/", 1)[-1], md5)
        with tarfile.open(archive) as tar:
            tar.extractall(Path(root), filter="data")
    source = f"the official {name} python version from {url} (or pass --download)"
    if name == "cifar10":
        files = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
        label_key = "labels"
    else:
        files = ["train" if train else "test"]
        label_key = "fine_labels"
    xs, ys = [], []
    for f in files:
        entry = _unpickle(base / f, f"{name} batch", source)
        if "data" not in entry or label_key not in entry:
            raise DataError(f"{base / f}: expected keys 'data' and {label_key!r}; {source}")
        xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(np.asarray(entry[label_key], dtype=np.int64))
    return ImageArrays(np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys), name, NUM_CLASSES[name])


def load_svhn(root: str | Path, split: str = "train", download: bool = False) -> ImageArrays:
    """SVHN cropped digits from the official ``{split}_32x32.mat`` files (label 10 is digit 0)."""
    from scipy.io import loadmat

    path = Path(root) / f"{split}_32x32.mat"
    url = SVHN_SOURCE.format(split=split)
    if download and not path.exists():
        _download(url, path)
    _require(path, f"the SVHN {split} file", f"{url} (or pass --download)")
    try:
        mat = loadmat(path)
        x, y = mat["X"], mat["y"].reshape(-1).astype(np.int64)
    except Exception as exc:
        raise DataError(f"{path}: not a readable SVHN .mat file with X and y ({exc}); {url}") from exc
    y[y == 10] = 0
    return ImageArrays(np.ascontiguousarray(x.transpose(3, 0, 1, 2)), y, "svhn", 10)


def load_imagenet16(root: str | Path, train: bool = True, num_classes: int = 120) -> ImageArrays:
    """ImageNet16-120 from the official pickles (``train_data_batch_1..10``, ``val_data``).

    All ten training files are read (the CRoZe reference reads only the last one). Labels
    1..``num_classes`` are kept and shifted to 0-based.
    """
    root = Path(root)
    files = [f"train_data_batch_{i}" for i in range(1, 11)] if train else ["val_data"]
    xs, ys = [], []
    for f in files:
        path = _require(root / f, "an ImageNet16 pickle", "https://github.com/D-X-Y/NATS-Bench (ImageNet16)")
        try:
            with open(path, "rb") as fh:
                entry = pickle.load(fh, encoding="latin1")
        except Exception as exc:
            raise DataError(f"{path}: not a readable ImageNet16 pickle ({exc})") from exc
        xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 16, 16).transpose(0, 2, 3, 1))
        ys.append(np.asarray(entry["labels"], dtype=np.int64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    keep = (y >= 1) & (y <= num_classes)
    return ImageArrays(np.ascontiguousarray(x[keep]), y[keep] - 1, "imagenet16-120", num_classes)


def synthetic(n: int = 64, num_classes: int = 10, size: int = 32, seed: int = 0) -> ImageArrays:
    """Random images whose class shifts the mean colour a little, for tests."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    base = rng.integers(0, 256, (n, size, size, 3)).astype(np.float32)
    shift = y[:, None, None, None] * (255.0 / max(num_classes, 1))
    x = np.clip(0.5 * base + 0.5 * shift, 0, 255).astype(np.uint8)
    return ImageArrays(x, y.astype(np.int64), "synthetic", num_classes)


def _synthetic_count(spec: str, rest: str) -> int:
    """The N of ``synthetic[:N]`` (64 when absent); ConfigError unless a positive integer."""
    if not rest:
        return 64
    try:
        n = int(rest)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"bad data {spec!r}: N in synthetic:N must be a positive number of images, e.g. synthetic:64")
    return n


def load(spec: str | Path, split: str = "train", download: bool = False) -> ImageArrays:
    """Load a data set from a spec: a ``.npz`` path, ``cifar10:ROOT``, ``cifar100:ROOT``,
    ``svhn:ROOT``, ``imagenet16-120:ROOT``, or ``synthetic[:N]``."""
    text = str(spec)
    kind, _, rest = text.partition(":")
    train = split == "train"
    if kind == "synthetic":
        return synthetic(_synthetic_count(text, rest))
    if kind in ("cifar10", "cifar100"):
        return load_cifar(rest or ".", kind, train=train, download=download)
    if kind == "svhn":
        return load_svhn(rest or ".", "train" if train else "test", download=download)
    if kind in ("imagenet16-120", "imagenet16"):
        return load_imagenet16(rest or ".", train=train)
    if text.endswith(".npz"):
        return load_npz(text, split)
    raise ConfigError(
        f"cannot read data {text!r}: give a .npz file, cifar10:ROOT, cifar100:ROOT, svhn:ROOT, "
        "imagenet16-120:ROOT or synthetic[:N]"
    )


def random_subset(data: ImageArrays, n: int | None, seed: int = 0) -> ImageArrays:
    """``n`` images of ``data`` drawn without replacement with ``seed`` (in their original
    order); all of them when ``n`` is None or ``len(data)``; more than there are raises ConfigError."""
    if n is not None and n < 1:
        raise ConfigError(f"a subset needs at least one image, got {n}")
    if n is not None and n > len(data):
        raise ConfigError(f"a subset of {n} images asked of {data.name}, which has {len(data)}")
    if n is None or n == len(data):
        return data
    idx = np.sort(np.random.default_rng([seed, 0x5B5]).choice(len(data), n, replace=False))
    return data.subset(idx)


def proxy_batch(
    data: ImageArrays, batch_size: int, seed: int = 0, mode: str = "random", normalized: bool = True
) -> tuple[Tensor, Tensor]:
    """The batch a proxy sees: ``batch_size`` images chosen with ``seed``.

    ``mode="random"`` draws uniformly without replacement; ``mode="balanced"`` draws
    ``batch_size // num_classes`` images per class (the reference's ``grasp`` loader).
    Returns CIFAR-normalised float32 (B, 3, H, W) unless ``normalized=False`` and labels (B,).
    """
    if batch_size < 1 or batch_size > len(data):
        raise ConfigError(f"batch size {batch_size} must be between 1 and the {len(data)} images available")
    rng = np.random.default_rng(seed)
    if mode == "random":
        idx = rng.choice(len(data), batch_size, replace=False)
    elif mode == "balanced":
        classes = np.unique(data.y)
        per = max(1, batch_size // len(classes))
        idx = np.concatenate(
            [
                rng.choice(np.flatnonzero(data.y == c), min(per, int((data.y == c).sum())), replace=False)
                for c in classes
            ]
        )
    else:
        raise ConfigError(f"unknown batch mode {mode!r}; expected 'random' or 'balanced'")
    x, y = data.tensors(np.sort(idx))
    if normalized:
        mean, std = data.mean_std
        x = Normalize(mean, std)(x)
    return x, y
