import os
import time

import numpy as np
import pytest
import yaml

from jointml.core.errors import ConfigError
from jointml.runtime import ClusterConfig, NotOwnerError, PartyFailed, run_party, simulate


def _prog(ctx):
    x = ctx.party("alice").run(lambda: np.arange(4.0))
    y = x.to(ctx.party("bob"))
    return {"me": ctx.me, "y": None if ctx.me != "bob" else y.value.tolist()}


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_spmd_results_per_party(mode):
    res = simulate(_prog, ["alice", "bob"], mode=mode)
    assert res["alice"] == {"me": "alice", "y": None}
    assert res["bob"]["y"] == [0.0, 1.0, 2.0, 3.0]


def test_value_only_at_owner():
    def prog(ctx):
        x = ctx.party("alice").run(lambda: 1)
        if ctx.me == "bob":
            with pytest.raises(NotOwnerError):
                x.value
        return True

    assert all(simulate(prog, ["alice", "bob"], mode="thread").values())


def _crash(ctx):
    if ctx.me == "bob":
        raise ValueError("bob's input file is missing column 'age'")
    ctx.comm.recv("bob", "never")  # would hang without fail-fast


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_party_crash_fails_fast_with_its_error(mode):
    t = time.time()
    with pytest.raises(PartyFailed) as ei:
        simulate(_crash, ["alice", "bob", "carol"], mode=mode, timeout=60)
    assert time.time() - t < 20
    assert ei.value.party == "bob" and "column 'age'" in str(ei.value)


def _hard_exit(ctx):
    if ctx.me == "bob":
        os._exit(3)
    ctx.comm.recv("bob", "never")


def test_killed_process_fails_fast():
    t = time.time()
    with pytest.raises(PartyFailed):
        simulate(_hard_exit, ["alice", "bob"], mode="process", timeout=60)
    assert time.time() - t < 25


def test_diverging_programs_are_out_of_sync():
    def prog(ctx):
        other = "bob" if ctx.me == "alice" else "alice"
        ctx.comm.send(other, "step-" + ctx.me)
        ctx.comm.recv(other, "step-" + ctx.me)

    with pytest.raises(PartyFailed, match="out of sync"):
        simulate(prog, ["alice", "bob"], mode="thread")


def test_bad_party_names():
    with pytest.raises(ConfigError):
        simulate(_prog, ["alice", "alice"], mode="thread")
    with pytest.raises(ConfigError):
        simulate(_prog, ["al ice", "bob"], mode="thread")


def test_cluster_config_and_run_party(tmp_path):
    import socket
    import threading

    from jointml.net.certs import create_dev_pki

    create_dev_pki(tmp_path / "certs", ["alice", "bob"])
    ports = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        ports.append(s.getsockname()[1])
        s.close()
    cfg = {
        "parties": {n: {"address": f"127.0.0.1:{p}", "cert": f"certs/{n}.crt", "key": f"certs/{n}.key"} for n, p in zip(["alice", "bob"], ports)},
        "ca": "certs/ca.crt",
        "connect_timeout": 20,
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cluster = ClusterConfig.load(path)
    assert cluster.names == ["alice", "bob"]
    out = {}

    def go(n):
        out[n] = run_party(_prog, n, str(path))

    ts = [threading.Thread(target=go, args=(n,)) for n in ["alice", "bob"]]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert out["bob"]["y"] == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    "raw,msg",
    [
        ({}, "parties"),
        ({"parties": {"a": {"address": "x:1"}}}, "ca"),
        ({"parties": {"a": {"address": "nohost"}}, "ca": "c"}, "bad address"),
        ({"parties": {"a b": {"address": "h:1"}}, "ca": "c"}, "invalid party name"),
    ],
)
def test_cluster_config_errors(raw, msg):
    with pytest.raises(ConfigError, match=msg):
        ClusterConfig.from_dict(raw)


def test_cluster_missing_party_and_files(tmp_path):
    c = ClusterConfig.from_dict({"parties": {"a": {"address": "h:1", "cert": "x.crt", "key": "x.key"}}, "ca": "ca.crt"}, base=tmp_path)
    with pytest.raises(ConfigError, match="not in the cluster"):
        c.tls_for("zed")
    with pytest.raises(ConfigError, match="not found"):
        c.tls_for("a")


def test_unreturnable_result_fails_fast():
    import threading

    def prog(ctx):
        return threading.Lock()  # cannot be pickled back to the launcher

    t = time.time()
    with pytest.raises(PartyFailed, match="cannot be sent back"):
        simulate(prog, ["alice", "bob"], mode="process", timeout=60)
    assert time.time() - t < 20


def test_party_objects_can_be_returned_from_processes():
    def prog(ctx):
        return ctx.party("alice").run(lambda: np.arange(3))

    res = simulate(prog, ["alice", "bob"], mode="process")
    assert res["alice"].value.tolist() == [0, 1, 2] and res["alice"].owner == "alice"
    with pytest.raises(NotOwnerError):
        res["bob"].value


def test_readme_example():
    """The program shown in README.md."""
    from jointml.mpc import MpcDevice

    def program(ctx):
        mpc = MpcDevice(ctx, ["bank", "partner"], protocol="semi2k", dealer="dealer")
        income = ctx.party("bank").run(lambda: np.array([4.1, 2.5, 6.0])).to(mpc)
        debt = ctx.party("partner").run(lambda: np.array([1.0, 2.0, 0.5])).to(mpc)
        share_high = (debt > income * 0.4).mean()
        return share_high.reveal(to="bank")

    out = simulate(program, ["bank", "partner", "dealer"])
    assert out["bank"].value == pytest.approx(1 / 3, abs=1e-4)
