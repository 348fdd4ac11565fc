"""Enclave cluster manager: attested admission, data-key provisioning, heartbeats, work, failover.

The manager runs on an untrusted host. It

* **admits** an enclave only after verifying its quote against the manager's policy
  (fresh nonce, allow-listed measurement, platform/simulation flags);
* **provisions the cluster data key** without ever seeing it: the first enclave
  generates it inside and returns it *sealed* to its measurement (the host keeps that
  ciphertext, so a restarted enclave of the same program can unseal it); every later
  enclave receives it from a key-holding enclave after *mutual* attestation inside the
  enclaves (each verifies the other's quote against its measured ``peer_policy``): the
  holder encrypts the key to the newcomer's attested X25519 key and signs it with its
  attested Ed25519 key. The manager only relays ciphertext;
* **heartbeats** every member; one that misses its heartbeat deadline or whose process
  exits is marked dead (and killed), and the task it held goes back to the queue;
* **scales out / replaces**: ``admit()`` adds an enclave at any time, also mid-job;
  with ``auto_replace=True`` a dead member is replaced automatically;
* **assigns work**: tasks (inputs and outputs are data-key ciphertexts) are pulled from
  a queue by one worker per live member, so newly admitted enclaves take work at once
  and a job completes with the same result after a member dies.

:attr:`ClusterManager.relay_log` is everything the manager ever sent to or received from
an enclave; tests check it contains no plaintext and no data key.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..core.errors import JointMLError
from .attestation import AttestedEnclave, Policy, Verifier
from .enclave import Enclave, EnclaveDied, EnclaveError
from .platform import SIMULATION_LABEL

log = logging.getLogger("jointml.tee.manager")


class ClusterError(JointMLError, RuntimeError):
    """The cluster could not complete a job (a task failed, no enclave left, timeout)."""


@dataclass
class Task:
    meta: dict
    arrays: Sequence[np.ndarray] = ()


@dataclass
class Member:
    name: str
    enclave: Enclave
    attested: AttestedEnclave
    alive: bool = True
    tasks_done: list = field(default_factory=list)
    current: int | None = None


class _Job:
    def __init__(self, tasks: Sequence[Task]):
        self.tasks = list(tasks)
        self.queue: queue.Queue = queue.Queue()
        for i in range(len(self.tasks)):
            self.queue.put(i)
        self.results: dict[int, list] = {}
        self.ran_on: dict[int, str] = {}
        self.error: BaseException | None = None
        self.cond = threading.Condition()

    @property
    def finished(self) -> bool:
        return self.error is not None or len(self.results) == len(self.tasks)


class ClusterManager:
    """Manages a pool of attested enclaves running one registered program (SIMULATED TEE)."""

    def __init__(self, program: str, config: dict, policy: Policy, *, platform_dir: str | os.PathLike | None = None,
                 debug: bool = False, heartbeat_interval: float = 0.25, heartbeat_timeout: float = 3.0,
                 auto_replace: bool = False):
        self.program = program
        self.config = config
        self.verifier = Verifier(policy)
        self.platform_dir = platform_dir
        self.debug = debug
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.auto_replace = auto_replace
        self.members: dict[str, Member] = {}
        self.sealed_data_key: bytes | None = None  # ciphertext sealed to the measurement; the host may store it
        self.events: list[str] = []
        self._names = itertools.count(1)
        self._lock = threading.RLock()
        self._job: _Job | None = None
        self._stop = threading.Event()
        self._retired: list[Enclave] = []
        self._hb = threading.Thread(target=self._heartbeat_loop, name="tee-heartbeats", daemon=True)
        self._hb.start()
        self._event(f"{SIMULATION_LABEL}: cluster manager for program {program}")

    def _event(self, msg: str) -> None:
        self.events.append(msg)
        log.info("%s", msg)

    # -- admission ------------------------------------------------------------------
    def admit(self, name: str | None = None) -> str:
        """Start an enclave, verify its quote, give it the data key, and put it to work."""
        with self._lock:
            while name is None or name in self.members:
                if name is not None and name in self.members:
                    raise ClusterError(f"an enclave named {name!r} is already a member")
                name = f"enclave-{next(self._names)}"
                if name in self.members:
                    name = None
        enc = Enclave(self.program, self.config, platform_dir=self.platform_dir, debug=self.debug, name=name)
        try:
            attested = self.verifier.verify(enc.attest(self.verifier.challenge()))
            with self._lock:
                holders = [m for m in self.members.values() if m.alive]
            if holders:
                how = None
                for h in holders:  # a holder may die meanwhile: try the next one
                    try:
                        self._provision(h, enc)
                    except EnclaveDied:
                        if not enc.alive:
                            raise
                        continue
                    how = f"data key from {h.name} over an attested channel"
                    break
                if how is None:
                    raise ClusterError(f"no key-holding enclave answered while admitting {name}")
            elif self.sealed_data_key is not None:
                enc.request("key_unseal", arrays=[np.frombuffer(self.sealed_data_key, np.uint8)])
                how = "data key unsealed from host storage"
            else:
                r = enc.request("key_generate")
                self.sealed_data_key = r.arrays[0].tobytes()
                how = "generated a new data key"
        except BaseException:
            enc.kill()
            self._retired.append(enc)
            raise
        m = Member(name, enc, attested)
        with self._lock:
            self.members[name] = m
            job = self._job
        self._event(f"admitted {name} (pid {enc.pid}, measurement {attested.measurement[:16]}): {how}")
        if job is not None and not job.finished:
            self._start_worker(m, job)
        return name

    def _provision(self, holder: Member, new: Enclave) -> None:
        """Mutual attestation inside the two enclaves, then the key moves encrypted holder -> new."""
        h = holder.enclave
        q_new = new.attest(h.request("challenge").meta["nonce"])
        q_holder = h.attest(new.request("challenge").meta["nonce"])
        r = h.request("key_export", {"quote": q_new.to_dict()})
        new.request("key_import", {"quote": q_holder.to_dict(), "eph": r.meta["eph"], "signature": r.meta["signature"]},
                    r.arrays)

    # -- liveness -------------------------------------------------------------------
    def _mark_dead(self, m: Member, why: str) -> None:
        with self._lock:
            if not m.alive:
                return
            m.alive = False
        self._event(f"{m.name} declared dead: {why}")
        m.enclave.kill()
        if self.auto_replace and not self._stop.is_set():
            threading.Thread(target=self._replace, args=(m.name,), name="tee-replace", daemon=True).start()

    def _replace(self, dead: str) -> None:
        try:
            name = self.admit()
            self._event(f"{name} admitted to replace {dead}")
        except Exception as e:  # noqa: BLE001 -- reported, the job keeps running on the others
            self._event(f"could not replace {dead}: {type(e).__name__}: {e}")

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_interval):
            with self._lock:
                live = [m for m in self.members.values() if m.alive]
            for m in live:
                try:
                    m.enclave.heartbeat(timeout=self.heartbeat_timeout)
                except EnclaveError as e:
                    self._mark_dead(m, f"missed heartbeat ({e.error_type or e})")

    @property
    def alive_members(self) -> list[str]:
        with self._lock:
            return [m.name for m in self.members.values() if m.alive]

    # -- work -----------------------------------------------------------------------
    def _start_worker(self, m: Member, job: _Job) -> None:
        threading.Thread(target=self._worker, args=(m, job), name=f"{m.name}-worker", daemon=True).start()

    def _worker(self, m: Member, job: _Job) -> None:
        while m.alive and not job.finished:
            try:
                i = job.queue.get(timeout=0.05)
            except queue.Empty:
                continue
            t = job.tasks[i]
            m.current = i
            try:
                r = m.enclave.request("task", t.meta, t.arrays, timeout=600)
            except EnclaveDied as e:
                job.queue.put(i)
                self._event(f"task {i} lost with {m.name}; reassigned")
                self._mark_dead(m, str(e))
                return
            except EnclaveError as e:
                with job.cond:
                    job.error = ClusterError(f"task {i} ({t.meta.get('op')}) failed on {m.name}: {e}")
                    job.cond.notify_all()
                return
            finally:
                m.current = None
            with job.cond:
                job.results[i] = list(r.arrays)
                job.ran_on[i] = m.name
                m.tasks_done.append(i)
                job.cond.notify_all()

    def run(self, tasks: Sequence[Task], timeout: float = 300.0) -> list[list[np.ndarray]]:
        """Run tasks on the live members; returns each task's output arrays in task order."""
        job = _Job(tasks)
        with self._lock:
            if self._job is not None and not self._job.finished:
                raise ClusterError("a job is already running")
            self._job = job
            live = [m for m in self.members.values() if m.alive]
        if not live:
            raise ClusterError("no live enclave in the cluster; admit() one first")
        for m in live:
            self._start_worker(m, job)
        end = time.monotonic() + timeout
        with job.cond:
            while not job.finished:
                left = end - time.monotonic()
                if left <= 0:
                    job.error = ClusterError(f"job timed out with {len(job.results)}/{len(job.tasks)} tasks done; "
                                             f"live enclaves: {self.alive_members}")
                    break
                job.cond.wait(min(left, 0.1))
        if job.error is not None:
            raise job.error
        self.last_job_placement = dict(job.ran_on)
        return [job.results[i] for i in range(len(job.tasks))]

    @property
    def relay_log(self) -> list[tuple[str, bytes]]:
        with self._lock:
            encs = [m.enclave for m in self.members.values()] + list(self._retired)
        return [rec for e in encs for rec in list(e.relay_log)]

    def close(self) -> None:
        self._stop.set()
        self._hb.join(5)
        with self._lock:
            members = list(self.members.values())
        for m in members:
            if m.alive:
                m.enclave.close()
            else:
                m.enclave.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

