"""Datasets in their official formats, ``.npz`` archives, image folders, synthetic data, and
proxy batches.

Images are held as uint8 arrays (N, H, W, 3) with int64 labels; models receive float
tensors (N, 3, H, W). Normalisation is explicit: :class:`Normalize` is a module that a
model can carry, so attacks always work in [0, 1] pixel space.

An image folder (``imagefolder:DIR``, :func:`load_imagefolder`) holds ``DIR/train/<class>/*``
and ``DIR/val/<class>/*`` (or ``DIR/test/<class>/*``), PNG or JPEG; it is decoded once into a
memory-mapped cache and normalised with the statistics of its own training images.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
MeanStd = tuple[tuple[float, ...], tuple[float, ...]]


@dataclass
class ImageArrays:
    """Images (N, H, W, C) uint8 and labels (N,) int64, plus the data set's name.

    ``classes`` names the classes (label i is ``classes[i]``) where the data set says so (image
    folders); ``stats`` is the (mean, std) per channel to normalise with, when measured on the
    data set's own training images (image folders), else :data:`MEAN_STD` of ``name`` applies.
    """

    x: np.ndarray
    y: np.ndarray
    name: str = "custom"
    num_classes: int = 10
    classes: tuple[str, ...] | None = None
    stats: MeanStd | None = None

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
        return ImageArrays(self.x[idx], self.y[idx], self.name, self.num_classes, self.classes, self.stats)

    def tensors(self, indices: np.ndarray | None = None) -> tuple[Tensor, Tensor]:
        """Float images in [0, 1], shape (N, C, H, W), and int64 labels."""
        x = self.x if indices is None else self.x[indices]
        y = self.y if indices is None else self.y[indices]
        return to_tensor(x), torch.from_numpy(np.ascontiguousarray(y))

    @property
    def mean_std(self) -> MeanStd:
        """The (mean, std) to normalise with: ``stats`` when measured, else ``MEAN_STD[name]``."""
        if self.stats is not None:
            return self.stats
        return MEAN_STD.get(self.name, MEAN_STD["cifar10"])

    def class_counts(self) -> dict[str, int] | None:
        """Images per class name (None when the classes are not named), for a run's record."""
        if self.classes is None:
            return None
        counts = np.bincount(self.y, minlength=len(self.classes))
        return {name: int(n) for name, n in zip(self.classes, counts, strict=False)}


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


# ---------------------------------------------------------------------------------------------
# image folders

#: File endings read as images (decoded with Pillow); other files in a class folder are ignored.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: Environment variable naming a folder for the decoded caches of every image folder.
CACHE_ENV = "ROBNAS_CACHE_DIR"
_CACHE_VERSION = 2
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "F")


def imagefolder_spec(spec: str, image_size: int | None) -> str:
    """``--data`` and ``--image-size`` as one data spec: ``imagefolder@32:DIR``.

    ``image_size=None`` returns ``spec`` unchanged; a size with data that is not an image folder
    raises ConfigError (other formats keep their own size).
    """
    if image_size is None:
        return spec
    kind, sep, rest = str(spec).partition(":")
    if kind.partition("@")[0] != "imagefolder" or not sep:
        raise ConfigError(f"--image-size applies to --data imagefolder:DIR only, not to {spec!r}")
    if image_size < 1:
        raise ConfigError(f"--image-size must be a positive number of pixels, got {image_size}")
    return f"imagefolder@{image_size}:{rest}"


def _parse_imagefolder(spec: str) -> tuple[Path, int | None]:
    """``imagefolder[@SIZE]:DIR`` -> (DIR, SIZE or None)."""
    kind, _, rest = spec.partition(":")
    _, at, size_text = kind.partition("@")
    size = None
    if at:
        try:
            size = int(size_text)
        except ValueError:
            size = 0
        if size < 1:
            raise ConfigError(f"bad data {spec!r}: the size in imagefolder@SIZE:DIR must be a positive integer")
    if not rest:
        raise ConfigError(f"bad data {spec!r}: give the folder, imagefolder:DIR")
    return Path(rest), size


def _split_dir(root: Path, split: str) -> Path | None:
    """``root/train`` for the training split; ``root/val``, else ``root/test``, for the other."""
    for name in ("train",) if split == "train" else ("val", "test"):
        if (root / name).is_dir():
            return root / name
    return None


def _class_files(folder: Path) -> dict[str, list[Path]]:
    """Class name -> its image files (sorted), for every class folder of ``folder``."""
    classes = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{folder}: no class folders (expected {folder}/<class>/<image>.png)")
    out: dict[str, list[Path]] = {}
    for d in classes:
        with os.scandir(d) as entries:  # the file type comes with the listing: no stat per file
            names = sorted(
                e.name
                for e in entries
                if os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES and not e.name.startswith(".") and e.is_file()
            )
        files = [d / name for name in names]
        if not files:
            raise DataError(f"{d}: empty class folder (no {', '.join(IMAGE_SUFFIXES[:3])} images in it)")
        out[d.name] = files
    return out


def _cache_root(root: Path) -> Path:
    """Where the decoded caches of ``root`` live: ``$ROBNAS_CACHE_DIR/<hash of root>`` when set,
    else ``root/.robnas-cache`` beside the images, else (read-only folder) the user's cache."""
    tag = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / tag
    if os.access(root, os.W_OK):
        return root / ".robnas-cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "robnas" / "imagefolders" / tag


def _channels(mode: str) -> int:
    return 1 if mode in _GRAY_MODES else 3


def _decode(path: Path, size: tuple[int, int] | None) -> tuple[np.ndarray, str]:
    """One image as uint8 (H, W, 3) (grey levels repeated over the three channels), resized to
    ``size`` (width, height) with Pillow's bilinear filter, and its Pillow mode."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            mode = img.mode
            img = img.convert("L" if _channels(mode) == 1 else "RGB")
            if size is not None and img.size != size:
                img = img.resize(size, Image.Resampling.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: unreadable image ({exc})") from None
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return array, mode


def _probe(path: Path) -> tuple[tuple[int, int], str]:
    """(width, height) and Pillow mode of one image, from its header."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.size, img.mode
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: unreadable image ({exc})") from None


def _manifest_key(splits: dict[str, dict[str, list[Path]]], size: int | None, root: Path) -> str:
    """A hash of every file's path, byte size and modification time, and the asked size."""
    digest = hashlib.sha256(f"v{_CACHE_VERSION}|size={size}".encode())
    for split, classes in splits.items():
        for name, files in classes.items():
            for f in files:
                st = os.stat(f)
                digest.update(f"{split}|{name}|{f.parent.parent.name}/{name}/{f.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _channel_stats(x: np.ndarray, chunk: int = 4096) -> MeanStd:
    """Per-channel mean and standard deviation of uint8 (N, H, W, C) images, in [0, 1]."""
    total = np.zeros(x.shape[-1])
    squares = np.zeros(x.shape[-1])
    for start in range(0, len(x), chunk):
        block = x[start : start + chunk].astype(np.float64) / 255.0
        total += block.sum(axis=(0, 1, 2))
        squares += (block**2).sum(axis=(0, 1, 2))
    count = x.shape[0] * x.shape[1] * x.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    std[std == 0] = 1.0
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)


def _build_cache(
    root: Path,
    splits: dict[str, dict[str, list[Path]]],
    folders: dict[str, str],
    size: int | None,
    target: Path,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Decode every image of ``splits`` into ``target`` (``<split>_x.npy``, ``<split>_y.npy``,
    ``meta.json``), written under a temporary name and renamed into place at the end."""
    from concurrent.futures import ThreadPoolExecutor

    classes = list(splits["train"])
    for split, by_class in splits.items():
        if split != "train":
            for name in by_class:
                if name not in splits["train"]:
                    raise DataError(
                        f"{root / folders[split] / name}: class {name!r} is in {folders[split]}/ but not in "
                        f"train/ (train has {len(classes)} classes: {', '.join(classes[:5])}"
                        f"{', ...' if len(classes) > 5 else ''})"
                    )
    everything = [(split, f) for split, by_class in splits.items() for files in by_class.values() for f in files]
    first = everything[0][1]
    first_size, first_mode = _probe(first)
    for _, f in everything:  # headers only: a bad size or channel count is found before decoding
        f_size, f_mode = _probe(f)
        if _channels(f_mode) != _channels(first_mode):
            raise DataError(
                f"{root}: images differ in channel count ({first} has {_channels(first_mode)} ({first_mode}), "
                f"{f} has {_channels(f_mode)} ({f_mode})); convert them to one colour mode"
            )
        if size is None and f_size != first_size:
            raise DataError(
                f"{root}: images differ in size ({first} is {first_size[0]}x{first_size[1]}, {f} is "
                f"{f_size[0]}x{f_size[1]}); choose one size with --image-size N"
            )
    wh = (size, size) if size is not None else first_size
    tmp = target.parent / f".{target.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    meta: dict[str, Any] = {
        "version": _CACHE_VERSION,
        "root": str(root.resolve()),
        "classes": classes,
        "size": [wh[1], wh[0]],
        "mode": first_mode,
        "folders": folders,
        "counts": {},
        "files": {},
    }
    done, total = 0, len(everything)
    try:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            for split, by_class in splits.items():
                files = [(classes.index(name), f) for name, fs in by_class.items() for f in fs]
                # a fixed random order, so that the first N images (evaluate's limit) sample every class
                files = [files[i] for i in np.random.default_rng(0).permutation(len(files))]
                x = np.lib.format.open_memmap(tmp / f"{split}_x.npy", "w+", np.uint8, (len(files), wh[1], wh[0], 3))
                y = np.asarray([label for label, _ in files], dtype=np.int64)
                for i, (array, _) in enumerate(pool.map(lambda item: _decode(item[1], wh), files)):
                    x[i] = array
                    done += 1
                    if progress is not None and (done % 1000 == 0 or done == total):
                        progress(done, total)
                x.flush()
                np.save(tmp / f"{split}_y.npy", y)
                meta["counts"][split] = {name: len(fs) for name, fs in by_class.items()}
                meta["files"][split] = [str(f.relative_to(root)) for _, f in files]
                if split == "train":
                    mean, std = _channel_stats(x)
                    meta["mean"], meta["std"] = list(mean), list(std)
                del x
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            tmp.rename(target)
        except OSError:  # another process finished the same cache first: keep its copy
            if not (target / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def imagefolder_fingerprint(spec: str) -> str:
    """A hash of every file of the image folder of ``spec`` (names, sizes, time stamps) and the
    size asked: the same as long as what the folder decodes to is the same (a run's identity)."""
    root, size = _parse_imagefolder(spec)
    splits = {}
    for split in ("train", "test"):
        folder = _split_dir(root, split) if root.is_dir() else None
        if folder is not None:
            splits[split] = _class_files(folder)
    if not splits:
        raise DataError(f"{root}: image folder not found (expected {root}/train/<class>/<image>.png)")
    return _manifest_key(splits, size, root)


def load_imagefolder(
    root: str | Path,
    split: str = "train",
    image_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImageArrays:
    """An image folder: ``root/train/<class>/*`` and ``root/val/<class>/*`` (or ``test``).

    PNG and JPEG files (any of :data:`IMAGE_SUFFIXES`) are decoded with Pillow, grey images
    repeated over three channels, resized to ``image_size`` x ``image_size`` (bilinear; default:
    the size every image has, else a DataError naming two that differ). Labels follow the sorted
    class folder names of ``train``; the images of each split are in one fixed random order
    (seed 0; the cache's ``meta.json`` lists the files in it), so that the first N of them
    sample every class. Both splits are decoded once into a cache
    (:func:`_cache_root`: ``root/.robnas-cache`` where the folder is writable, or
    ``$ROBNAS_CACHE_DIR``), keyed by every file's name, size and time stamp, and read back
    memory-mapped, so later runs start as fast as from an ``.npz``. The returned arrays carry the
    class names and the per-channel mean and std of the training images (``stats``), which
    training records with its checkpoints.

    Bad input is one DataError each: a missing split folder, an empty class folder, an
    unreadable image (named), a class in ``val`` that ``train`` lacks, mixed channel counts.
    ``progress(done, total)`` is called while decoding.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found (expected {root}/train/<class>/<image>.png)")
    train_dir = _split_dir(root, "train")
    if train_dir is None:
        raise DataError(f"{root}: no train/ folder (an image folder holds train/<class>/* and val/<class>/*)")
    if split not in ("train", "test", "val"):
        raise ConfigError(f"image folders have the splits train and val (or test), not {split!r}")
    other = _split_dir(root, "test")
    if split != "train" and other is None:
        raise DataError(f"{root}: no val/ or test/ folder to evaluate on (expected {root}/val/<class>/*)")
    splits = {"train": _class_files(train_dir)}
    folders = {"train": "train"}
    if other is not None:
        splits["test"] = _class_files(other)
        folders["test"] = other.name
    cache = _cache_root(root)
    key = _manifest_key(splits, image_size, root)
    target = cache / f"{image_size or 'auto'}-{key}"
    if not (target / "meta.json").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        for stale in cache.glob(f"{image_size or 'auto'}-*"):  # the same folder and size before a change
            shutil.rmtree(stale, ignore_errors=True)
        _build_cache(root, splits, folders, image_size, target, progress)
    meta = json.loads((target / "meta.json").read_text())
    name = "train" if split == "train" else "test"
    try:
        x = np.load(target / f"{name}_x.npy", mmap_mode="c")
        y = np.load(target / f"{name}_y.npy")
    except (OSError, ValueError) as exc:
        raise DataError(f"{target}: damaged image cache ({exc}); delete that folder to decode again") from None
    stats = (tuple(meta["mean"]), tuple(meta["std"]))
    classes = tuple(meta["classes"])
    return ImageArrays(x, y, f"imagefolder:{root.name}", len(classes), classes, stats)


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
    ``svhn:ROOT``, ``imagenet16-120:ROOT``, ``imagefolder:DIR`` (``imagefolder@SIZE:DIR``
    resizes to SIZE x SIZE, see :func:`imagefolder_spec`), or ``synthetic[:N]``."""
    text = str(spec)
    kind, _, rest = text.partition(":")
    train = split == "train"
    if kind.partition("@")[0] == "imagefolder":
        root, size = _parse_imagefolder(text)
        return load_imagefolder(root, "train" if train else "test", size)
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
        "imagenet16-120:ROOT, imagefolder:DIR or synthetic[:N]"
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
