"""Split learning (jointml.ml.nn.split): accuracy against centralised training, the label
leakage a feature party's view holds (norm attack) and the DP defence, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from jointml.ml.linear.base import public_permutation
from jointml.ml.nn import forward, init_params, one_hot, train_plaintext
from jointml.ml.nn.split import SplitNNClassifier, direction_attack_auc, norm_attack_auc
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
