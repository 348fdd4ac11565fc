"""Split learning (jointml.ml.nn.split): accuracy against centralised training, the label
leakage a feature party's view holds (norm attack) and the DP defence, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from jointml.core.prg import Prg, public_rng
from jointml.ml.linear.base import public_permutation
from jointml.ml.nn import forward, init_params, marvell, one_hot, train_plaintext
from jointml.ml.nn.split import (
    SplitNNClassifier,
    direction_attack_auc,
    norm_attack_auc,
    predict_centralised,
    split_init,
    train_centralised,
)
from jointml.runtime import simulate


@pytest.fixture(scope="module")
def cancer():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    return (X - X.mean(axis=0)) / X.std(axis=0), y


def _auc(y, s):
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def _run(X, y, ntr, **params):
    def prog(ctx):
        def xs(A):
            return {"bank": ctx.party("bank").run(lambda: A[:, :15]), "shop": ctx.party("shop").run(lambda: A[:, 15:])}

        m = SplitNNClassifier(ctx, bottom_hidden=(8,), cut_dim=4, top_hidden=(8,), epochs=3, batch_size=32,
                              learning_rate=0.1, **params).fit(xs(X[:ntr]), ctx.party("bank").run(lambda: y[:ntr]))
        p = m.predict_proba(xs(X[ntr:]))
        return (p.value if p.is_local else None), m.gradient_norms_, m.top_, m.cut_gradients_

    return simulate(prog, ["bank", "shop"], mode="thread")


def test_split_auc_close_to_centralised_and_views(cancer):
    X, y = cancer
    ntr = 420
    out = _run(X, y, ntr)
    auc = _auc(y[ntr:], out["bank"][0][:, 1])
    perm = public_permutation(ntr, 0)
    central = train_plaintext(X[:ntr][perm], one_hot(y[:ntr], 2)[perm], init_params([30, 16, 8, 1], 0), epochs=3,
                              batch_size=32, learning_rate=0.1, momentum=0.9)
    base = _auc(y[ntr:], forward(X[ntr:], central)[-1][:, 0])
    assert abs(auc - base) <= 0.01 and auc > 0.97, (auc, base)
    assert out["shop"][0] is None and out["shop"][2] is None    # the feature party has no top model, no scores
    assert out["bank"][2] is not None


def test_norm_attack_leaks_labels_and_gradient_dp_defends(cancer):
    X, y = cancer
    ntr = 420
    plain, defended = _run(X, y, ntr), _run(X, y, ntr, gradient_epsilon=4.0)
    attack = norm_attack_auc(plain["shop"][1], y[:ntr])            # from the feature party's own view
    attack_def = norm_attack_auc(defended["shop"][1], y[:ntr])
    auc, auc_def = _auc(y[ntr:], plain["bank"][0][:, 1]), _auc(y[ntr:], defended["bank"][0][:, 1])
    assert attack > 0.65, attack
    assert attack_def < 0.62, attack_def
    assert auc - auc_def <= 0.03, (auc, auc_def)
    # the direction attack: the partner knows one row's label and compares gradient directions
    assert direction_attack_auc(plain["shop"][3], y[:ntr], known=0) > 0.95
    assert direction_attack_auc(defended["shop"][3], y[:ntr], known=0) < 0.75


def test_dp_embeddings_still_learn(cancer):
    X, y = cancer
    out = _run(X, y, 420, embedding_epsilon=8.0)
    assert _auc(y[420:], out["bank"][0][:, 1]) > 0.9


def test_save_load_predicts_the_same(cancer, tmp_path):
    X, y = cancer
    X, y = X[:96], y[:96]

    def prog(ctx):
        xs = {"bank": ctx.party("bank").run(lambda: X[:, :10]), "shop": ctx.party("shop").run(lambda: X[:, 10:])}
        m = SplitNNClassifier(ctx, epochs=1, batch_size=32).fit(xs, ctx.party("shop").run(lambda: y))
        p1 = m.predict_proba(xs)
        m.save(tmp_path / ctx.me)
        p2 = SplitNNClassifier.load(ctx, tmp_path / ctx.me).predict_proba(xs)
        return (p1.value, p2.value) if p1.is_local else None

    p1, p2 = simulate(prog, ["bank", "shop"], mode="thread")["shop"]
    np.testing.assert_array_equal(p1, p2)


def test_mismatched_rows_are_refused():
    def prog(ctx):
        xs = {"bank": ctx.party("bank").run(lambda: np.ones((10, 2)))}
        SplitNNClassifier(ctx, batch_size=4).fit(xs, ctx.party("shop").run(lambda: np.arange(8) % 2))

    with pytest.raises(Exception) as e:
        simulate(prog, ["bank", "shop"], mode="thread")
    assert "row counts differ" in str(e.value)


def test_three_parties_label_holder_without_features(cancer):
    X, y = cancer

    def prog(ctx):
        xs = {"a": ctx.party("a").run(lambda: X[:, :15]), "b": ctx.party("b").run(lambda: X[:, 15:])}
        m = SplitNNClassifier(ctx, bottom_hidden=(8,), cut_dim=4, top_hidden=(8,), epochs=3,
                              batch_size=32).fit(xs, ctx.party("bank").run(lambda: y))
        p = m.predict_proba(xs)
        return (p.value[:, 1] if p.is_local else None), m.bottom_ is not None, m.top_ is not None

    out = simulate(prog, ["bank", "a", "b"], mode="thread")
    assert _auc(y, out["bank"][0]) > 0.97
    assert out["bank"][1:] == (False, True) and out["a"] == (None, True, False) and out["b"][2] is False


def test_split_is_exactly_the_same_network_trained_centrally(cancer):
    """Undefended split learning computes the composed network's own SGD: same initialisation,
    same batches, same predictions (to rounding) as training bottoms + top in one place."""
    X, y = cancer
    ntr, seed = 420, 3

    def prog(ctx):
        def xs(A):
            return {"bank": ctx.party("bank").run(lambda: A[:, :15]), "shop": ctx.party("shop").run(lambda: A[:, 15:])}

        m = SplitNNClassifier(ctx, bottom_hidden=(8,), cut_dim=4, top_hidden=(8,), epochs=2, batch_size=32,
                              learning_rate=0.1, random_state=seed).fit(xs(X[:ntr]), ctx.party("bank").run(lambda: y[:ntr]))
        p = m.predict_proba(xs(X[ntr:]))
        return p.value[:, 1] if p.is_local else None

    split = simulate(prog, ["bank", "shop"], mode="thread")["bank"]
    bottoms, top = train_centralised([X[:ntr, :15], X[:ntr, 15:]], one_hot(y[:ntr], 2),
                                     *split_init([15, 15], (8,), 4, (8,), 1, seed), epochs=2, batch_size=32,
                                     learning_rate=0.1, seed=seed)
    central = predict_centralised([X[ntr:, :15], X[ntr:, 15:]], bottoms, top)[:, 0]
    np.testing.assert_allclose(split, central, rtol=0, atol=1e-12)


def _attacks(grads, labels):
    return (norm_attack_auc(np.linalg.norm(grads, axis=1), labels),
            float(np.mean([direction_attack_auc(grads, labels, known=k) for k in range(10)])))


def test_marvell_defends_norm_and_direction_attacks_at_small_cost(cancer):
    X, y = cancer
    ntr = 420
    # sumKL 0.1: Marvell's noise is drawn from the cryptographic PRG (unseeded), and at 0.25
    # the direction attack's AUC on these 420 rows reached 0.60-0.615 in some runs; at 0.1 it
    # stayed <= 0.565 at an AUC cost <= 0.005 in repeated runs (2026-12-02)
    plain, defended = _run(X, y, ntr), _run(X, y, ntr, marvell_sumkl=0.1)
    assert min(_attacks(plain["shop"][3], y[:ntr])) > 0.7          # both attacks work undefended
    assert max(_attacks(defended["shop"][3], y[:ntr])) < 0.6        # and fail under Marvell's noise
    auc, auc_def = _auc(y[ntr:], plain["bank"][0][:, 1]), _auc(y[ntr:], defended["bank"][0][:, 1])
    assert auc - auc_def <= 0.01, (auc, auc_def)


def test_marvell_solver_meets_its_budget_and_beats_feasible_points():
    rng = public_rng(5)  # public test inputs
    for _ in range(20):
        u, v, g, p, d = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.1, 2), rng.uniform(0.1, 0.9), int(rng.integers(1, 6))
        P = rng.uniform(0.5, 8) * g
        l10, l20, l11, l21, kl = marvell.solve(u, v, d, g, p, P)
        assert min(l10, l20, l11, l21) >= 0
        assert p * (l11 + (d - 1) * l21) + (1 - p) * (l10 + (d - 1) * l20) <= P * (1 + 1e-9)
        assert kl == pytest.approx(float(marvell.sumkl_of(l10, l20, l11, l21, u, v, d, g)))
        # random feasible points spending the whole budget do no better (up to the grid's resolution)
        w = rng.dirichlet(np.ones(4), size=500)
        cand = marvell.sumkl_of(w[:, 0] * P / (1 - p), w[:, 1] * P / ((1 - p) * max(d - 1, 1)),
                                w[:, 2] * P / p, w[:, 3] * P / (p * max(d - 1, 1)), u, v, d, g)
        assert kl <= float(np.min(cand)) + 1e-3
        bound = kl * 0.5 + 1e-3
        assert marvell.solve(u, v, d, g, p, marvell.power_for_sumkl(u, v, d, g, p, bound))[4] <= bound


def test_marvell_noise_is_zero_mean_with_the_solved_covariance():
    G = np.array([[1.0, 0.5, 0.0]] * 6 + [[-0.2, 0.1, 0.0]] * 10)
    pos = np.arange(16) < 6
    prg, n = Prg(b"t" * 16), 400
    draws = np.stack([marvell.perturb(G, pos, prg=prg, power=4.0)[0] for _ in range(n)])
    diff = G[0] - G[-1]
    gsq = float(diff @ diff)
    l10, l20, l11, l21, _ = marvell.solve(0.0, 0.0, 3, gsq, 6 / 16, 4.0 * gsq)
    assert l20 == l21 == 0.0                    # no spread within a class: noise along g1 - g0 only
    e = diff / np.sqrt(gsq)
    noise = draws - G
    np.testing.assert_allclose(noise - np.outer((noise @ e).ravel(), e).reshape(noise.shape), 0.0, atol=1e-9)
    along = noise @ e
    # zero mean (the bottom model's gradient is right on average), variances as solved
    assert abs(along[:, pos].mean()) < 4 * np.sqrt(l11 / along[:, pos].size)
    assert abs(along[:, ~pos].mean()) < 4 * np.sqrt(l10 / along[:, ~pos].size)
    assert along[:, pos].var() == pytest.approx(l11, rel=0.15) and along[:, ~pos].var() == pytest.approx(l10, rel=0.15)


def test_defence_parameters_are_checked(cancer):
    X, y = cancer

    def prog(ctx, labels, **kw):
        xs = {"bank": ctx.party("bank").run(lambda: X[:64, :15]), "shop": ctx.party("shop").run(lambda: X[:64, 15:])}
        SplitNNClassifier(ctx, batch_size=32, **kw).fit(xs, ctx.party("bank").run(lambda: labels))

    with pytest.raises(Exception, match="one label-leakage defence"):
        simulate(prog, ["bank", "shop"], mode="thread", args=(y[:64],),
                 kwargs={"marvell_sumkl": 0.25, "gradient_epsilon": 1.0})
    with pytest.raises(Exception, match="two classes"):
        simulate(prog, ["bank", "shop"], mode="thread", args=(np.arange(64) % 3,), kwargs={"marvell_sumkl": 0.25})


@pytest.mark.slow  # importing torch alone takes seconds
def test_torch_bottom_models_train_the_same_network(cancer):
    """backend="torch" (jointml[torch]): the bottom models are torch modules with the same
    initial weights and update rule, so the split network matches the numpy backend's."""
    pytest.importorskip("torch")
    X, y = cancer
    ntr = 420
    np_run, torch_run = _run(X, y, ntr), _run(X, y, ntr, backend="torch")
    np.testing.assert_allclose(torch_run["bank"][0], np_run["bank"][0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(torch_run["shop"][3], np_run["shop"][3], rtol=0, atol=1e-9)  # the same gradients seen


def test_unknown_backend_is_refused(cancer):
    X, y = cancer

    def prog(ctx):
        xs = {"bank": ctx.party("bank").run(lambda: X[:64, :15]), "shop": ctx.party("shop").run(lambda: X[:64, 15:])}
        SplitNNClassifier(ctx, batch_size=32, backend="jax").fit(xs, ctx.party("bank").run(lambda: y[:64]))

    with pytest.raises(Exception, match="backend"):
        simulate(prog, ["bank", "shop"], mode="thread")
