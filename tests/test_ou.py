"""Okamoto-Uchiyama backend (jointml.he.ou): correctness against plaintext, key sizes,
refusal of malformed / foreign ciphertexts and keys, and the HE device with scheme="ou"."""

import gmpy2
import numpy as np
import pytest

from jointml.core.errors import CryptoError, EncodingOverflowError, ParameterError
from jointml.he import (
    HeDevice,
    OUPublicKey,
    compress,
    compress_ciphertexts,
    encrypt_packed,
    generate_keypair,
    generate_ou_keypair,
)
from jointml.he.ou import _decrypt
from jointml.runtime import PartyFailed, simulate

KEY = 768  # tests only: p of 256 bits


@pytest.fixture(scope="module")
def keys():
    return generate_ou_keypair(KEY)


def _rng(seed=0):
    return np.random.default_rng(seed)  # public test data


def test_key_sizes_and_structure():
    for bits in (512, 768, 2048):
        pk, sk = generate_ou_keypair(bits)
        p, q = sk._p, sk._q
        assert pk.n.bit_length() == bits and p * p * q == pk.n
        assert p.bit_length() == bits // 3 == pk.p_bits and gmpy2.is_prime(p) and gmpy2.is_prime(q)
        # g^(p-1) has order p mod p^2 (the plaintext group), h = g^n
        gp = gmpy2.powmod(pk.g, p - 1, p * p)
        assert gp != 1 and gmpy2.powmod(gp, p, p * p) == 1
        assert pk.h == gmpy2.powmod(pk.g, pk.n, pk.n)
        # packed plaintexts must fit p (secret), not n: the public budget is |p| - 3 bits
        assert pk.plaintext_bits == pk.p_bits - 3 and (1 << pk.plaintext_bits) < p // 3
        assert pk.r_bits == 224  # 2 * lambda, lambda = 112 at 2048 bits (smaller keys: tests only)
    with pytest.raises(ParameterError):
        generate_ou_keypair(255)


def test_additive_homomorphism_vs_plaintext(keys):
    pk, sk = keys
    a = _rng(1).normal(size=(3, 4)) * 100
    b = _rng(2).normal(size=(3, 4))
    ea, eb = pk.encrypt(a), pk.encrypt(b)
    np.testing.assert_allclose(sk.decrypt(ea), a, atol=2**-31)
    np.testing.assert_allclose(sk.decrypt(ea + eb), a + b, atol=2**-30)
    np.testing.assert_allclose(sk.decrypt(ea - eb), a - b, atol=2**-30)
    np.testing.assert_allclose(sk.decrypt(ea + b), a + b, atol=2**-30)
    np.testing.assert_allclose(sk.decrypt(-ea), -a, atol=2**-31)
    np.testing.assert_allclose(sk.decrypt(ea.sum(axis=0)), a.sum(axis=0), atol=2**-28)
    k = np.array([3, -2, 0, 7])
    np.testing.assert_allclose(sk.decrypt(ea * k), a * k, atol=2**-28)  # scalar mul, negatives too
    np.testing.assert_allclose(sk.decrypt(ea @ b[0]), a @ b[0], atol=1e-6)
    ints = np.array([-(2**60), -1, 0, 1, 2**60])
    assert sk.decrypt(pk.encrypt(ints)).tolist() == ints.tolist()  # negative encoding is exact
    # a fresh nonce every time: equal plaintexts give different ciphertexts
    assert pk.encrypt([5]).data[0] != pk.encrypt([5]).data[0]
    r = ea.rerandomize()
    assert not np.any(r.data == ea.data)
    np.testing.assert_allclose(sk.decrypt(r), a, atol=2**-31)


def test_packed_slots_and_compression(keys):
    pk, sk = keys
    gh = np.round(_rng(3).normal(size=(50, 2)), 3)
    gh[:, 1] = np.abs(gh[:, 1])
    ct = encrypt_packed(pk, gh, slot_bits=30, frac_bits=16)
    np.testing.assert_allclose(sk.decrypt(ct.sum()), gh.sum(axis=0), atol=50 * 2**-16)
    small = compress_ciphertexts(pk, list(ct.data), 30, 16, unit_shape=(2,))
    # 60-bit pairs: 4 per 253-bit plaintext, 13 ciphertexts instead of 50
    assert small.shape == (13,) and small.layout.slot_shape == (4, 2)
    np.testing.assert_allclose(sk.decrypt(small), gh, atol=2**-16)
    vals = np.array([[3, -4, 5], [6, 7, -8]])
    assert sk.decrypt(compress(pk.encrypt(vals), slot_bits=16)).tolist() == vals.tolist()
    # slots must fit p (253 usable bits), not n (768 bits)
    with pytest.raises(ParameterError):
        encrypt_packed(pk, np.zeros((1, 9)), slot_bits=30)
    with pytest.raises(EncodingOverflowError):
        pk.encrypt([2**300])


def test_malformed_and_foreign_ciphertexts_are_refused(keys):
    pk, sk = keys
    wire = pk.encrypt([1, 2, 3]).to_wire()
    assert wire.shape == (3, pk.ciphertext_bytes)
    for bad_value, what in ((0, "out of range"), (int(pk.n), "out of range"), (int(pk.g) * 0 + int(sk._p), "not invertible")):
        bad = wire.copy()
        bad[1] = np.frombuffer(int(bad_value).to_bytes(pk.ciphertext_bytes, "big"), np.uint8)
        with pytest.raises(CryptoError, match=f"ciphertext 1: .*{what}"):
            pk.ciphertexts_from_wire(bad, party="shop")
    with pytest.raises(CryptoError, match="expected shape"):
        pk.ciphertexts_from_wire(wire[:, 1:])
    with pytest.raises(CryptoError, match="expected shape"):
        pk.ciphertexts_from_wire(wire, count=4)
    # another OU key, or a Paillier key: refused, never a wrong number
    pk2, sk2 = generate_ou_keypair(KEY)
    with pytest.raises(CryptoError, match="under key"):
        sk2.decrypt(pk.encrypt([1]))
    with pytest.raises(CryptoError):
        _ = pk.encrypt([1]) + pk2.encrypt([1])
    ppk, psk = generate_keypair(512)
    with pytest.raises(CryptoError):
        psk.decrypt(pk.encrypt([1]))
    with pytest.raises(CryptoError):
        ppk.ciphertexts_from_wire(wire)


def test_public_key_serialisation_is_checked(keys):
    pk, _ = keys
    d = pk.to_dict()
    assert OUPublicKey.from_dict(d) == pk and all(isinstance(v, (str, int)) for v in d.values())
    for field, value in (("h", format(int(pk.h) + 1, "x")), ("key_bits", 1024), ("scheme", "paillier-djn"),
                         ("g", "zz"), ("r_bits", 128)):  # a nonce shorter than 2 * lambda is refused
        with pytest.raises(CryptoError):
            OUPublicKey.from_dict({**d, field: value})


def test_decryption_only_needs_p(keys):
    """CRT-free decryption: m = L(c^(p-1) mod p^2) / L(g^(p-1) mod p^2) mod p."""
    pk, sk = keys
    c = pk.raw_encrypt(123456789)
    p = sk._p
    lg = (gmpy2.powmod(pk.g, p - 1, p * p) - 1) // p
    lc = (gmpy2.powmod(c, p - 1, p * p) - 1) // p
    assert lc * gmpy2.invert(lg, p) % p == 123456789 == _decrypt(sk._params(), [c])[0]


def test_he_device_with_ou_group_sums_and_refuses_a_scheme_switch():
    def prog(ctx):
        he = HeDevice(ctx, "bank", key_bits=KEY, n_jobs=1, scheme="ou")
        y = ctx.party("bank").run(lambda: np.array([[1.0, 0.5], [-2.0, 0.25], [0.5, 1.0], [3.0, 2.0]]))
        enc = y.to(he, slot_bits=24, frac_bits=8)
        codes = ctx.party("shop").run(lambda: np.array([[0, 1], [1, 1], [1, 0], [0, 0]]))
        sums = enc.group_sum(codes, [2, 2]).reveal(to="bank")
        return (sums.value.tolist(), he.public_key.scheme) if ctx.me == "bank" else (he.public_key.scheme, enc.data.shape)

    out = simulate(prog, ["bank", "shop"], mode="thread")
    assert out["bank"] == ([[4.0, 2.5], [-1.5, 1.25], [3.5, 3.0], [-1.0, 0.75]], "ou")
    assert out["shop"] == ("ou", (4,))

    def mismatch(ctx):  # the holder announces a Paillier key to a job that asked for OU
        HeDevice(ctx, "bank", key_bits=512, scheme="paillier" if ctx.me == "bank" else "ou")

    with pytest.raises(PartyFailed, match="party 'bank'.*scheme 'paillier-djn', expected 'ou'"):
        simulate(mismatch, ["bank", "shop"], mode="thread")
    with pytest.raises(PartyFailed, match="ParameterError: field 'scheme'"):
        simulate(lambda ctx: HeDevice(ctx, "bank", key_bits=512, scheme="rsa"), ["bank"], mode="thread")


def test_secureboost_same_model_under_ou_and_paillier():
    """Both schemes carry the same fixed-point sums exactly: the same trees, the same scores."""
    from jointml.ml.tree import SecureBoostClassifier

    g = _rng(5)
    X = g.normal(size=(300, 4))
    y = (X[:, 0] - X[:, 2] + 0.3 * g.normal(size=300) > 0).astype(float)

    def prog(ctx, scheme):
        parts = {"bank": ctx.party("bank").run(lambda: X[:, :2]), "shop": ctx.party("shop").run(lambda: X[:, 2:])}
        m = SecureBoostClassifier(ctx, n_estimators=2, max_depth=3, key_bits=512, n_jobs=1, he_scheme=scheme)
        m.fit(parts, ctx.party("bank").run(lambda: y))
        p = m.predict_proba(parts)
        return p.value if ctx.me == "bank" else m.get_params()["he_scheme"]

    ou = simulate(prog, ["bank", "shop"], mode="thread", args=("ou",))
    pa = simulate(prog, ["bank", "shop"], mode="thread", args=("paillier",))
    assert ou["shop"] == "ou" and pa["shop"] == "paillier"
    np.testing.assert_array_equal(ou["bank"], pa["bank"])
    assert ((ou["bank"][:, 1] > 0.5) == y).mean() > 0.8


def test_grouped_sums_with_feature_pairs_match_plaintext(keys):
    """The hot path of SecureBoost under OU: per (node, feature, bin) sums, with the
    feature-pair buckets taken (many rows per joint bucket), equal numpy's bincount."""
    from jointml.he import grouped_sums
    from jointml.he.grouped import _pairs

    pk, sk = keys
    g = _rng(9)
    m, nb = 600, np.array([3, 4, 2, 5, 3])
    codes = np.stack([g.integers(0, b, m) for b in nb], axis=1)
    node = g.integers(0, 2, m)
    vals = g.integers(-50, 50, m)
    assert _pairs(nb, m / 2)[0]  # the pair path is exercised
    sums = grouped_sums(pk.encrypt(vals).to_wire(), pk.nsq, codes, node, 2, nb, n_jobs=1)
    got = np.array([v if v < sk._p // 2 else v - sk._p for v in sk.decrypt_residues(sums)])
    offs = np.concatenate([[0], np.cumsum(nb)])
    want = np.zeros(2 * offs[-1], dtype=np.int64)
    for j in range(len(nb)):
        np.add.at(want, node * offs[-1] + offs[j] + codes[:, j], vals)
    np.testing.assert_array_equal(got, want)


def test_pipeline_parameter_he_scheme():
    from jointml.jobs.registry import MODEL_RULES, SecureBoostEntry

    assert SecureBoostEntry().build(None, he_scheme="paillier").he_scheme == "paillier"
    assert SecureBoostEntry().build(None).he_scheme == "ou"
    assert MODEL_RULES["he_scheme"].problem("rsa") is not None and MODEL_RULES["he_scheme"].problem("ou") is None
    from jointml.ml.tree import SecureBoostClassifier
    from jointml.ml.tree.secureboost.errors import SecureBoostError

    with pytest.raises(SecureBoostError, match="he_scheme"):
        SecureBoostClassifier(None, he_scheme="rsa")


def test_window_14_tables_encrypt_correctly_and_paillier_keeps_12():
    """SecureBoost's key holder uses OU tables of window 14 (16 products per nonce instead
    of 19): encryptions still decrypt exactly, nonces are fresh, and 15 is refused; the
    Paillier default stays within its own limit of 12."""
    from jointml.ml.tree import SecureBoostClassifier
    from jointml.ml.tree.secureboost.errors import SecureBoostError

    pk, sk = generate_ou_keypair(KEY, window=14)
    vals = _rng(3).integers(-(2**40), 2**40, 50)
    ct = pk.encrypt(vals)
    assert sk.decrypt(ct).tolist() == vals.tolist()
    z = pk.nonces(20, n_jobs=1)
    assert sk.decrypt_residues(z) == [0] * 20 and len(set(z)) == 20
    with pytest.raises(ParameterError, match="window"):
        OUPublicKey(pk.n, pk.g, pk.h, window=15)
    with pytest.raises(SecureBoostError, match="encrypt_window"):
        SecureBoostClassifier(None, he_scheme="paillier", encrypt_window=14)
    assert SecureBoostClassifier(None, he_scheme="ou", encrypt_window=14).encrypt_window == 14
