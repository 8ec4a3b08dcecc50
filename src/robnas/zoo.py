"""Published (robust) architectures by name, timm-style.

>>> from robnas import zoo
>>> zoo.list_models("robnet_*")[:2]
['robnet_large_v1', 'robnet_large_v2']
>>> net = zoo.create_model("robnet_large_v1")            # untrained, 10 classes, 32x32 input
>>> round(zoo.model_info("robnet_large_v1").params_m, 3)
6.843

Every entry names its search space, its architecture text (the genotype or RobNet code as
published), the width ``C`` and depth ``layers`` its authors trained, its default number of
classes and input size, and where the architecture comes from. The hand-designed baselines of
robust training (``resnet18``, ``preact_resnet18``, ``wrn_28_10``, ``wrn_34_10``;
:mod:`robnas.baselines`) are entries of space ``baseline``, used the same way. Parameters are counted as
the DARTS / CRoZe ``count_parameters_in_MB`` does (auxiliary head excluded); FLOPs are
multiply-accumulates of the convolutions and linear layers for one image at the default size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robnas import baselines, spaces
from robnas.errors import ConfigError
from robnas.registry import Registry
from robnas.spaces.darts import count_parameters


@dataclass(frozen=True)
class ZooModel:
    """One published architecture and the configuration it was published with.

    A hand-designed baseline has no search space: ``space`` is ``"baseline"``, ``arch`` describes
    it, ``builder(num_classes=..., **builder_options, **options)`` builds it, ``C`` is its stem
    width and ``layers`` its depth.
    """

    name: str
    space: str
    arch: str
    C: int = 36
    layers: int = 20
    num_classes: int = 10
    input_size: tuple[int, int, int] = (3, 32, 32)
    imagenet: bool = False
    reported_params_m: float | None = None
    source: str = ""
    builder: Callable[..., nn.Module] | None = None
    builder_options: tuple[tuple[str, Any], ...] = ()

    def build_options(self) -> dict[str, Any]:
        if self.builder is not None:
            return dict(self.builder_options)
        options: dict[str, Any] = {"C": self.C, "layers": self.layers}
        if self.imagenet:
            options["imagenet"] = True
        return options


@dataclass(frozen=True)
class ModelInfo:
    """What :func:`model_info` reports: the entry, its architecture text, size and cost."""

    name: str
    space: str
    genotype: str
    C: int
    layers: int
    num_classes: int
    input_size: tuple[int, int, int]
    params_m: float
    flops_m: float
    reported_params_m: float | None
    source: str


MODELS: Registry[ZooModel] = Registry("zoo model")


def _add(entry: ZooModel) -> None:
    MODELS.register(entry.name, entry, space=entry.space)


# ---------------------------------------------------------------------------------------
# RobNets (Guo et al., CVPR 2020): codes from gmh14/RobNets architecture_code.py, written as
# base-4 digits (0=00, 1=01, 2=10, 3=11); robnet_small from Wsr-NAS's copy of that file.

_ROBNET_LARGE = "33333131231113"
_ROBNET_FREE = ",".join(
    [
        "32332311233031",
        "30121022013230",
        "33311310202203",
        "23211221230012",
        "33102221210213",
        "32333123021313",
        "33322132122212",
        "13331333131320",
        "33333113210213",
        "23103323133330",
        "32300030120123",
        "13133223231320",
        "33221023312201",
        "13331131133122",
        "13333101223223",
        "33033101203133",
        "33133232222233",
        "23133130330201",
        "32333332303133",
        "33113310020113",
    ]
)
_RN = "RobNets (Guo et al., CVPR 2020), gmh14/RobNets architecture_code.py"
_add(ZooModel("robnet_large_v1", "robnet", _ROBNET_LARGE, 36, 20, reported_params_m=6.9, source=_RN))
_add(ZooModel("robnet_large_v2", "robnet", _ROBNET_LARGE, 64, 33, reported_params_m=33.3, source=_RN))
_add(ZooModel("robnet_free", "robnet-free", _ROBNET_FREE, 36, 20, source=_RN))
_add(
    ZooModel(
        "robnet_small",
        "robnet",
        "33123210120232",
        36,
        20,
        reported_params_m=4.4,
        source="RobNet-S as shipped by Wsr-NAS (zhicheng2T0/Wsr-NAS search/architecture_code.py)",
    )
)
_add(
    ZooModel(
        "robnet_large_imagenet",
        "robnet",
        _ROBNET_LARGE,
        48,
        20,
        num_classes=1000,
        input_size=(3, 224, 224),
        imagenet=True,
        source=_RN + " (RobNet_large_imgnet config)",
    )
)

# ---------------------------------------------------------------------------------------
# DARTS-space genotypes. WsrNets: zhicheng2T0/Wsr-NAS retrain/genotypes.py (cna_r, cna_m,
# cna_m_1, cna_n, WsrNet_Plus) with the widths of its retrain/script/*.sh.

_WSR = "Wsr-NAS (Cheng et al., AAAI 2023), zhicheng2T0/Wsr-NAS retrain/genotypes.py"
_CNA_R = (
    "Genotype(normal=[('dil_conv_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_5x5', 0), ('avg_pool_3x3', 1), "
    "('dil_conv_5x5', 2), ('dil_conv_3x3', 3), ('avg_pool_3x3', 1), ('sep_conv_5x5', 0)], "
    "normal_concat=range(2, 6), reduce=[('sep_conv_3x3', 1), ('dil_conv_5x5', 0), ('avg_pool_3x3', 2), "
    "('max_pool_3x3', 1), ('sep_conv_3x3', 1), ('dil_conv_5x5', 2), ('sep_conv_3x3', 4), "
    "('avg_pool_3x3', 2)], reduce_concat=range(2, 6))"
)
_CNA_M = (
    "Genotype(normal=[('dil_conv_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_5x5', 0), ('avg_pool_3x3', 1), "
    "('dil_conv_5x5', 2), ('dil_conv_3x3', 3), ('avg_pool_3x3', 1), ('sep_conv_3x3', 0)], "
    "normal_concat=range(2, 6), reduce=[('sep_conv_3x3', 1), ('dil_conv_5x5', 0), ('max_pool_3x3', 1), "
    "('avg_pool_3x3', 2), ('dil_conv_5x5', 2), ('sep_conv_3x3', 1), ('sep_conv_3x3', 4), "
    "('avg_pool_3x3', 2)], reduce_concat=range(2, 6))"
)
_CNA_M_1 = (
    "Genotype(normal=[('dil_conv_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_5x5', 0), ('avg_pool_3x3', 1), "
    "('dil_conv_5x5', 2), ('dil_conv_3x3', 3), ('sep_conv_5x5', 0), ('avg_pool_3x3', 1)], "
    "normal_concat=range(2, 6), reduce=[('sep_conv_3x3', 1), ('dil_conv_3x3', 0), ('avg_pool_3x3', 2), "
    "('max_pool_3x3', 1), ('sep_conv_3x3', 1), ('dil_conv_5x5', 2), ('sep_conv_3x3', 4), "
    "('max_pool_3x3', 2)], reduce_concat=range(2, 6))"
)
_CNA_N = (
    "Genotype(normal=[('dil_conv_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_5x5', 0), ('avg_pool_3x3', 1), "
    "('dil_conv_5x5', 2), ('dil_conv_3x3', 3), ('max_pool_3x3', 0), ('skip_connect', 4)], "
    "normal_concat=range(2, 6), reduce=[('dil_conv_5x5', 0), ('sep_conv_3x3', 1), ('max_pool_3x3', 1), "
    "('avg_pool_3x3', 2), ('dil_conv_5x5', 2), ('dil_conv_3x3', 3), ('max_pool_3x3', 2), "
    "('dil_conv_3x3', 0)], reduce_concat=range(2, 6))"
)
_WSRNET_PLUS = (
    "Genotype(normal=[('dil_conv_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_5x5', 0), ('avg_pool_3x3', 1), "
    "('dil_conv_3x3', 3), ('dil_conv_5x5', 2), ('sep_conv_5x5', 0), ('avg_pool_3x3', 1)], "
    "normal_concat=range(2, 6), reduce=[('sep_conv_3x3', 1), ('dil_conv_3x3', 0), ('avg_pool_3x3', 2), "
    "('max_pool_3x3', 1), ('sep_conv_3x3', 1), ('dil_conv_5x5', 2), ('sep_conv_3x3', 4), "
    "('max_pool_3x3', 2)], reduce_concat=range(2, 6))"
)
_add(ZooModel("wsrnet_basic", "darts", _CNA_R, 45, 20, reported_params_m=4.5, source=_WSR + " (cna_r)"))
_add(
    ZooModel(
        "wsrnet_robust",
        "darts",
        _CNA_R,
        45,
        20,
        reported_params_m=4.5,
        source=_WSR + " (cna_r, the WsrNet-Basic genotype trained with another recipe)",
    )
)
_add(ZooModel("wsrnet_m", "darts", _CNA_M, 45, 20, source=_WSR + " (cna_m)"))
_add(ZooModel("wsrnet_m_1", "darts", _CNA_M_1, 45, 20, source=_WSR + " (cna_m_1)"))
_add(ZooModel("wsrnet_n", "darts", _CNA_N, 50, 20, source=_WSR + " (cna_n)"))
_add(
    ZooModel(
        "wsrnet_plus", "darts", _WSRNET_PLUS, 46, 20, reported_params_m=4.7, source=_WSR + " (WsrNet_Plus)"
    )
)
_add(
    ZooModel(
        "wsrnet_basic_imagenet",
        "darts",
        _CNA_R,
        74,
        20,
        num_classes=1000,
        input_size=(3, 224, 224),
        imagenet=True,
        source=_WSR + " (cna_r, train_ImgNet_WsrNet_basic.sh)",
    )
)

# CRoZe (Ha et al., NeurIPS 2023): train.py of the official code. 14 pairs per cell in the
# darts-croze space; counted with the number of classes of the dataset they were searched on.
_CROZE = "CRoZe (Ha et al., NeurIPS 2023), train.py"
_CROZE_CIFAR10 = (
    "Genotype(normal=[('avg_pool_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_5x5', 0), ('dil_conv_3x3', 1), "
    "('max_pool_3x3', 2), ('sep_conv_3x3', 0), ('avg_pool_3x3', 1), ('skip_connect', 2), "
    "('dil_conv_3x3', 3), ('sep_conv_5x5', 0), ('dil_conv_5x5', 1), ('sep_conv_3x3', 2), "
    "('skip_connect', 3), ('sep_conv_7x7', 4)], normal_concat=[4, 5, 3, 4], "
    "reduce=[('avg_pool_3x3', 0), ('sep_conv_5x5', 1), ('conv_7x1_1x7', 0), ('sep_conv_5x5', 1), "
    "('sep_conv_5x5', 2), ('conv_7x1_1x7', 0), ('sep_conv_7x7', 1), ('dil_conv_3x3', 2), "
    "('dil_conv_3x3', 3), ('dil_conv_3x3', 0), ('sep_conv_7x7', 1), ('conv_7x1_1x7', 2), "
    "('dil_conv_3x3', 3), ('sep_conv_3x3', 4)], reduce_concat=[3, 2, 5, 5])"
)
_CROZE_CIFAR100 = (
    "Genotype(normal=[('max_pool_3x3', 0), ('sep_conv_7x7', 1), ('avg_pool_3x3', 0), ('sep_conv_7x7', 1), "
    "('max_pool_3x3', 2), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_3x3', 2), "
    "('sep_conv_5x5', 3), ('sep_conv_7x7', 0), ('sep_conv_3x3', 1), ('skip_connect', 2), "
    "('sep_conv_3x3', 3), ('skip_connect', 4)], normal_concat=[2, 2, 4, 5], "
    "reduce=[('sep_conv_3x3', 0), ('dil_conv_5x5', 1), ('sep_conv_3x3', 0), ('avg_pool_3x3', 1), "
    "('avg_pool_3x3', 2), ('sep_conv_7x7', 0), ('dil_conv_3x3', 1), ('sep_conv_5x5', 2), "
    "('avg_pool_3x3', 3), ('dil_conv_3x3', 0), ('max_pool_3x3', 1), ('avg_pool_3x3', 2), "
    "('dil_conv_5x5', 3), ('avg_pool_3x3', 4)], reduce_concat=[3, 4, 5, 5])"
)
_CROZE_IMAGENET16 = (
    "Genotype(normal=[('dil_conv_5x5', 0), ('avg_pool_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), "
    "('avg_pool_3x3', 2), ('dil_conv_3x3', 0), ('skip_connect', 1), ('sep_conv_3x3', 2), "
    "('avg_pool_3x3', 3), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1), ('sep_conv_3x3', 2), "
    "('skip_connect', 3), ('sep_conv_7x7', 4)], normal_concat=[2, 5, 3, 4], "
    "reduce=[('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('sep_conv_5x5', 0), ('dil_conv_3x3', 1), "
    "('skip_connect', 2), ('dil_conv_3x3', 0), ('max_pool_3x3', 1), ('sep_conv_5x5', 2), "
    "('sep_conv_7x7', 3), ('skip_connect', 0), ('conv_7x1_1x7', 1), ('max_pool_3x3', 2), "
    "('dil_conv_3x3', 3), ('avg_pool_3x3', 4)], reduce_concat=[3, 3, 4, 5])"
)
_add(ZooModel("croze_cifar10", "darts-croze", _CROZE_CIFAR10, source=_CROZE + " CROZE_CIFAR10"))
_add(
    ZooModel(
        "croze_cifar100", "darts-croze", _CROZE_CIFAR100, num_classes=100, source=_CROZE + " CROZE_CIFAR100"
    )
)
_add(
    ZooModel(
        "croze_imagenet16",
        "darts-croze",
        _CROZE_IMAGENET16,
        num_classes=120,
        input_size=(3, 16, 16),
        source=_CROZE + " CROZE_IMAGENET (ImageNet16-120)",
    )
)

# Standard-DARTS baselines (all C=36, 20 cells, CIFAR-10 unless named otherwise).
_DARTS_V1 = (
    "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
    "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
    "('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])"
)
_DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
    "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)
_PDARTS = (
    "Genotype(normal=[('skip_connect', 0), ('dil_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3', 0), ('dil_conv_5x5', 4)], "
    "normal_concat=range(2, 6), reduce=[('avg_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 0), "
    "('dil_conv_5x5', 2), ('max_pool_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_3x3', 1), "
    "('dil_conv_5x5', 3)], reduce_concat=range(2, 6))"
)
_PC_DARTS = (
    "Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1), "
    "('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], "
    "normal_concat=range(2, 6), reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), "
    "('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 2)], reduce_concat=range(2, 6))"
)
_DRNAS = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2), "
    "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2), ('dil_conv_5x5', 3)], "
    "normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('dil_conv_5x5', 2), "
    "('sep_conv_5x5', 1), ('sep_conv_5x5', 1), ('dil_conv_5x5', 3), ('skip_connect', 4), "
    "('sep_conv_5x5', 1)], reduce_concat=range(2, 6))"
)
_ADVRUSH = (
    "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1)], "
    "normal_concat=range(2, 6), reduce=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), "
    "('dil_conv_3x3', 2), ('skip_connect', 0), ('avg_pool_3x3', 1), ('skip_connect', 0), "
    "('skip_connect', 2)], reduce_concat=range(2, 6))"
)
_RACL = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_5x5', 0), ('skip_connect', 1), "
    "('sep_conv_3x3', 0), ('skip_connect', 3), ('sep_conv_3x3', 3), ('skip_connect', 4)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('sep_conv_3x3', 0), ('sep_conv_5x5', 1), ('avg_pool_3x3', 0), "
    "('dil_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 2), "
    "('dil_conv_3x3', 3)], reduce_concat=[2, 3, 4, 5])"
)
_DARTS_SRC = "DARTS (Liu et al., ICLR 2019), quark0/darts cnn/genotypes.py"
_add(ZooModel("darts_v1", "darts", _DARTS_V1, reported_params_m=3.3, source=_DARTS_SRC + " DARTS_V1"))
_add(ZooModel("darts_v2", "darts", _DARTS_V2, reported_params_m=3.3, source=_DARTS_SRC + " DARTS_V2"))
_add(
    ZooModel(
        "pdarts",
        "darts",
        _PDARTS,
        reported_params_m=3.4,
        source="P-DARTS (Chen et al., ICCV 2019), chenxin061/pdarts genotypes.py PDARTS",
    )
)
_add(
    ZooModel(
        "pc_darts",
        "darts",
        _PC_DARTS,
        reported_params_m=3.6,
        source="PC-DARTS (Xu et al., ICLR 2020), yuhuixu1993/PC-DARTS PC_DARTS_cifar; CRoZe PCDARTS_CIFAR",
    )
)
_add(
    ZooModel(
        "drnas",
        "darts",
        _DRNAS,
        reported_params_m=4.0,
        source="DrNAS (Chen et al., ICLR 2021), xiangning-chen/DrNAS cifar10 genotype; CRoZe DRNAS_CIFAR",
    )
)
_add(
    ZooModel(
        "advrush",
        "darts",
        _ADVRUSH,
        reported_params_m=4.2,
        source="AdvRush (Mok et al., ICCV 2021), as in CRoZe train.py ADV_RUSH and Wsr-NAS ADVRUSH",
    )
)
_add(
    ZooModel(
        "racl",
        "darts",
        _RACL,
        reported_params_m=3.6,
        source="RACL (Dong et al., 2020), Wsr-NAS retrain/genotypes.py RACL",
    )
)
_add(
    ZooModel(
        "advrush_imagenet",
        "darts",
        _ADVRUSH,
        60,
        20,
        num_classes=1000,
        input_size=(3, 224, 224),
        imagenet=True,
        source="AdvRush at C=60 as Wsr-NAS trains it on ImageNet (train_ImgNet_AdvRush.sh)",
    )
)
_add(
    ZooModel(
        "racl_imagenet",
        "darts",
        _RACL,
        64,
        20,
        num_classes=1000,
        input_size=(3, 224, 224),
        imagenet=True,
        source="RACL at C=64 as Wsr-NAS trains it on ImageNet (train_ImgNet_RACL.sh)",
    )
)


# ---------------------------------------------------------------------------------------
# hand-designed baselines of the robust-training literature (robnas.baselines), 32x32 inputs;
# the reported size is the paper's where it gives one (Zagoruyko & Komodakis Table 1: 36.5M).

BASELINE = "baseline"
_add(
    ZooModel(
        "resnet18", BASELINE, "ResNet-18, CIFAR stem (3x3, no max-pool), basic blocks [2, 2, 2, 2]", 64, 18,
        builder=baselines.resnet18,
        source="ResNet-18 (He et al., CVPR 2016) for CIFAR as in kuangliu/pytorch-cifar, used by Madry et al. "
        "(ICLR 2018) and Rice et al. (ICML 2020)",
    )
)  # fmt: skip
_add(
    ZooModel(
        "preact_resnet18", BASELINE, "PreAct-ResNet-18, pre-activation blocks [2, 2, 2, 2], final BN-ReLU", 64,
        18, builder=baselines.preact_resnet18,
        source="PreAct-ResNet-18 of Rice, Wong & Kolter, 'Overfitting in adversarially robust deep learning' "
        "(ICML 2020), locuslab/robust_overfitting preactresnet.py",
    )
)  # fmt: skip
_add(
    ZooModel(
        "wrn_28_10", BASELINE, "WideResNet-28-10, 3 groups of 4 wide blocks (160, 320, 640 channels)", 16, 28,
        reported_params_m=36.5, builder=baselines.wide_resnet, builder_options=(("depth", 28), ("widen_factor", 10)),
        source="WRN-28-10 (Zagoruyko & Komodakis, BMVC 2016); RobustBench's CIFAR-10 L-inf architecture",
    )
)  # fmt: skip
_add(
    ZooModel(
        "wrn_34_10", BASELINE, "WideResNet-34-10, 3 groups of 5 wide blocks (160, 320, 640 channels)", 16, 34,
        builder=baselines.wide_resnet, builder_options=(("depth", 34), ("widen_factor", 10)),
        source="WRN-34-10 of Madry et al. (ICLR 2018) and TRADES (Zhang et al., ICML 2019), "
        "yaodongyu/TRADES models/wideresnet.py (sub_block1=True adds its unused block for its checkpoints)",
    )
)  # fmt: skip


# ---------------------------------------------------------------------------------------
# public API


def list_models(pattern: str = "*") -> list[str]:
    """Zoo names matching a shell wildcard, e.g. ``list_models("wsrnet_*")``."""
    return MODELS.names(pattern)


def get_entry(name: str) -> ZooModel:
    """The registry entry of ``name`` (``UnknownName`` with suggestions if it is not in the zoo)."""
    return MODELS.get(name)


def create_model(name: str, num_classes: int | None = None, **options: Any) -> nn.Module:
    """The untrained network of zoo entry ``name``.

    ``num_classes`` defaults to the entry's (10 for CIFAR-10 models, 100 for croze_cifar100,
    120 for croze_imagenet16, 1000 for the ImageNet ones); ``options`` override the entry's
    build options (``C``, ``layers``, ``imagenet``) or add the space's others
    (``auxiliary``, ``drop_path_prob`` for DARTS spaces; ``drop_rate``, ``sub_block1`` for the
    WideResNets of :mod:`robnas.baselines`).
    """
    entry = MODELS.get(name)
    build_options = {**entry.build_options(), **options}
    classes = entry.num_classes if num_classes is None else num_classes
    if entry.builder is not None:
        try:
            return entry.builder(num_classes=classes, **build_options)
        except TypeError as exc:
            raise ConfigError(f"zoo model {name!r}: {exc}") from None
    space = spaces.get(entry.space)
    return space.build(space.parse(entry.arch), classes, **build_options)


def count_flops(model: nn.Module, input_size: tuple[int, int, int] = (3, 32, 32)) -> int:
    """Multiply-accumulates of every Conv2d and Linear for one image of ``input_size``.

    Runs one forward pass in eval mode on ``model``'s device (``meta`` works, so no memory
    or compute is spent on real tensors).
    """
    total = 0

    def on_conv(module: nn.Conv2d, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
        total += output[0].numel() * per_output

    def on_linear(module: nn.Linear, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        total += module.in_features * module.out_features

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(on_conv))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(on_linear))
    was_training = model.training
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_size), device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total


def model_info(name: str) -> ModelInfo:
    """Space, architecture text, parameters (millions, auxiliary excluded) and FLOPs
    (millions of multiply-accumulates at the entry's input size) of zoo entry ``name``."""
    entry = MODELS.get(name)
    with torch.device("meta"):
        model = create_model(name)
    if entry.builder is None:
        space = spaces.get(entry.space)
        genotype = space.format(space.parse(entry.arch))
    else:
        genotype = entry.arch
    return ModelInfo(
        name=entry.name,
        space=entry.space,
        genotype=genotype,
        C=entry.C,
        layers=entry.layers,
        num_classes=entry.num_classes,
        input_size=entry.input_size,
        params_m=count_parameters(model) / 1e6,
        flops_m=count_flops(model, entry.input_size) / 1e6,
        reported_params_m=entry.reported_params_m,
        source=entry.source,
    )


__all__ = [
    "BASELINE",
    "MODELS",
    "ModelInfo",
    "ZooModel",
    "count_flops",
    "create_model",
    "get_entry",
    "list_models",
    "model_info",
]
