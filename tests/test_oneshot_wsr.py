"""Wsr-NAS's wide-spectrum search loop (robnets_wsrnas.md B2, B5, C2), at a tiny size."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from robnas import data as data_lib
from robnas.errors import ConfigError
from robnas.oneshot.wsr import search as wsr
from robnas.oneshot.wsr.search import WsrConfig, derive_genotype, run_wsr
from robnas.spaces.darts import PRIMITIVES

OP = {name: i for i, name in enumerate(PRIMITIVES)}


def tiny(**changes) -> WsrConfig:
    base = WsrConfig(
        warmup_epochs=1, memory_epochs=1, search_epochs=2, C=4, layers=3, batch_size=8,
        train_batches=2, valid_batches=2, noise_batches=1, estimator_batch=16,
        predictor_warmup_passes=2, predictor_passes=2, pgd_steps=2,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def images():
    return data_lib.synthetic(48, num_classes=10, size=16, seed=0)


def test_top2_rule_reads_the_largest_non_none_weights():
    w = torch.zeros(14, 8)
    # node 0 (edges 0, 1): "none" is largest on edge 0 but does not count; both edges kept
    w[0, OP["none"]], w[0, OP["sep_conv_3x3"]] = 9.0, 1.0
    w[1, OP["max_pool_3x3"]] = 2.0
    # node 1 (edges 2, 3, 4): inputs 2 and 0 win (by their best non-none op), input 1 is dropped
    w[2, OP["dil_conv_5x5"]] = 3.0
    w[3, OP["none"]], w[3, OP["skip_connect"]] = 8.0, 0.5
    w[4, OP["avg_pool_3x3"]] = 5.0
    # node 2 (edges 5..8) and node 3 (edges 9..13)
    w[8, OP["sep_conv_5x5"]], w[6, OP["skip_connect"]] = 4.0, 3.0
    w[13, OP["dil_conv_3x3"]], w[9, OP["sep_conv_3x3"]] = 2.0, 1.5
    g = derive_genotype(w, w.clone())
    assert g.normal[:2] == (("max_pool_3x3", 1), ("sep_conv_3x3", 0))
    assert g.normal[2:4] == (("avg_pool_3x3", 2), ("dil_conv_5x5", 0))
    assert g.normal[4:6] == (("sep_conv_5x5", 3), ("skip_connect", 1))
    assert g.normal[6:] == (("dil_conv_3x3", 4), ("sep_conv_3x3", 0))
    assert g.normal_concat == (2, 3, 4, 5) and g.reduce == g.normal
    assert all(op != "none" for op, _ in g.normal)


def test_gumbel_sample_is_alpha_plus_noise_at_tau():
    alphas = wsr.init_alphas(3)
    assert alphas[0].shape == (14, 8) and alphas[0].abs().max() < 0.01 and alphas[0].requires_grad
    g = wsr.gumbel_noise(3, 7)
    w = wsr.edge_weights(alphas, g, 0.1)
    assert torch.allclose(w[:14], ((alphas[0].detach() + g[0]) / 0.1).softmax(-1))
    assert torch.equal(g[1], wsr.gumbel_noise(3, 7)[1]) and not torch.equal(g[0], wsr.gumbel_noise(3, 8)[0])


def test_tiny_run_records_every_epoch(images, tmp_path):
    config = tiny()
    seen = []
    result = run_wsr(config, images, tmp_path / "run", seed=1, progress=seen.append)
    assert [(e.phase, e.epoch) for e in result.epochs] == [
        ("warmup", 0), ("memory", 0), ("predictor", 0), ("search", 0), ("search", 1),
    ]  # fmt: skip
    assert seen == result.epochs and result.phase == "done"
    for e in result.search():
        assert e.genotype.startswith("Genotype(") and len(e.measured) == 7 and len(e.predicted) == 7
        assert all(0 < v < 2 for v in e.predicted) and all(v > 0 for v in e.measured)
        assert (
            e.cost["train"] > 0 and e.cost["pgd"] > 0 and e.cost["estimator"] > 0 and e.cost["predictor"] > 0
        )
        assert e.objective == pytest.approx(
            float((wsr.objective_weights() * torch.tensor(e.measured) ** 2).sum())
        )
    assert len(result.epochs[1].measured) == 7 and not result.epochs[0].measured
    assert set(result.cost) == set(wsr.COSTS)
    # alpha moved through the predictor only, by Adam steps of about lr 3e-5 each
    start = wsr.init_alphas(1)
    moved = (result.alphas[0] - start[0].detach()).abs().max()
    assert 0 < moved <= 2 * 3e-5 + 1e-9
    assert (tmp_path / "run" / "wsr.pt").is_file()
    assert [e.genotype for e in wsr.load_records(tmp_path / "run")] == [e.genotype for e in result.epochs]


def test_resume_after_stopping_mid_search_equals_an_uninterrupted_run(images, tmp_path):
    config = tiny(train_batches=1, valid_batches=1)  # three runs: one batch each per epoch
    full = run_wsr(config, images, tmp_path / "full", seed=2)
    part = run_wsr(config, images, tmp_path / "part", seed=2, stop_after=4)
    assert part.phase == "search" and len(part.search()) == 1
    resumed = run_wsr(config, images, tmp_path / "part", seed=2, resume=True)
    assert [e.genotype for e in resumed.epochs] == [e.genotype for e in full.epochs]
    for a, b in zip(resumed.alphas, full.alphas, strict=True):
        assert torch.equal(a, b)
    assert resumed.epochs[-1].measured == pytest.approx(full.epochs[-1].measured)
    with pytest.raises(ConfigError, match="another configuration"):
        run_wsr(dataclasses.replace(config, search_epochs=3), images, tmp_path / "part", seed=2, resume=True)


def test_naive_runs_six_real_pgd_strengths_and_no_estimator(images, tmp_path, monkeypatch):
    calls = []
    real = wsr.pgd_noises

    def spy(model, x, y, eps, random_eps_max, steps, generator):
        calls.append((tuple(eps), random_eps_max))
        return real(model, x, y, eps, random_eps_max, steps, generator)

    monkeypatch.setattr(wsr, "pgd_noises", spy)
    halves = []
    clean = wsr.WsrSearch.clean_loss

    def clean_spy(self, on, step, timer):
        halves.append(on)
        return clean(self, on, step, timer)

    monkeypatch.setattr(wsr.WsrSearch, "clean_loss", clean_spy)
    monkeypatch.setattr(wsr, "noise_estimator", lambda *a, **k: pytest.fail("the naive search built an AN-E"))
    result = run_wsr(tiny(naive=True, search_epochs=1), images, tmp_path / "naive", seed=1)
    assert calls and all(c == (wsr.STRENGTHS, None) for c in calls)
    last = result.search()[-1]
    assert len(last.measured) == 7 and last.cost["estimator"] == 0
    # the reference's quirk (C2): the memory phase's clean loss on the validation half, the search's on the training half
    assert halves == ["valid", "train"]


def test_bad_input_gives_one_clear_error(images, tmp_path):
    with pytest.raises(ConfigError, match="strictly increasing"):
        run_wsr(tiny(pgd_eps=(0.06, 0.03, 0.09)), images, tmp_path / "a")
    with pytest.raises(ConfigError, match="strictly increasing"):
        run_wsr(tiny(naive=True, naive_eps=(0.03, 0.06)), images, tmp_path / "b")
    with pytest.raises(ConfigError, match="loss predictor"):
        run_wsr(tiny(memory_epochs=0), images, tmp_path / "c")
    with pytest.raises(ConfigError, match="32x32"):
        run_wsr(tiny(estimator="plus"), images, tmp_path / "d")
    assert not (tmp_path / "d").exists()
    search = wsr.WsrSearch(tiny(), images, tmp_path / "e", 0, torch.device("cpu"))
    search.phase = "predictor"
    with pytest.raises(ConfigError, match="loss memory is empty"):
        search.step_epoch()


def test_strategies_record_search_epochs_and_resume(images, tmp_path):
    import numpy as np

    from robnas.objectives import ObjectiveContext
    from robnas.search import make_strategy, run_search

    npz = tmp_path / "d.npz"
    np.savez(npz, x_train=images.x, y_train=images.y)
    options = {
        "warmup_epochs": "1", "memory_epochs": "1", "search_epochs": "2", "C": "4", "layers": "3",
        "batch_size": "8", "train_batches": "2", "valid_batches": "2", "noise_batches": "1",
        "predictor_warmup_passes": "2", "predictor_passes": "2", "pgd_steps": "2",
    }  # fmt: skip
    context = ObjectiveContext(data=str(npz), batch_size=8)
    out = tmp_path / "s.sqlite"
    result = run_search("darts", "wsr-nas", "params", budget=2, out=out, options=options, context=context)
    assert result.status == "done" and result.evaluated == 2
    first = result.history[0].info
    assert first["phase"] == "search" and len(first["measured"]) == 7 and first["wsr_objective"] < 0
    assert any(k.startswith("wsr ") for k in result.setup)
    # a larger budget resumes from the checkpoint: the last epoch and the final genotype follow
    more = run_search("darts", "wsr-nas", "params", budget=10, out=out, options=options, context=context)
    assert more.run == result.run and more.history[-1].info.get("final") is True
    assert [r.info.get("epoch") for r in more.history if not r.info.get("final")][:2] == [0, 1]
    with pytest.raises(ConfigError, match="strictly increasing"):
        make_strategy("wsr-naive", {"naive_eps": "7.65,5.1,15.3,17.85,20.4,22.95"})
    with pytest.raises(ConfigError, match="darts space"):
        run_search("nb201", "wsr-nas", "params", budget=1, options=options, context=context)


def test_argmax_path_runs_every_edges_best_op_scaled():
    from robnas.oneshot import supernet

    torch.manual_seed(0)
    net = supernet("darts", C=4, layers=5).eval()
    genotype = derive_genotype(torch.rand(14, 8), torch.rand(14, 8))
    # weights whose arg-max is the genotype's op on its edges (weight 1) and "none" elsewhere
    w = torch.zeros(28, 8)
    w[:, OP["none"]] = 0.5
    for offset, edges in ((0, genotype.normal), (14, genotype.reduce)):
        for k, (op, source) in enumerate(edges):
            e = sum(n + 2 for n in range(k // 2)) + source
            w[offset + e] = 0.0
            w[offset + e, OP[op]] = 1.0
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(net.forward_argmax(x, w), net(x, genotype), atol=1e-5)
        half = net.forward_argmax(x, torch.where(w == 1.0, 0.9, w))
        assert not torch.allclose(half, net(x, genotype), atol=1e-4)
    with pytest.raises(ConfigError, match="28, 8"):
        net.forward_argmax(x, w[:14])


def test_argmax_path_search_runs(images, tmp_path):
    result = run_wsr(tiny(path="argmax", warmup_epochs=0, search_epochs=1), images, tmp_path / "am", seed=1)
    assert result.phase == "done" and len(result.search()[0].measured) == 7
    with pytest.raises(ConfigError, match="path must be"):
        run_wsr(tiny(path="dense"), images, tmp_path / "x")
