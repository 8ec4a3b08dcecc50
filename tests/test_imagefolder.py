"""Image folders (``--data imagefolder:DIR``): reading, resizing, the decoded cache, bad input,
and the statistics and class names a training run records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from robnas import data
from robnas.errors import ConfigError, DataError

CLASSES = ("cat", "dog", "fox")


def _write(path: Path, size: int, seed: int, mode: str = "RGB") -> None:
    rng = np.random.default_rng(seed)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=None).convert(mode).save(path)


def make_folder(root: Path, sizes: tuple[int, int] = (20, 28), per_class: int = 4, val: str = "val") -> Path:
    """train/ and val/ with three classes, PNG and JPEG files of two sizes."""
    seed = 0
    for split, n in (("train", per_class), (val, 2)):
        for c in CLASSES:
            folder = root / split / c
            folder.mkdir(parents=True)
            for i in range(n):
                suffix = "png" if i % 2 == 0 else "jpg"
                _write(folder / f"img{i}.{suffix}", sizes[i % len(sizes)], seed)
                seed += 1
    (root / "train" / "cat" / "notes.txt").write_text("not an image: ignored")
    return root


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "pets")


def test_reads_resizes_and_caches(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train = data.load(f"imagefolder@16:{folder}")
    assert train.x.shape == (12, 16, 16, 3) and train.x.dtype == np.uint8
    assert train.classes == CLASSES and train.num_classes == 3
    assert train.class_counts() == {"cat": 4, "dog": 4, "fox": 4}
    (cache,) = (folder / ".robnas-cache").iterdir()
    files = json.loads((cache / "meta.json").read_text())["files"]
    assert sorted(files["train"]) == sorted(str(p.relative_to(folder)) for p in folder.glob("train/*/img*"))
    assert files["train"][:6] != sorted(files["train"])[:6]  # a fixed random order: a prefix samples all classes
    assert train.y.tolist() == [CLASSES.index(Path(f).parent.name) for f in files["train"]]
    # each row is its PNG or JPEG, resized by Pillow
    for row, name in enumerate(files["train"]):
        image = Image.open(folder / name).convert("RGB").resize((16, 16), Image.BILINEAR)
        assert np.array_equal(train.x[row], np.asarray(image))
    # normalisation statistics of the training images, used by every consumer
    pixels = train.x.reshape(-1, 3).astype(np.float64) / 255
    assert np.allclose(train.mean_std[0], pixels.mean(0), atol=1e-5)
    assert np.allclose(train.mean_std[1], pixels.std(0), atol=1e-5)
    test = data.load(f"imagefolder@16:{folder}", "test")
    assert test.x.shape == (6, 16, 16, 3) and sorted(test.y.tolist()) == [0, 0, 1, 1, 2, 2]
    assert test.stats == train.stats  # the test split is normalised with the training statistics
    cached = list((folder / ".robnas-cache").iterdir())
    assert len(cached) == 1 and isinstance(train.x, np.memmap)

    # a second run reads the memory-mapped cache: nothing is decoded again
    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded again")

    monkeypatch.setattr(data, "_decode", no_decoding)
    again = data.load(f"imagefolder@16:{folder}")
    assert np.array_equal(again.x, train.x) and again.stats == train.stats
    # a changed folder is decoded afresh (and replaces its old cache)
    monkeypatch.undo()
    _write(folder / "train" / "dog" / "new.png", 20, 99)
    changed = data.load(f"imagefolder@16:{folder}")
    assert changed.class_counts()["dog"] == 5
    assert len(list((folder / ".robnas-cache").iterdir())) == 1


def test_default_size_and_the_cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mixed = make_folder(tmp_path / "mixed")
    with pytest.raises(DataError, match=r"differ in size \(.*img0.png is 20x20, .*img1.jpg is 28x28\); .*--image-size"):
        data.load(f"imagefolder:{mixed}")
    same = make_folder(tmp_path / "same", sizes=(24,), val="test")
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "cache"))
    arrays = data.load(f"imagefolder:{same}", "test")  # test/ stands in for val/
    assert arrays.x.shape == (6, 24, 24, 3)
    assert not (same / ".robnas-cache").exists() and any((tmp_path / "cache").iterdir())


def test_grey_images_get_three_channels(tmp_path: Path) -> None:
    root = tmp_path / "grey"
    for c in CLASSES:
        (root / "train" / c).mkdir(parents=True)
        _write(root / "train" / c / "a.png", 8, len(c), mode="L")
    arrays = data.load(f"imagefolder:{root}")
    assert arrays.x.shape == (3, 8, 8, 3)
    assert np.array_equal(arrays.x[..., 0], arrays.x[..., 2])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: shutil.rmtree(r / "train/dog") or (r / "train/dog").mkdir(), r"train/dog: empty class folder"),
        (lambda r: (r / "train/fox/img1.jpg").write_bytes(b"not a jpeg"), r"train/fox/img1.jpg: unreadable image"),
        (lambda r: shutil.copytree(r / "val/cat", r / "val/owl"), r"val/owl: class 'owl' is in val/ but not in train/"),
        (
            lambda r: _write(r / "val/dog/grey.png", 20, 5, mode="L"),
            r"differ in channel count \(.*has 3 \(RGB\), .*val/dog/grey.png has 1 \(L\)\)",
        ),
        (lambda r: shutil.rmtree(r / "train"), r"no train/ folder"),
    ],
    ids=["empty-class", "unreadable", "class-not-in-train", "mixed-channels", "no-train"],
)
def test_bad_input_is_one_line(folder: Path, damage, message: str) -> None:
    damage(folder)
    with pytest.raises(DataError, match=message):
        data.load(f"imagefolder@16:{folder}")
    from robnas.cli import app

    result = CliRunner().invoke(
        app, ["score", "--space", "nb201", "--sample", "2", "--proxies", "nwot", "--data",
              f"imagefolder:{folder}", "--image-size", "16", "--batch-size", "4", "--out",
              str(folder.parent / "r.sqlite")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_specs_and_image_size() -> None:
    assert data.imagefolder_spec("imagefolder:pets", 32) == "imagefolder@32:pets"
    assert data.imagefolder_spec("imagefolder@16:pets", 32) == "imagefolder@32:pets"
    assert data.imagefolder_spec("cifar10.npz", None) == "cifar10.npz"
    with pytest.raises(ConfigError, match="imagefolder:DIR only"):
        data.imagefolder_spec("cifar10.npz", 32)
    with pytest.raises(ConfigError, match="positive integer"):
        data.load("imagefolder@x:pets")
    with pytest.raises(DataError, match="image folder not found"):
        data.load("imagefolder:/no/such/folder")


def test_cli_score_train_evaluate_on_an_image_folder(folder: Path, tmp_path: Path) -> None:
    """The issue's score command, then a training run that records the statistics and classes
    with its checkpoint, then an evaluation with the corruption preset of 32-pixel images."""
    from robnas.cli import app

    runner = CliRunner()
    scored = runner.invoke(
        app, ["score", "--space", "nb201", "--sample", "4", "--proxies", "synflow,robust_zc", "--data",
              f"imagefolder:{folder}", "--image-size", "32", "--batch-size", "6",
              "--out", str(tmp_path / "r.sqlite")],
    )  # fmt: skip
    assert scored.exit_code == 0, scored.output
    arch = "nb201:|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    trained = runner.invoke(
        app, ["train", "--arch", arch, "--arch-opt", "C=4", "--arch-opt", "N=1", "--data", f"imagefolder:{folder}",
              "--image-size", "32", "--epochs", "1", "--batch-size", "6", "--out", str(tmp_path / "run"),
              "--no-progress", "--device", "cpu"],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    meta = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["meta"]
    stats = data.load(f"imagefolder@32:{folder}").stats
    assert meta["normalize"] == {"mean": list(stats[0]), "std": list(stats[1])}
    assert meta["classes"] == {"cat": 4, "dog": 4, "fox": 4}
    assert meta["data"] == f"imagefolder@32:{folder}"
    evaluated = runner.invoke(
        app, ["evaluate", "--model", str(tmp_path / "run" / "last.pt"), "--data", f"imagefolder:{folder}",
              "--image-size", "32", "--corruptions", "gaussian_noise@1", "--out", str(tmp_path / "eval"),
              "--device", "cpu"],
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    doc = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert doc["meta"]["classes"] == {"cat": 2, "dog": 2, "fox": 2}
    assert doc["meta"]["normalize"]["mean"] == list(stats[0])
    assert [r["label"] for r in doc["rows"]] == ["clean", "gaussian_noise@1"]
    bad = runner.invoke(app, ["evaluate", "--model", str(tmp_path / "run" / "last.pt"), "--data",
                              f"imagefolder:{folder}", "--image-size", "24", "--corruptions", "fog@1",
                              "--out", str(tmp_path / "eval24"), "--device", "cpu"])  # fmt: skip
    assert bad.exit_code == 2 and "--corruption-preset" in bad.output
    # an evaluation folder knows the image folder by its files: a changed folder is not mixed in
    _write(folder / "val" / "fox" / "late.png", 20, 7)
    again = runner.invoke(app, ["evaluate", "--model", str(tmp_path / "run" / "last.pt"), "--data",
                                f"imagefolder:{folder}", "--image-size", "32", "--corruptions", "gaussian_noise@1",
                                "--out", str(tmp_path / "eval"), "--device", "cpu"])  # fmt: skip
    assert again.exit_code == 2 and "changed: data" in again.output
    # the exported model carries the class names and image size of its training run
    exported = runner.invoke(app, ["export", "--model", str(tmp_path / "run"), "--format", "torchscript",
                                   "--out", str(tmp_path / "m.pt")])  # fmt: skip
    assert exported.exit_code == 0, exported.output
    files = {"robnas.json": ""}
    torch.jit.load(str(tmp_path / "m.pt"), _extra_files=files)
    meta = json.loads(files["robnas.json"])
    assert meta["classes"] == list(CLASSES) and meta["image_size"] == [32, 32]
    assert meta["normalize"] == {"mean": list(stats[0]), "std": list(stats[1])}


def test_supernet_training_on_an_image_folder(folder: Path, tmp_path: Path) -> None:
    from robnas.cli import app

    result = CliRunner().invoke(
        app, ["supernet", "train", "--space", "nb201", "--data", f"imagefolder:{folder}", "--image-size", "16",
              "--epochs", "1", "--arch-opt", "C=4", "--arch-opt", "N=1", "--batch-size", "6", "--out",
              str(tmp_path / "sup"), "--no-progress", "--device", "cpu"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "sup" / "meta.json").read_text())
    assert meta["data"] == f"imagefolder@16:{folder}" and meta["classes"] == {"cat": 4, "dog": 4, "fox": 4}
    assert meta["normalize"]["mean"] == list(data.load(f"imagefolder@16:{folder}").stats[0])
