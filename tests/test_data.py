import numpy as np
import pytest
import torch

from robnas import data
from robnas.errors import ConfigError, DataError


def test_npz_roundtrip_and_errors(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    y = np.arange(20) % 10
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    arrays = data.load_npz(tmp_path / "d.npz")
    assert len(arrays) == 20 and arrays.num_classes == 10
    with pytest.raises(DataError, match="x_test"):
        data.load_npz(tmp_path / "d.npz", split="test")
    with pytest.raises(DataError, match="not found"):
        data.load_npz(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError, match="bad.npz"):
        data.load_npz(tmp_path / "bad.npz")


def test_image_arrays_validation():
    with pytest.raises(DataError, match="uint8"):
        data.ImageArrays(np.zeros((2, 8, 8, 3), np.float32), np.zeros(2))
    with pytest.raises(DataError, match="labels"):
        data.ImageArrays(np.zeros((2, 8, 8, 3), np.uint8), np.zeros(3))


def test_proxy_batch_random_and_balanced_are_seeded():
    d = data.synthetic(200, num_classes=10, seed=1)
    x1, y1 = data.proxy_batch(d, 16, seed=3)
    x2, y2 = data.proxy_batch(d, 16, seed=3)
    assert x1.shape == (16, 3, 32, 32) and torch.equal(x1, x2) and torch.equal(y1, y2)
    xb, yb = data.proxy_batch(d, 20, seed=0, mode="balanced")
    assert torch.bincount(yb, minlength=10).tolist() == [2] * 10
    with pytest.raises(ConfigError):
        data.proxy_batch(d, 0)
    with pytest.raises(ConfigError, match="balanced"):
        data.proxy_batch(d, 8, mode="stratified")


def test_normalize_matches_formula():
    x = torch.rand(2, 3, 4, 4)
    mean, std = data.MEAN_STD["cifar10"]
    expected = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(data.normalize(x), expected)


def test_imagenet16_reads_all_training_files(tmp_path):
    import pickle

    for i in range(1, 11):
        entry = {"data": np.full((3, 768), i, np.uint8), "labels": [1, 2, 121]}
        with open(tmp_path / f"train_data_batch_{i}", "wb") as fh:
            pickle.dump(entry, fh)
    arrays = data.load_imagenet16(tmp_path)
    assert len(arrays) == 20  # label 121 dropped, 10 files x 2 images
    assert set(np.unique(arrays.x)) == set(range(1, 11))
    assert arrays.y.min() == 0
    (tmp_path / "train_data_batch_3").write_bytes(b"junk")
    with pytest.raises(DataError, match="train_data_batch_3"):
        data.load_imagenet16(tmp_path)


def test_load_spec_errors():
    with pytest.raises(ConfigError, match="cannot read data"):
        data.load("whatever.txt")
    assert len(data.load("synthetic:10")) == 10
    for bad in ("synthetic:abc", "synthetic:0", "synthetic:-3", "synthetic:1.5"):
        with pytest.raises(ConfigError, match=r"synthetic:N must be a positive number"):
            data.load(bad)


def test_real_cifar_subset(shared_data):
    d = data.load_npz(shared_data / "cifar10" / "cifar10_exact_subset.npz")
    assert d.x.shape == (8068, 32, 32, 3) and d.name == "cifar10"


def test_cifar_python_batches(tmp_path):
    import pickle

    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        entry = {"data": np.full((2, 3072), i, np.uint8), "labels": [i % 10, (i + 1) % 10]}
        with open(base / name, "wb") as fh:
            pickle.dump(entry, fh)
    train = data.load_cifar(tmp_path, "cifar10", train=True)
    assert train.x.shape == (10, 32, 32, 3) and train.num_classes == 10
    test = data.load_cifar(tmp_path, "cifar10", train=False)
    assert test.x.shape == (2, 32, 32, 3) and int(test.x.max()) == 5
    with pytest.raises(DataError, match="cifar-100-python"):
        data.load_cifar(tmp_path, "cifar100")
    (base / "test_batch").write_bytes(b"\x80junk")
    with pytest.raises(DataError, match="test_batch"):
        data.load_cifar(tmp_path, "cifar10", train=False)


def test_svhn_mat(tmp_path):
    from scipy.io import savemat

    savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.array([[10], [1], [2], [3]])})
    svhn = data.load_svhn(tmp_path, "test")
    assert svhn.x.shape == (4, 32, 32, 3) and svhn.y.tolist() == [0, 1, 2, 3]
    with pytest.raises(DataError, match="train_32x32.mat"):
        data.load_svhn(tmp_path, "train")
