"""Cluster configuration for real deployments (YAML).

```yaml
parties:                    # in this order: earlier parties dial later ones
  bank:    {address: "10.0.0.1:9100", cert: certs/bank.crt, key: certs/bank.key}
  partner: {address: "10.0.0.2:9100", fingerprint: "sha256:4f0c..."}   # optional pin
  dealer:  {address: "10.0.0.3:9100", fingerprint: "sha256:9a71..."}
ca: certs/ca.crt
connect_timeout: 60         # seconds, optional
recv_timeout: 600           # seconds, optional
```

Relative paths are resolved against the YAML file's folder. Each party needs only
its own key; the other parties' `cert`/`key` entries may be omitted on its copy.
`fingerprint` (optional, `jointml certs fingerprint certs/partner.crt`) pins the
certificate a peer must present: a peer with any other certificate is refused at
link setup, even if the cluster CA signed it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import ConfigError
from ..net.certs import check_party_name, normalize_fingerprint
from ..net.tcp import TlsFiles


@dataclass
class PartySpec:
    """One party of a cluster file: its name, address and (at that party) its certificate and key."""

    name: str
    host: str
    port: int
    cert: Path | None = None
    key: Path | None = None
    fingerprint: str | None = None


@dataclass
class ClusterConfig:
    """A deployment's parties (in dial order), the cluster CA and the link timeouts.

    >>> cfg = ClusterConfig.from_dict({"parties": {"bank": {"address": "10.0.0.1:9100"},
    ...                                            "partner": {"address": "10.0.0.2:9100"}}, "ca": "/certs/ca.crt"})
    >>> cfg.names, cfg.addresses()["partner"]
    (['bank', 'partner'], ('10.0.0.2', 9100))
    >>> ClusterConfig.from_dict({"parties": {"bank": {"address": "h:1", "fingerprint": "sha256:" + "AB" * 32}},
    ...                          "ca": "ca.crt"}).parties["bank"].fingerprint[:11]
    'sha256:abab'

    >>> cfg.tls_for("bank")
    Traceback (most recent call last):
    ...
    jointml.core.errors.ConfigError: cluster config: party 'bank' needs 'cert' and 'key'
    """

    parties: dict[str, PartySpec]
    ca: Path
    connect_timeout: float = 60.0
    recv_timeout: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """The party names, in the cluster's order (earlier parties dial later ones)."""
        return list(self.parties)

    def addresses(self) -> dict[str, tuple[str, int]]:
        """`{party: (host, port)}`."""
        return {n: (p.host, p.port) for n, p in self.parties.items()}

    def tls_for(self, me: str) -> TlsFiles:
        """The TLS files of party `me`, checked to exist."""
        p = self.parties.get(me)
        if p is None:
            raise ConfigError(f"party '{me}' is not in the cluster config (parties: {self.names})")
        if p.cert is None or p.key is None:
            raise ConfigError(f"cluster config: party '{me}' needs 'cert' and 'key'")
        for what, path in (("cert", p.cert), ("key", p.key), ("ca", self.ca)):
            if not Path(path).is_file():
                raise ConfigError(f"cluster config: {what} file for '{me}' not found: {path}")
        pins = {n: q.fingerprint for n, q in self.parties.items() if n != me and q.fingerprint is not None}
        return TlsFiles(ca=self.ca, cert=p.cert, key=p.key, pins=pins)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ClusterConfig:
        """Read a cluster YAML file; relative paths are resolved against its folder."""
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"cluster config not found: {path}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"cluster config {path} is not valid YAML: {e}") from None
        return cls.from_dict(raw, base=path.parent)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base: Path | None = None) -> ClusterConfig:
        """Build from the parsed YAML mapping; `ConfigError` names what is missing or wrong."""
        base = base or Path.cwd()
        if not isinstance(raw, dict) or not isinstance(raw.get("parties"), dict) or not raw["parties"]:
            raise ConfigError("cluster config needs a non-empty 'parties' mapping")
        if "ca" not in raw:
            raise ConfigError("cluster config needs 'ca' (the cluster CA certificate)")

        def res(p: str | None) -> Path | None:
            return None if p is None else (Path(p) if Path(p).is_absolute() else base / p)

        parties: dict[str, PartySpec] = {}
        for name, spec in raw["parties"].items():
            check_party_name(name)
            if not isinstance(spec, dict) or "address" not in spec:
                raise ConfigError(f"cluster config: party '{name}' needs an 'address' host:port")
            addr = str(spec["address"])
            host, _, port = addr.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(f"cluster config: party '{name}' has a bad address {addr!r} (want host:port)")
            fp = spec.get("fingerprint")
            fp = None if fp is None else normalize_fingerprint(fp, field=f"parties.{name}.fingerprint")
            parties[name] = PartySpec(name, host, int(port), res(spec.get("cert")), res(spec.get("key")), fp)
        ca = res(raw["ca"])
        if ca is None:
            raise ConfigError("cluster config needs 'ca' (the cluster CA certificate)", field="ca")
        known = {"parties", "ca", "connect_timeout", "recv_timeout"}
        return cls(
            parties=parties,
            ca=ca,
            connect_timeout=float(raw.get("connect_timeout", 60.0)),
            recv_timeout=float(raw["recv_timeout"]) if raw.get("recv_timeout") is not None else None,
            extra={k: v for k, v in raw.items() if k not in known},
        )
