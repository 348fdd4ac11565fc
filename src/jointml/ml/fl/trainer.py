"""The federated training loop: an aggregator and clients, rounds of local training and aggregation.

SPMD: the aggregator (`server`) and every client run `FederatedTrainer.run` at the same
program point. Each round:

1. the aggregator asks the strategy whom to sample and broadcasts the round's number, the
   sampled clients, their configuration and the global parameters to every client;
2. each sampled client trains locally from the global parameters (`FLClient.fit`);
3. *secure* (default): each sampled client submits w_i·Δ_i and w_i, with Δ_i its update
   (new − global) and w_i = min(n_i, weight_cap)/weight_cap its example weight, through one
   SecAgg+ round (`secagg.py`); the aggregator opens only Σ w_i·Δ_i and Σ w_i and hands
   them to the strategy (`Strategy.aggregate_sum`). *Plain* (`secure=False`): the clients
   send their parameters and example counts, waited for by the same straggler rule
   (`stragglers.py`); the strategy's `aggregate_fit`;
4. the strategy's server-side `evaluate`, if any, runs on the new parameters.

After the last round the aggregator broadcasts the final parameters: every party of the
loop ends with the same global model.

Adversary model and what each party learns:
- Aggregator (secure): per round, the sum of the surviving sampled clients' clipped,
  quantised, weighted updates and their total weight (so Σ min(n_i, cap)), and who dropped.
  Not one client's update or example count. Plain mode: every client's parameters and
  example count (the usual FedAvg exposure).
- Client: the global model of every round (from which, with its own update, it can
  compute the sum of the others' updates between rounds: inherent to FL; DP wraps the
  strategy against it), who was sampled.
- Nothing here protects against a client that trains on poisoned data.

>>> from jointml.core.prg import public_rng
>>> from jointml.ml.fl import FedAvg, LogisticModel, SecAggParams
>>> def prog(ctx):
...     rng = public_rng(1)
...     X = rng.normal(size=(40, 2)); y = (X[:, 0] > 0).astype(float)
...     me = ctx.me
...     client = None if me == "agg" else FLClient(LogisticModel(2), X, y, batch_size=40, learning_rate=1.0)
...     tr = FederatedTrainer(ctx, "agg", ["a", "b", "c"], LogisticModel(2), FedAvg(min_fit_clients=3),
...                           rounds=3, secagg=SecAggParams(threshold=2, min_signers=2))
...     w = tr.run(client)
...     return bool(w[0][0] > 0.5)
>>> set(simulate(prog, ["agg", "a", "b", "c"], mode="thread").values())
{True}
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from ...core.errors import DataError, ParameterError
from ...core.prg import Prg
from ...runtime.collectives import Channel, Received, broadcast, gather
from .aggregate import Parameters, WeightedSum, check_like, flatten, unflatten
from .dp import privatise
from .models import FLModel, local_train
from .secagg import SecAggSession
from .secagg_params import SecAggParams
from .stragglers import collect
from .strategy import EvaluateIns, EvaluateRes, FitIns, FitRes, Strategy
from .timing import StageClock

__all__ = ["FLClient", "FederatedTrainer"]


class FLClient:
    """A client: its rows (X, y), the model, its local optimiser settings.

    `shuffle_seed` makes the minibatch order reproducible (None: fresh AES-CTR stream).

    >>> from jointml.ml.fl import LogisticModel
    >>> c = FLClient(LogisticModel(1), np.array([[1.0], [-1.0]]), np.array([1.0, 0.0]), local_epochs=5)
    >>> r = c.fit(FitIns(LogisticModel(1).init(), {}))
    >>> r.num_examples, bool(r.parameters[0][0] > 0)
    (2, True)
    """

    def __init__(self, model: FLModel, X: np.ndarray, y: np.ndarray, *, local_epochs: int = 1,
                 learning_rate: float = 0.1, batch_size: int = 32, shuffle_seed: bytes | None = None):
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != model.n_features or len(X) != len(y):
            raise DataError(f"client data has shape {X.shape} with {len(y)} labels; the model takes "
                            f"{model.n_features} features", field="X")
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
            raise DataError("client data has NaN or infinite values", field="X")
        self.model, self.X, self.y = model, X, y
        self.local_epochs, self.learning_rate, self.batch_size = int(local_epochs), float(learning_rate), int(batch_size)
        self._prg = Prg(shuffle_seed) if shuffle_seed is not None else Prg()

    def fit(self, ins: FitIns) -> FitRes:
        """Train from `ins.parameters`; `ins.config` may set epochs, learning_rate, proximal_mu."""
        cfg = ins.config
        new = local_train(self.model, ins.parameters, self.X, self.y,
                          epochs=int(cfg.get("local_epochs", self.local_epochs)),
                          learning_rate=float(cfg.get("learning_rate", self.learning_rate)),
                          batch_size=int(cfg.get("batch_size", self.batch_size)),
                          proximal_mu=float(cfg.get("proximal_mu", 0.0)), prg=self._prg)
        return FitRes(new, len(self.y))

    def evaluate(self, ins: EvaluateIns) -> EvaluateRes:
        """Loss and accuracy of `ins.parameters` on this client's rows."""
        loss, _ = self.model.loss_grad(ins.parameters, self.X, self.y)
        acc = float(np.mean(self.model.predict_proba(ins.parameters, self.X).argmax(axis=1) == self.y))
        return EvaluateRes(loss, len(self.y), {"accuracy": acc})


class FederatedTrainer:
    """Runs the rounds (see the module docstring). `history_` lists per-round figures at the aggregator.

    `secagg`: SecAgg+ parameters (None: `SecAggParams()`); `weight_cap`: example counts above it
    weigh as much as `weight_cap` (the weights must be bounded to fit the clipping range);
    `evaluate_every`: every that many rounds (and after the last), the clients chosen by
    `configure_evaluate` evaluate the new global model on their rows; with secure aggregation
    only Σ w_i·loss_i, Σ w_i·accuracy_i and Σ w_i are opened (losses clipped to `secagg.clip`),
    handed to `aggregate_evaluate` as one pooled result.

    >>> from jointml.ml.fl import FedAvg, LogisticModel
    >>> FederatedTrainer(None, "agg", ["a", "b"], LogisticModel(2), FedAvg(), rounds=2).group
    ['agg', 'a', 'b']
    """

    def __init__(self, ctx: Any, server: str, clients: Sequence[str], model: FLModel, strategy: Strategy, *,
                 rounds: int = 10, secure: bool = True, secagg: SecAggParams | None = None,
                 weight_cap: float = 1000.0, init_seed: int = 0, evaluate_every: int = 0):
        if int(rounds) < 1:
            raise ParameterError(f"must be >= 1, got {rounds!r}", field="rounds")
        if not weight_cap > 0:
            raise ParameterError(f"must be > 0, got {weight_cap!r}", field="weight_cap")
        self.ctx, self.server, self.clients = ctx, server, list(clients)
        self.model, self.strategy, self.rounds, self.secure = model, strategy, int(rounds), bool(secure)
        self.secagg = secagg if secagg is not None else SecAggParams()
        self.weight_cap, self.init_seed = float(weight_cap), int(init_seed)
        if int(evaluate_every) < 0:
            raise ParameterError(f"must be >= 0, got {evaluate_every!r}", field="evaluate_every")
        self.evaluate_every = int(evaluate_every)
        self.history_: list[dict[str, Any]] = []
        self.session: SecAggSession | None = None
        self._late: dict[str, str] = {}  # (aggregator, plain) clients whose update came after the wait
        #: this party's CPU seconds by stage, one dict per round (the first also holds the set-up, an
        #: extra last one the final broadcast): the benchmark's critical path (`timing`)
        self.cpu_: list[dict[str, float]] = []
        self.clock = StageClock()

    @property
    def group(self) -> list[str]:
        return [self.server, *self.clients]

    def run(self, client: FLClient | None = None, dropouts: dict[int, dict[str, str]] | None = None) -> Parameters:
        """Train; returns the final global parameters (at every party of the loop).

        A client passes its `FLClient`; the aggregator None. `dropouts` ({round: {client:
        stage}}, simulation only) makes a client stop answering at that SecAgg stage (plain
        FedAvg: it sends no update that round); pass the same dict at every party.
        """
        me = self.ctx.me
        if me in self.clients and client is None:
            raise ParameterError(f"client '{me}' must pass its FLClient to run()", party=me, field="client")
        self.cpu_, clock = [], self.clock
        clock.reset()
        clock.enter("setup")
        params = self._initial()
        if self.secure:
            self.session = SecAggSession(self.ctx, self.server, self.clients, self.secagg)
            self.session.clock = clock
        for rnd in range(1, self.rounds + 1):
            params = self._round(rnd, params, client, (dropouts or {}).get(rnd, {}))
            self.cpu_.append(clock.snapshot())
            clock.reset()
        clock.enter("final")
        if self.session is not None:
            self.session.close()  # late answers of slow clients are read before the links are used again
        got = broadcast(self.ctx, self.server, arrays=params if me == self.server else [], to=self.group,
                        name="fl-final")
        out = [np.asarray(a, dtype=np.float64) for a in got.arrays]
        self.cpu_.append(clock.snapshot())
        return out

    def _initial(self) -> Parameters:
        init = None
        if self.ctx.me == self.server:
            init = self.strategy.initialize() or self.model.init(self.init_seed)
            check_like(self.model.init(self.init_seed), init, self.server)
        got = broadcast(self.ctx, self.server, arrays=init or [], to=self.group, name="fl-init")
        return [np.asarray(a, dtype=np.float64) for a in got.arrays]

    def _round(self, rnd: int, params: Parameters, client: FLClient | None, drops: dict[str, str]) -> Parameters:
        me, t0 = self.ctx.me, time.monotonic()
        self.clock.enter("round")
        meta = None
        if me == self.server:
            ins = self.strategy.configure_fit(rnd, params, self.clients)
            meta = {"round": rnd, "sampled": list(ins), "config": {c: i.config for c, i in ins.items()}}
        got = broadcast(self.ctx, self.server, meta=meta, arrays=params if me == self.server else [],
                        to=self.group, name="fl-round")
        sampled = [str(c) for c in got.meta["sampled"]]
        params = [np.asarray(a, dtype=np.float64) for a in got.arrays]
        check_like(self.model.init(self.init_seed), params, self.server)
        self.clock.enter("fit")
        res = client.fit(FitIns(params, dict(got.meta["config"][me]))) if client is not None and me in sampled else None
        self.clock.enter("update")
        if self.secure:
            new, info = self._secure_step(rnd, params, sampled, res, drops.get(me), dict(got.meta["config"].get(me, {})))
        else:
            new, info = self._plain_step(rnd, params, sampled, res, drops)
        federated = {}
        self.clock.enter("evaluate")
        if self.evaluate_every and (rnd % self.evaluate_every == 0 or rnd == self.rounds):
            federated = self._evaluate(rnd, new, client)
        if me == self.server:
            ev = self.strategy.evaluate(rnd, new)
            self.history_.append({"round": rnd, "sampled": len(sampled), **info, **federated,
                                  "seconds": time.monotonic() - t0, **({"loss": ev[0], **ev[1]} if ev else {})})
        return new

    def _evaluate(self, rnd: int, params: Parameters, client: FLClient | None) -> dict[str, Any]:
        """Federated evaluation of `params` (the aggregator's new model) by the chosen clients."""
        me = self.ctx.me
        meta = {"sampled": list(self.strategy.configure_evaluate(rnd, params, self.clients))} if me == self.server else None
        got = broadcast(self.ctx, self.server, meta=meta, arrays=params if me == self.server else [], to=self.group,
                        name="fl-eval")
        chosen = [str(c) for c in got.meta["sampled"]]
        res = None
        if client is not None and me in chosen:
            res = client.evaluate(EvaluateIns([np.asarray(a, dtype=np.float64) for a in got.arrays], {}))
        if self.secure:
            assert self.session is not None
            vec = None
            if res is not None:
                w = min(float(res.num_examples), self.weight_cap) / self.weight_cap
                vec = np.array([w * min(res.loss, self.secagg.clip), w * res.metrics["accuracy"], w])
            out = self.session.aggregate(vec, chosen, dim=3)
            if out is None:
                return {}
            t = out.total
            pooled = {"pooled": EvaluateRes(float(t[0] / t[2]), max(1, round(t[2] * self.weight_cap)),
                                            {"accuracy": float(t[1] / t[2])})}
            loss, metrics = self.strategy.aggregate_evaluate(rnd, pooled, out.dropped)
        else:
            g = gather(self.ctx, self.server, senders=chosen, name="fl-eval-plain",
                       meta={"loss": res.loss, "n": res.num_examples, "metrics": res.metrics} if res else None)
            if g is None:
                return {}
            loss, metrics = self.strategy.aggregate_evaluate(
                rnd, {c: EvaluateRes(float(r.meta["loss"]), int(r.meta["n"]), dict(r.meta["metrics"]))
                      for c, r in g.items()}, [])
        return {"eval_loss": loss, **{f"eval_{k}": v for k, v in metrics.items()}}

    def _secure_step(self, rnd: int, params: Parameters, sampled: list[str], res: FitRes | None,
                     drop_at: str | None, cfg: dict[str, Any]) -> tuple[Parameters, dict[str, Any]]:
        assert self.session is not None
        dim = int(sum(np.size(p) for p in params)) + 1
        vec = None
        if res is not None:
            check_like(params, res.parameters, self.ctx.me)
            # the update and its weight in one vector, built in place (a 100k-parameter model: a few
            # passes over 800 kB fewer per client and round than subtract/flatten/scale/append)
            vec = np.empty(dim)
            delta = vec[:-1]
            np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1) for p in res.parameters], out=delta)
            delta -= flatten(params)
            if "dp_clip_norm" in cfg:  # DPFedAvg: clipped, noised, weight 1 (bounded contribution)
                delta[:] = privatise(delta, float(cfg["dp_clip_norm"]), float(cfg["dp_noise_std"]))
                vec[-1] = 1.0
            else:
                w = min(float(res.num_examples), self.weight_cap) / self.weight_cap
                delta *= w
                vec[-1] = w
        out = self.session.aggregate(vec, sampled, dim=dim, drop_at=drop_at)
        if out is None:
            return params, {}
        self.last_fit_view_ = self.session.last_view_  # what the aggregator received for the update
        ws = WeightedSum(unflatten(out.total[:-1], params), float(out.total[-1]), out.count)
        new = self.strategy.aggregate_sum(rnd, params, ws)
        return new, {"clients": out.count, "dropped": len(out.dropped)}

    def _plain_step(self, rnd: int, params: Parameters, sampled: list[str], res: FitRes | None,
                    drops: dict[str, str]) -> tuple[Parameters, dict[str, Any]]:
        """Plain FedAvg: the sampled clients send their parameters and counts; the aggregator waits
        by the same rule as SecAgg+ (`stragglers.collect`: `secagg.timeout` after the last answer),
        so a client that crashed (or is in `drops`, the simulated dropouts) is left out alike."""
        uid = self.ctx.next_uid("fl-plain:")
        me = self.ctx.me
        if me in sampled and me != self.server and res is not None and me not in drops:
            Channel(self.ctx, self.server, uid).send("fit", meta={"n": res.num_examples}, arrays=res.parameters)
        if me != self.server:
            return params, {}
        got, silent = collect(lambda c, wait: self._plain_recv(c, uid, wait), [c for c in sampled if c != me],
                              start_timeout=self.secagg.start_timeout, timeout=self.secagg.timeout,
                              clock=self.clock)
        # a straggler's update still comes: read before its next one (simulated dropouts send none)
        self._late.update({c: uid for c in silent if c not in drops})
        results = {c: FitRes([np.asarray(a, dtype=np.float64) for a in r.arrays], int(r.meta["n"]))
                   for c, r in got.items()}
        if not results:
            raise DataError(f"round {rnd}: no sampled client answered within the timeout (dropped: {silent})",
                            party=self.server, field="clients")
        new, metrics = self.strategy.aggregate_fit(rnd, params, results, silent)
        return new, {**metrics, "clients": len(results), "dropped": len(silent)}

    def _plain_recv(self, c: str, uid: str, wait: float) -> Received:
        while c in self._late:  # an update counted late in an earlier round comes first on the link
            Channel(self.ctx, c, self._late[c]).recv("fit", timeout=wait)
            del self._late[c]
        return Channel(self.ctx, c, uid).recv("fit", timeout=wait)
