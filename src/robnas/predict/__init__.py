"""Few-shot robustness predictors: fit on n labelled architectures, rank the rest.

:mod:`robnas.predict.model` (features, LightGBM fit, save/load), :mod:`robnas.predict.data`
(score files and labels), :mod:`robnas.objectives.predict` (the ``predict:MODEL`` search
objective, registered in :data:`robnas.objectives.OBJECTIVES`).
"""

from robnas.predict.data import (
    benchmark_labels,
    csv_labels,
    fit_files,
    open_benchmark,
    predict_table,
    proxy_table,
    score_and_predict,
    score_settings,
)
from robnas.predict.model import DEFAULT_PARAMS, Predictor, encode, feature_matrix, fit, load, save

__all__ = [
    "DEFAULT_PARAMS",
    "Predictor",
    "benchmark_labels",
    "csv_labels",
    "encode",
    "feature_matrix",
    "fit",
    "fit_files",
    "load",
    "open_benchmark",
    "predict_table",
    "proxy_table",
    "save",
    "score_and_predict",
    "score_settings",
]
