"""Common corruptions: every corruption x preset, exactness against Pillow/scipy, errors, CIFAR-C reader."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from robnas import corruption_params as P
from robnas import corruptions as C
from robnas.errors import ConfigError, DataError, UnknownName

SIZES = {"cifar": 32, "imagenet16": 16, "imagenet": 32}
RANDOM = {
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "glass_blur",
    "motion_blur",
    "snow",
    "frost",
    "fog",
    "spatter",
    "elastic_transform",
}


def images(size: int, n: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    smooth = torch.nn.functional.interpolate(
        torch.rand(n, 3, 4, 4, generator=g), size=(size, size), mode="bilinear"
    )
    return (0.7 * smooth + 0.3 * torch.rand(n, 3, size, size, generator=g)).clamp(0, 1)


def test_names():
    assert len(C.names("common")) == 15 and len(C.names("extra")) == 4
    assert sorted(C.names()) == sorted(C.CORRUPTIONS.names())
    assert set(C.names("*blur")) == {
        "gaussian_blur",
        "defocus_blur",
        "glass_blur",
        "motion_blur",
        "zoom_blur",
    }


@pytest.mark.parametrize("preset", C.PRESETS)
@pytest.mark.parametrize("name", C.names())
def test_every_corruption_shape_range_determinism(name, preset):
    x = images(SIZES[preset])
    for severity in (1, 5):
        out = C.apply(x, name, severity, seed=3, preset=preset)
        assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
        assert torch.equal(out, C.apply(x, name, severity, seed=3, preset=preset))
    strong = C.apply(x, name, 5, seed=3, preset=preset)
    assert (strong - x).abs().mean() > 1e-3, "severity 5 must change the images"
    if name in RANDOM:
        assert not torch.equal(strong, C.apply(x, name, 5, seed=4, preset=preset))


def test_input_is_not_modified_and_dtype_kept():
    x = images(32)
    before = x.clone()
    C.apply(x, "fog", 3)
    assert torch.equal(x, before)
    assert C.apply(x.double(), "contrast", 2).dtype == torch.float64


@pytest.mark.parametrize(
    "name", ["gaussian_noise", "contrast", "defocus_blur", "pixelate", "jpeg_compression"]
)
def test_severity_increases_damage(name):
    x = images(32, n=8)
    damage = [(C.apply(x, name, s, preset="cifar") - x).abs().mean().item() for s in range(1, 6)]
    assert damage[-1] > damage[0]


def _uint8(x: torch.Tensor) -> np.ndarray:
    return np.round(x.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)


def test_contrast_and_gaussian_blur_match_formulas():
    x = images(32)
    expected = ((x - x.mean((2, 3), keepdim=True)) * 0.5 + x.mean((2, 3), keepdim=True)).clamp(0, 1)
    assert torch.allclose(C.apply(x, "contrast", 2, preset="cifar"), expected, atol=1e-6)
    ref = np.stack(
        [gaussian_filter(im.numpy().astype(np.float64), sigma=(0, 2, 2), mode="nearest") for im in x]
    )
    ours = C.apply(x, "gaussian_blur", 2, preset="imagenet").numpy()
    assert np.abs(ours - np.clip(ref, 0, 1)).max() < 1e-5


@pytest.mark.parametrize("size", [(32, 32), (37, 45), (80, 80)])
@pytest.mark.parametrize("batched", [True, False])
def test_pixelate_is_pillow_exactly(size, batched, monkeypatch):
    """Both ways (Pillow per image, and its fixed-point arithmetic on the batch) equal Pillow."""
    monkeypatch.setattr(C, "_PIXELATE_PIL_PIXELS", 10**9 if batched else 0)
    h, w = size
    arr = np.random.default_rng(0).integers(0, 256, (3, h, w, 3), dtype=np.uint8)
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255
    for preset, up in (("imagenet", Image.NEAREST), ("cifar", Image.BOX)):
        for s in range(1, 6):
            c = P.param("pixelate", preset, s)
            ours = _uint8(C.apply(x, "pixelate", s, preset=preset))
            for a, o in zip(arr, ours, strict=True):
                small = Image.fromarray(a).resize((int(w * c), int(h * c)), Image.BOX)
                assert np.array_equal(np.asarray(small.resize((w, h), up)), o), (preset, s)


@pytest.mark.parametrize("size", [32, 45])
def test_jpeg_matches_pillow(size):
    arr = _uint8(images(size))
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255
    for preset in ("cifar", "imagenet"):
        for s in range(1, 6):
            ours = _uint8(C.apply(x, "jpeg_compression", s, preset=preset))
            for a, o in zip(arr, ours, strict=True):
                buf = io.BytesIO()
                Image.fromarray(a).save(buf, "JPEG", quality=P.param("jpeg_compression", preset, s))
                assert np.array_equal(np.asarray(Image.open(buf)), o)


@pytest.mark.parametrize("name", ["brightness", "saturate"])
def test_brightness_and_saturate_are_the_hsv_round_trip(name):
    """The closed forms equal RGB -> HSV -> change V or S -> RGB (matplotlib's conversion),
    on grey and black pixels too."""
    from matplotlib.colors import hsv_to_rgb, rgb_to_hsv

    x = images(16).double()
    x[0, :, :4, :4] = 0.0  # black
    x[1, :, :4, :4] = 0.25  # grey
    x[2, 1, :4, :4] = x[2, 0, :4, :4]  # two channels tied at the maximum
    hsv = rgb_to_hsv(x.permute(0, 2, 3, 1).numpy())
    for s in range(1, 6):
        h = hsv.copy()
        if name == "brightness":
            h[..., 2] = np.clip(h[..., 2] + P.param(name, "imagenet", s), 0, 1)
        else:
            mult, add = P.param(name, "imagenet", s)
            h[..., 1] = np.clip(h[..., 1] * mult + add, 0, 1)
        expected = np.clip(hsv_to_rgb(h), 0, 1).transpose(0, 3, 1, 2)
        ours = C.apply(x, name, s, preset="imagenet").numpy()
        assert np.abs(ours - expected).max() < 1e-6  # apply computes in float32


def test_brightness_of_grey():
    gray = torch.full((1, 3, 8, 8), 0.5)
    assert torch.allclose(
        C.apply(gray, "brightness", 5, preset="cifar"), torch.full_like(gray, 0.8), atol=1e-6
    )


def test_motion_blur_kernel_is_a_horizontal_line_at_angle_zero():
    x = torch.zeros(1, 3, 9, 9)
    x[..., 4, 4] = 1.0
    out = C._motion_blur(x, 2, 1.0, np.array([0.0]))
    assert out[0, 0, 4, :].sum() == pytest.approx(1.0, abs=1e-6)  # all mass on the same row
    assert out[0, 0, 4, :4].sum() > 0 and out[0, 0, 4, 5:].sum() == 0  # streak on one side only


def test_frost_texture_statistics():
    gen = torch.Generator().manual_seed(0)
    tex = C.frost_texture(4, 32, 32, 0.2, gen, torch.device("cpu"))
    means = tex.mean((0, 2, 3))
    assert torch.allclose(means, torch.tensor(C.FROST_MEAN), atol=0.05)


def test_bad_inputs():
    x = images(16)
    with pytest.raises(UnknownName, match="fog"):
        C.apply(x, "fogg", 1)
    for bad in (0, 6, 2.5):
        with pytest.raises(ConfigError, match="severity"):
            C.apply(x, "fog", bad)
    with pytest.raises(ConfigError, match="preset"):
        C.apply(x, "fog", 1, preset="svhn")
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        C.apply(x * 255, "fog", 1)
    with pytest.raises(ConfigError, match=r"\(N, 3, H, W\)"):
        C.apply(x[0], "fog", 1)
    with pytest.raises(ConfigError, match="float"):
        C.apply((x * 255).to(torch.uint8), "fog", 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_shapes():
    x = images(32).cuda()
    for name in C.names():
        out = C.apply(x, name, 3)
        assert out.device == x.device and out.shape == x.shape


# ---------------------------------------------------------------------------------------------- CIFAR-C


def _write_cifar_c(root, n_per=4, corruption="fog"):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5 * n_per, 32, 32, 3), dtype=np.uint8)
    for s in range(5):
        x[s * n_per : (s + 1) * n_per, 0, 0, 0] = s + 1  # mark the severity block
    y = np.tile(np.arange(n_per) % 10, 5).astype(np.uint8)
    np.save(root / f"{corruption}.npy", x)
    np.save(root / "labels.npy", y)
    return x, y


def test_load_cifar_c(tmp_path):
    x, y = _write_cifar_c(tmp_path)
    all_sev = C.load_cifar_c(tmp_path, "fog")
    assert len(all_sev) == 20 and all_sev.y.dtype == np.int64
    three = C.load_cifar_c(tmp_path, "fog", severity=3)
    assert len(three) == 4 and (three.x[:, 0, 0, 0] == 3).all()
    both = C.load_cifar_c(tmp_path, "fog", severity=[1, 5])
    assert list(both.x[:, 0, 0, 0]) == [1] * 4 + [5] * 4
    assert np.array_equal(both.y, np.concatenate([y[:4], y[16:]]))


def test_load_cifar_c_errors(tmp_path):
    with pytest.raises(DataError, match=r"snow\.npy.*zenodo\.org/record/2535967"):
        C.load_cifar_c(tmp_path, "snow")
    _write_cifar_c(tmp_path)
    with pytest.raises(ConfigError):
        C.load_cifar_c(tmp_path, "fog", severity=6)
    np.save(tmp_path / "labels.npy", np.zeros(7, dtype=np.uint8))
    with pytest.raises(DataError, match="labels"):
        C.load_cifar_c(tmp_path, "fog")
    np.save(tmp_path / "fog.npy", np.zeros((20, 32, 32, 3), dtype=np.float32))
    with pytest.raises(DataError, match="uint8"):
        C.load_cifar_c(tmp_path, "fog")
    (tmp_path / "fog.npy").write_bytes(b"not a numpy file")
    with pytest.raises(DataError, match="cannot read"):
        C.load_cifar_c(tmp_path, "fog")
    np.save(tmp_path / "fog.npy", np.zeros((7, 32, 32, 3), dtype=np.uint8))
    np.save(tmp_path / "labels.npy", np.zeros(7, dtype=np.uint8))
    with pytest.raises(DataError, match="5 severities"):
        C.load_cifar_c(tmp_path, "fog")


# The severity tables of Hendrycks' published code, typed from the sources (not from PARAMS);
# the file names each table's source.
PUBLISHED = json.loads((Path(__file__).parent / "data" / "hendrycks_corruption_params.json").read_text())


def _same(table, expected):
    if len(table) != len(expected):
        return False
    pairs = zip(table, expected, strict=True)
    return all(np.allclose(np.atleast_1d(a), np.atleast_1d(b), rtol=0, atol=1e-9) for a, b in pairs)


@pytest.mark.parametrize("name", C.names())
def test_parameter_tables_match_the_published_code(name):
    assert set(P.PARAMS) == set(C.names())
    expected = {
        "cifar": PUBLISHED["cifar"][name],
        "imagenet": PUBLISHED["imagenet"][name],
        "imagenet16": PUBLISHED["imagenet16_elastic_transform"]
        if name == "elastic_transform"
        else PUBLISHED["imagenet"][name],
    }
    for preset, table in expected.items():
        assert _same([P.param(name, preset, s) for s in range(1, 6)], table), preset
    assert set(P.PARAMS[name]) <= set(C.PRESETS)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_apply_never_changes_its_input(layout):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)).contiguous(memory_format=layout)
    saved = x.clone()
    for name in C.names("all"):
        out = C.apply(x, name, 3, preset="imagenet")
        assert (
            out.shape == x.shape and out.dtype == x.dtype and float(out.min()) >= 0 and float(out.max()) <= 1
        )
        assert torch.equal(x, saved), name


def test_shot_noise_draws_poisson_counts_of_8bit_images():
    """8-bit images take the inverse-CDF tables, other images numpy's sampler: both are
    Poisson(x * c) / c (counts integer, mean and variance lam per grey level)."""
    c = P.param("shot_noise", "imagenet", 2)
    levels = torch.tensor([0, 30, 60, 100])  # lam well below c: the clip at 1 never acts
    for x in (
        (levels.float() / 255).view(1, 1, 1, 4).expand(64, 3, 32, 4).contiguous(),  # 8-bit
        ((levels.float() + 0.3) / 255).clamp(0, 1).view(1, 1, 1, 4).expand(64, 3, 32, 4).contiguous(),
    ):
        counts = C.apply(x, "shot_noise", 2, seed=3, preset="imagenet").double() * c
        assert torch.allclose(counts, counts.round(), atol=1e-4)
        for j in range(4):
            lam = float(x[0, 0, 0, j]) * c
            sample = counts[..., j].flatten()
            assert abs(float(sample.mean()) - lam) < 0.05 * lam + 0.01
            assert abs(float(sample.var()) - lam) < 0.1 * lam + 0.01
    cdf, guide = C._poisson_tables(float(c))
    lv = np.random.default_rng(0).integers(0, 256, 20000).astype(np.int32)
    draws = C._poisson_8bit(lv, float(c), np.random.default_rng(1))
    u = np.random.default_rng(1).random(lv.shape)
    expected = [np.searchsorted(cdf[a], b, "right") for a, b in zip(lv, u, strict=True)]
    assert np.array_equal(draws, expected)  # the first count whose CDF exceeds the uniform


def test_spatter_pieces_match_cv2_and_scipy():
    """The water branch's re-implementations against cv2 (Canny, equalizeHist, the emboss filter2D,
    8-bit blur) and scipy's exact distance transform, on spatter-like liquid layers."""
    cv2 = pytest.importorskip("cv2", reason="opencv (the dev extra) is not installed")
    from scipy.ndimage import distance_transform_edt

    g = torch.Generator().manual_seed(0)
    liquid = C._gaussian(0.65 + 0.3 * torch.randn((6, 1, 48, 40), generator=g), 2)
    liquid = liquid.masked_fill(liquid < 0.68, 0.0)
    liquid8 = torch.floor(liquid[:, 0] * 255).remainder(256).numpy().astype(np.uint8)
    edges = C._canny(liquid8, 50, 150)
    assert edges.any()
    assert np.array_equal(edges, np.stack([cv2.Canny(im, 50, 150) > 0 for im in liquid8]))
    edges[-1] = False  # an image without edges: distance capped everywhere
    exact = np.stack(
        [np.minimum(distance_transform_edt(~e), 20) if e.any() else np.full(e.shape, 20.0) for e in edges]
    )
    assert np.array_equal(C._edge_distance(edges, 20), exact)
    levels = np.random.default_rng(0).integers(0, 256, (3, 20, 24)).astype(np.uint8)
    levels[1] = 7  # one grey level
    assert np.array_equal(C._equalize_hist(levels), np.stack([cv2.equalizeHist(im) for im in levels]))
    kernel = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
    assert np.array_equal(C._emboss(levels), np.stack([cv2.filter2D(im, cv2.CV_8U, kernel) for im in levels]))
    blurred = np.rint(C._box_sum3(levels.astype(np.int16)) / 9).astype(np.uint8)
    assert np.array_equal(blurred, np.stack([cv2.blur(im, (3, 3)) for im in levels]))


@pytest.mark.parametrize("name", ["defocus_blur", "zoom_blur", "gaussian_noise", "shot_noise"])
def test_chunked_corruptions(name, monkeypatch):
    """On the CPU a large batch runs in cache-sized chunks: the same pictures for deterministic
    corruptions, deterministic draws for random ones; an input that aliases nothing is unchanged."""
    x = images(32, n=5)
    whole = C.apply(x, name, 3, seed=1, preset="imagenet")
    monkeypatch.setattr(C, "_CHUNK_PIXELS", 2 * 32 * 32)  # chunks of 2 images
    chunked = C.apply(x, name, 3, seed=1, preset="imagenet")
    assert chunked.shape == x.shape and float(chunked.min()) >= 0 and float(chunked.max()) <= 1
    assert torch.equal(chunked, C.apply(x, name, 3, seed=1, preset="imagenet"))
    if name not in RANDOM:
        assert torch.equal(chunked, whole)
    assert torch.equal(x, images(32, n=5))
