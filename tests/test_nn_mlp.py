"""MPC MLP (jointml.ml.nn) against its numpy twin: same initialisation, same batches."""

from __future__ import annotations

import numpy as np
import pytest

from jointml.ml.linear.base import public_permutation
from jointml.ml.nn import MPCMLPClassifier, forward, init_params, one_hot, train_plaintext
from jointml.mpc import MpcDevice
from jointml.runtime import simulate

PARTIES = ["bank", "shop", "dealer"]


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _cancer() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    return (X - X.mean(axis=0)) / X.std(axis=0), y


def _split_run(X, y, Xt, cut, params):
    """Train on X (columns [:cut] at bank, [cut:] at shop; labels at shop), predict Xt at bank."""

    def prog(ctx):
        mpc = MpcDevice(ctx, ["bank", "shop"], dealer="dealer")

        def blocks(A):
            return {"bank": ctx.party("bank").run(lambda: A[:, :cut]), "shop": ctx.party("shop").run(lambda: A[:, cut:])}

        m = MPCMLPClassifier(mpc, **params).fit(blocks(X), ctx.party("shop").run(lambda: y))
        pred = m.predict(blocks(Xt), to="bank")
        return pred.value if pred.is_local else None

    return simulate(prog, PARTIES, mode="thread")


def _twin_accuracy(X, y, Xt, yt, params):
    classes = np.unique(y)
    k = len(classes)
    sizes = [X.shape[1], *params["hidden_layer_sizes"], 1 if k == 2 else k]
    perm = public_permutation(len(X), params.get("random_state", 0))
    p = train_plaintext(X[perm], one_hot(y, k)[perm], init_params(sizes, params.get("random_state", 0)),
                        epochs=params["epochs"], batch_size=params["batch_size"],
                        learning_rate=params["learning_rate"], momentum=params.get("momentum", 0.9))
    out = forward(Xt, p)[-1]
    pred = (out[:, 0] > 0.5).astype(int) if k == 2 else np.argmax(out, axis=1)
    return float(np.mean(classes[pred] == yt))


@pytest.mark.parametrize("data, params", [
    ("digits", dict(hidden_layer_sizes=(16,), epochs=1, batch_size=128, learning_rate=0.5)),
    ("cancer", dict(hidden_layer_sizes=(8,), epochs=2, batch_size=32, learning_rate=0.1)),
])
def test_accuracy_within_001_of_the_plaintext_twin(data, params):
    X, y = _digits() if data == "digits" else _cancer()
    n_train = int(len(X) * 0.75)
    pred = _split_run(X[:n_train], y[:n_train], X[n_train:], X.shape[1] // 2, params)
    acc = float(np.mean(pred["bank"] == y[n_train:]))
    twin = _twin_accuracy(X[:n_train], y[:n_train], X[n_train:], y[n_train:], params)
    assert pred["shop"] is None and pred["dealer"] is None  # only the named party learns the predictions
    assert abs(acc - twin) <= 0.01, (acc, twin)
    assert twin > (0.7 if data == "digits" else 0.9)        # the network did learn (10 classes: chance 0.1)


def test_secret_shared_data_and_sigmoid_hidden_units_match_the_twin_weights():
    X, y = _cancer()
    X, y = X[:128, :6], y[:128]
    params = dict(hidden_layer_sizes=(4,), activation="sigmoid", epochs=2, batch_size=32, learning_rate=0.2,
                  momentum=0.5, random_state=3, n_classes=2)

    def prog(ctx):
        mpc = MpcDevice(ctx, ["bank", "shop"], dealer="dealer")
        xs = ctx.party("bank").run(lambda: X).to(mpc)            # features already secret-shared
        ys = ctx.party("shop").run(lambda: y.astype(float)).to(mpc)
        m = MPCMLPClassifier(mpc, **params).fit({"bank": xs}, ys)
        return [w.reveal() for w in m.params_], m.label_owner_

    out = simulate(prog, PARTIES, mode="thread")["bank"]
    perm = public_permutation(len(X), 3)
    twin = train_plaintext(X[perm], one_hot(y, 2)[perm], init_params([6, 4, 1], 3, "sigmoid"), epochs=2,
                           batch_size=32, learning_rate=0.2, momentum=0.5, activation="sigmoid")
    got = out[0]
    assert out[1] is None                                        # no label holder
    np.testing.assert_allclose(got[0], twin[0][0], atol=2e-3)
    np.testing.assert_allclose(got[2], twin[1][0], atol=2e-3)


def test_save_load_predicts_the_same(tmp_path):
    X, y = _cancer()
    X, y = X[:96], y[:96]

    def prog(ctx):
        mpc = MpcDevice(ctx, ["bank", "shop"], dealer="dealer")
        xs = {"bank": ctx.party("bank").run(lambda: X[:, :10]), "shop": ctx.party("shop").run(lambda: X[:, 10:])}
        m = MPCMLPClassifier(mpc, hidden_layer_sizes=(4,), epochs=1, batch_size=32).fit(xs, ctx.party("bank").run(lambda: y))
        p1 = m.predict_proba(xs, to="shop")
        m.save(tmp_path / ctx.me)
        m2 = MPCMLPClassifier.load(mpc, tmp_path / ctx.me)
        p2 = m2.predict_proba(xs, to="shop")
        return (p1.value, p2.value, m2.get_params()["hidden_layer_sizes"]) if p1.is_local else None

    p1, p2, hidden = simulate(prog, PARTIES, mode="thread")["shop"]
    np.testing.assert_allclose(p1, p2, atol=1e-4)  # fresh truncation randomness per run
    assert p1.shape == (96, 2) and tuple(hidden) == (4,)


def test_bad_inputs_raise_clear_errors():
    def run(kind):
        return lambda ctx: prog(ctx, kind)

    def prog(ctx, kind):
        mpc = MpcDevice(ctx, ["bank", "shop"], dealer="dealer")
        xs = {"bank": ctx.party("bank").run(lambda: np.ones((8, 2)))}
        if kind == "param":
            MPCMLPClassifier(mpc, momentum=1.5).fit(xs, ctx.party("shop").run(lambda: np.arange(8) % 2))
        else:
            MPCMLPClassifier(mpc, batch_size=4).fit(xs, ctx.party("shop").run(lambda: np.zeros(5)))

    with pytest.raises(Exception) as e:
        simulate(run("param"), PARTIES, mode="thread")
    assert "momentum" in str(e.value)
    with pytest.raises(Exception) as e:
        simulate(run("rows"), PARTIES, mode="thread")
    assert "5 labels for 8 rows" in str(e.value) and "shop" in str(e.value)


@pytest.mark.slow
def test_digits_64_128_10_within_001_of_plaintext():
    X, y = _digits()
    params = dict(hidden_layer_sizes=(128,), epochs=5, batch_size=64, learning_rate=0.1)
    pred = _split_run(X[:1400], y[:1400], X[1400:], 32, params)
    acc = float(np.mean(pred["bank"] == y[1400:]))
    twin = _twin_accuracy(X[:1400], y[:1400], X[1400:], y[1400:], params)
    assert abs(acc - twin) <= 0.01 and twin > 0.9, (acc, twin)


def test_dropout_with_public_masks_matches_the_twin_on_aby3():
    X, y = _digits()
    X, y = X[:120], y[:120]
    params = dict(hidden_layer_sizes=(8,), epochs=2, batch_size=40, learning_rate=0.3, momentum=0.9, dropout=0.25,
                  random_state=5)

    def prog(ctx):
        mpc = MpcDevice(ctx, ["bank", "shop", "carol"], protocol="aby3")
        xs = {"bank": ctx.party("bank").run(lambda: X[:, :40]), "carol": ctx.party("carol").run(lambda: X[:, 40:])}
        m = MPCMLPClassifier(mpc, **params).fit(xs, ctx.party("shop").run(lambda: y))
        return [w.reveal() for w in m.params_]

    got = simulate(prog, ["bank", "shop", "carol"], mode="thread")["shop"]
    perm = public_permutation(len(X), 5)
    twin = train_plaintext(X[perm], one_hot(y, 10)[perm], init_params([64, 8, 10], 5), epochs=2, batch_size=40,
                           learning_rate=0.3, momentum=0.9, dropout=0.25, seed=5)
    np.testing.assert_allclose(np.vstack([got[0], got[1]]), twin[0][0], atol=5e-3)
    np.testing.assert_allclose(got[3], twin[1][0], atol=5e-3)
    plain = train_plaintext(X[perm], one_hot(y, 10)[perm], init_params([64, 8, 10], 5), epochs=2, batch_size=40,
                            learning_rate=0.3, momentum=0.9)
    assert np.abs(plain[1][0] - twin[1][0]).max() > 0.02   # the masks did change the training


def test_adam_under_mpc_matches_the_twin_weights():
    X, y = _cancer()
    X, y = X[:96, :6], y[:96]
    params = dict(hidden_layer_sizes=(4,), epochs=1, batch_size=32, learning_rate=0.05, optimizer="adam",
                  random_state=2)

    def prog(ctx):
        mpc = MpcDevice(ctx, ["bank", "shop"], dealer="dealer")
        xs = {"bank": ctx.party("bank").run(lambda: X[:, :3]), "shop": ctx.party("shop").run(lambda: X[:, 3:])}
        m = MPCMLPClassifier(mpc, **params).fit(xs, ctx.party("shop").run(lambda: y))
        return [w.reveal() for w in m.params_]

    got = simulate(prog, PARTIES, mode="thread")["bank"]
    perm = public_permutation(len(X), 2)
    init = init_params([6, 4, 1], 2)
    twin = train_plaintext(X[perm], one_hot(y, 2)[perm], init, epochs=1, batch_size=32, learning_rate=0.05,
                           optimizer="adam")
    np.testing.assert_allclose(np.vstack([got[0], got[1]]), twin[0][0], atol=2e-3)
    np.testing.assert_allclose(got[3], twin[1][0], atol=2e-3)
    assert np.abs(twin[1][0] - init[1][0]).max() > 0.05     # Adam's steps moved the weights


def _with_batch_norm(X, params, norms, eps=1e-5):
    """The reference: dense -> batch norm (inference statistics) -> ReLU, written out."""
    h = X
    for i, ((w, b), bn) in enumerate(zip(params, norms)):
        z = h @ w + b
        if bn is not None:
            g, beta, mu, var = bn
            z = g * (z - mu) / np.sqrt(var + eps) + beta
        h = np.maximum(z, 0.0) if i < len(params) - 1 else 1.0 / (1.0 + np.exp(-z))
    return h


def test_batch_norm_folded_into_the_dense_layer_predicts_like_the_network_with_it():
    from jointml.core.prg import public_rng

    X, y = _cancer()
    perm = public_permutation(len(X), 0)
    params = train_plaintext(X[perm][:400], one_hot(y[perm][:400], 2), init_params([30, 16, 8, 1], 0), epochs=3,
                             batch_size=32, learning_rate=0.1, momentum=0.9)
    rng = public_rng(2)  # public test inputs: batch-norm statistics as a network trained elsewhere would carry
    z1 = X[:400] @ params[0][0] + params[0][1]
    norms = [(rng.uniform(0.5, 2.0, 16), rng.normal(0, 0.3, 16), z1.mean(axis=0), z1.var(axis=0)), None, None]
    Xt = X[400:460]
    want = _with_batch_norm(Xt, params, norms)[:, 0]

    def prog(ctx):
        mpc = MpcDevice(ctx, ["bank", "shop"], dealer="dealer")
        net = ctx.party("shop").run(lambda: params)            # the model owner's plaintext network
        m = MPCMLPClassifier.from_weights(mpc, net, blocks={"bank": 12, "shop": 18}, classes=[0, 1],
                                          batch_norm=norms if ctx.me == "shop" else None)
        p = m.predict_proba({"bank": ctx.party("bank").run(lambda: Xt[:, :12]),
                             "shop": ctx.party("shop").run(lambda: Xt[:, 12:])}, to="bank")
        return p.value[:, 1] if p.is_local else None, [type(w).__name__ for w in m.params_]

    out = simulate(prog, PARTIES, mode="thread")
    np.testing.assert_allclose(out["bank"][0], want, atol=5e-3)
    assert out["shop"][0] is None and set(out["bank"][1]) == {"SecretArray"}   # weights secret-shared, scores at bank
    # without the batch norm the network computes something else: the folding is not a no-op
    assert np.max(np.abs(forward(Xt, params)[-1][:, 0] - want)) > 0.05


def test_from_weights_refuses_a_network_that_does_not_fit():
    def prog(ctx):
        mpc = MpcDevice(ctx, ["bank", "shop"], dealer="dealer")
        net = ctx.party("shop").run(lambda: init_params([5, 3, 1], 0))
        MPCMLPClassifier.from_weights(mpc, net, blocks={"bank": 2, "shop": 2}, classes=[0, 1])

    with pytest.raises(Exception, match="does not fit"):
        simulate(prog, PARTIES, mode="thread")
