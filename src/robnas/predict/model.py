"""A few-shot robustness predictor: proxy values and an architecture encoding -> a robustness target.

Given n labelled architectures (robust accuracies from a benchmark, or from short trainings),
the predictor learns their target from zero-cost proxy values and the architecture itself, and
ranks unlabelled candidates. It is a gradient-boosted tree ensemble of LightGBM (Ke et al.,
"LightGBM: A Highly Efficient Gradient Boosting Decision Tree", NeurIPS 2017), chosen because:

* trees only use the order of each feature, so proxy values spanning many orders of magnitude
  (croze ~1e9, ntk_condnum ~1e4) need no scaling and no reference pool to rank against;
* a LightGBM model is plain text (its own format), so a predictor file is JSON that loads
  without pickle (scikit-learn estimators need pickle, which runs code on load); the file keeps
  the text's SHA-256, checked before LightGBM parses it;
* small trees fit 10 to 200 labels in a fraction of a second on one CPU thread.

The settings (:data:`DEFAULT_PARAMS`: 7 leaves, at least 2 labels per leaf, extremely randomised
splits, 600 rounds at learning rate 0.02, raw labels) were chosen on the development half of the
NB201 split only (:mod:`robnas.holdout`). With 100 development labels, scored on the other
development classes, fgsm@8 (``benchmarks/results/robust_proxy.md``, section 1; 18 proxies plus
``robust_zc``): this model 0.906 Spearman; without ``robust_zc`` 0.902, without the architecture
encoding 0.906, without the proxies 0.831, labels as ranks 0.903, 4 or 15 leaves 0.908 / 0.899,
scikit-learn's HistGradientBoosting 0.896, extra trees 0.905, a Gaussian process on ranks 0.884,
a ridge regression on ranks 0.861 (draw-to-draw sd about 0.01). On the test half, fitted on 100
development labels: 0.910 ± 0.011 over 10 draws, against params 0.790 and ``robust_zc`` 0.868.

Features, in order (:func:`feature_matrix`):

* per proxy, ``sign(v) * log(1 + |v|)`` (monotone, so only readability changes; NaN stays NaN
  and LightGBM routes it as missing);
* per decision variable of the space's categorical encoding
  (:meth:`~robnas.spaces.base.SearchSpace.categorical_choices`), one indicator per choice
  (NB201: 6 edges x 5 operations);
* per choice value, the number of variables taking it (NB201: how many edges hold each operation).

>>> import numpy as np
>>> from robnas import spaces
>>> space = spaces.get("nb201")
>>> archs = [space.format(space.sample(i)) for i in range(40)]
>>> values = np.arange(40.0)[:, None]
>>> model = fit(space, archs, np.arange(40.0), values, ["toy"], "demo")
>>> float(np.corrcoef(model.predict(space, archs, values), np.arange(40.0))[0, 1]) > 0.9
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robnas.errors import ConfigError, DataError, InvalidArchitecture
from robnas.spaces.base import SearchSpace

#: The first line of the JSON a predictor file holds (``format``).
FORMAT = "robnas-predictor"
VERSION = 2  # 2: the sha256 covers every field, not only the model text
#: LightGBM settings chosen on the development half (see the module docstring).
DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "regression",
    "num_leaves": 7,
    "min_data_in_leaf": 2,
    "min_data_in_bin": 1,
    "learning_rate": 0.02,
    "num_boost_round": 600,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "feature_fraction": 0.8,
    "extra_trees": True,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}


def encode(space: SearchSpace, archs: Sequence[Any]) -> tuple[np.ndarray, list[str]]:
    """The architecture part of the features: ``(len(archs), m)`` indicators and choice counts,
    with their names (``edge0=nor_conv_3x3``, ``count:nor_conv_3x3``)."""
    variables = space.categorical_choices()
    names = [f"{var}={choice}" for var, choices in variables for choice in choices]
    values = list(dict.fromkeys(c for _, choices in variables for c in choices))
    names += [f"count:{v}" for v in values]
    column = {name: i for i, name in enumerate(names)}
    out = np.zeros((len(archs), len(names)))
    for i, arch in enumerate(archs):
        parsed = space.parse(arch) if isinstance(arch, str) else arch
        for var, choice in space.to_choices(parsed).items():
            out[i, column[f"{var}={choice}"]] = 1.0
            out[i, column[f"count:{choice}"]] += 1.0
    return out, names


def feature_matrix(
    space: SearchSpace, archs: Sequence[Any], values: np.ndarray, proxies: Sequence[str]
) -> tuple[np.ndarray, list[str]]:
    """Features of ``archs`` (see the module docstring) from their proxy ``values``
    ``(len(archs), len(proxies))``; returns the matrix and the feature names."""
    values = np.asarray(values, dtype=np.float64).reshape(len(archs), len(proxies))
    arch_part, arch_names = encode(space, archs)
    with np.errstate(invalid="ignore"):
        proxy_part = np.sign(values) * np.log1p(np.abs(values))
    proxy_part[~np.isfinite(values)] = np.nan
    return np.hstack([proxy_part, arch_part]), [f"proxy:{p}" for p in proxies] + arch_names


@dataclass
class Predictor:
    """A fitted predictor: its space, target, proxies and feature names, and the LightGBM model."""

    space: str
    target: str
    proxies: list[str]
    features: list[str]
    model: str
    n_train: int
    labels: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    #: how the proxy values it learnt from were computed: ``batch_size``, ``seed`` and the
    #: network ``build_options`` (``{"C": 16, "layers": 8}``), where known; ``predict apply
    #: --archs`` scores candidates the same way
    scoring: dict[str, Any] = field(default_factory=dict)
    _booster: Any = field(default=None, repr=False, compare=False)

    def booster(self) -> Any:
        """The LightGBM booster (parsed from :attr:`model` once)."""
        if self._booster is None:
            self._booster = _lightgbm().Booster(model_str=self.model)
        return self._booster

    def predict(self, space: SearchSpace, archs: Sequence[Any], values: np.ndarray) -> np.ndarray:
        """Predicted target of ``archs`` (higher = more robust) from their proxy ``values``
        ``(len(archs), len(self.proxies))``, columns in the order of :attr:`proxies`."""
        if space.name != self.space:
            raise ConfigError(f"this predictor was fitted on space {self.space!r}, not {space.name!r}")
        x, names = feature_matrix(space, archs, values, self.proxies)
        if names != self.features:
            raise DataError(
                f"the {space.name} encoding gives {len(names)} features, the predictor has {len(self.features)}"
            )
        return np.asarray(self.booster().predict(x), dtype=np.float64)


def fit(
    space: SearchSpace,
    archs: Sequence[Any],
    labels: Sequence[float] | np.ndarray,
    values: np.ndarray,
    proxies: Sequence[str],
    target: str,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    label_source: str = "",
    scoring: dict[str, Any] | None = None,
) -> Predictor:
    """Fit a predictor of ``labels`` (one per architecture of ``archs``) from proxy ``values``
    ``(len(archs), len(proxies))`` and the architecture encoding; ``params`` override
    :data:`DEFAULT_PARAMS` (LightGBM parameter names, plus ``num_boost_round``)."""
    lightgbm = _lightgbm()
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim != 1 or len(y) != len(archs):
        raise ConfigError(f"need one label per architecture: {len(archs)} archs, labels of shape {y.shape}")
    if len(archs) < 4:
        raise ConfigError(f"a predictor needs at least 4 labelled architectures, got {len(archs)}")
    if not np.isfinite(y).all():
        raise DataError(f"{int((~np.isfinite(y)).sum())} labels are NaN or infinite")
    chosen = {**DEFAULT_PARAMS, **(params or {})}
    rounds = int(chosen.pop("num_boost_round"))
    chosen["seed"] = seed
    x, names = feature_matrix(space, archs, values, proxies)
    data = lightgbm.Dataset(x, label=y, feature_name=[_safe(n) for n in names], params={"verbosity": -1})
    booster = lightgbm.train(chosen, data, num_boost_round=rounds)
    return Predictor(
        space=space.name,
        target=target,
        proxies=list(proxies),
        features=names,
        model=booster.model_to_string(),
        n_train=len(archs),
        labels=label_source,
        params={**chosen, "num_boost_round": rounds},
        scoring=dict(scoring or {}),
        _booster=booster,
    )


def _lightgbm() -> Any:
    """The LightGBM module; a clear error where it or its OpenMP runtime is missing."""
    try:
        import lightgbm
    except (ImportError, OSError) as exc:  # OSError: libgomp.so.1 missing (Linux: apt install libgomp1)
        raise ConfigError(
            f"robnas.predict needs LightGBM and its OpenMP runtime ({_first_line(exc)}); "
            "pip install lightgbm, and on Linux install libgomp1"
        ) from None
    return lightgbm


def _safe(name: str) -> str:
    """A LightGBM feature name (no JSON special characters)."""
    return "".join(c if c.isalnum() or c in "_-.@" else "_" for c in name)


def save(predictor: Predictor, path: str | Path) -> Path:
    """Write ``predictor`` as one JSON file (the LightGBM model as text inside)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "format": FORMAT,
        "version": VERSION,
        "space": predictor.space,
        "target": predictor.target,
        "proxies": predictor.proxies,
        "features": predictor.features,
        "n_train": predictor.n_train,
        "labels": predictor.labels,
        "params": predictor.params,
        "scoring": predictor.scoring,
        "model": predictor.model,
    }
    body["sha256"] = _digest(body)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=1) + "\n")
    tmp.replace(path)
    return path


def load(path: str | Path) -> Predictor:
    """A predictor written by :func:`save`; a missing, corrupt or foreign file is a
    :class:`DataError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"predictor file {path} does not exist; write one with `robnas predict fit`")
    hint = "expected a predictor written by `robnas predict fit`"
    try:
        body = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"predictor file {path} is corrupt ({type(exc).__name__}: {exc}); {hint}") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise DataError(f"predictor file {path} is not a robnas predictor; {hint}")
    if body.get("version") != VERSION:
        raise DataError(f"predictor file {path} has version {body.get('version')!r}, this robnas reads {VERSION}")
    try:
        predictor = Predictor(
            space=str(body["space"]),
            target=str(body["target"]),
            proxies=[str(p) for p in body["proxies"]],
            features=[str(f) for f in body["features"]],
            model=str(body["model"]),
            n_train=int(body["n_train"]),
            labels=str(body.get("labels", "")),
            params=dict(body.get("params", {})),
            scoring=dict(body.get("scoring", {})),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"predictor file {path} lacks {exc} or has a wrong type; {hint}") from None
    if _digest(body) != body.get("sha256"):
        # an edited target or proxy order would give wrong predictions, and LightGBM may abort the
        # process on a damaged model text: the digest covers every field and is checked first
        raise DataError(
            f"predictor file {path}: its contents do not match its sha256 (edited or damaged); {hint}"
        )
    try:
        booster = predictor.booster()
    except ConfigError:
        raise
    except Exception as exc:  # LightGBM raises its own LightGBMError for a damaged model text
        raise DataError(f"predictor file {path}: its model does not load ({_first_line(exc)}); {hint}") from None
    if booster.num_feature() != len(predictor.features):
        raise DataError(
            f"predictor file {path}: the model has {booster.num_feature()} features, the file lists "
            f"{len(predictor.features)}; {hint}"
        )
    return predictor


def _digest(body: dict[str, Any]) -> str:
    """SHA-256 of every field of a predictor file but ``sha256`` itself (canonical JSON)."""
    fields = {k: v for k, v in body.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def check_archs(space: SearchSpace, archs: Sequence[str]) -> list[str]:
    """The canonical strings of ``archs``; :class:`InvalidArchitecture` names the first bad one."""
    out = []
    for i, text in enumerate(archs):
        try:
            out.append(space.canonical_string(str(text)))
        except InvalidArchitecture as exc:
            raise InvalidArchitecture(f"architecture {i + 1} ({text!r}): {exc}") from None
    return out

