"""Errors raised across jointml: one hierarchy, each error naming the party and the field.

Every error jointml raises is a `JointMLError`. The subclasses that replace a builtin
error also derive from it (`DataError` is a `ValueError`, `ClusterError` a
`RuntimeError`), so code written against the builtin keeps working.

>>> e = DataError("column has NaN values", party="bank", field="income")
>>> str(e)
"party 'bank', field 'income': column has NaN values"
>>> (e.party, e.field, isinstance(e, ValueError))
('bank', 'income', True)

What peers see: a failing party's error text may quote its data (a dirty cell in a
`DataError`), so only `public_message()` leaves the party (abort frames, enclave error
replies): the error class, the party, the field, and the text only when the raising code
marked it safe (``public=True``, or a safe text ``public="..."``). The full message stays
in the local exception and log.

>>> DataError("bad value 'ACCT-4711'", party="bank", field="id").public_message()
"DataError at party 'bank' (field 'id')"
>>> DataError("column is constant", party="bank", field="c", public=True).public_message()
"DataError at party 'bank' (field 'c'): column is constant"
"""

from __future__ import annotations


class JointMLError(Exception):
    """Base class of all jointml errors.

    `party` names the party whose data, configuration or message is at fault and
    `field` the column, parameter or message field, where they apply. When given, they
    are prefixed to the message unless the message already names them, so a user sees
    one sentence saying who and what.

    `public` says what may be shown to *other* parties (see :meth:`public_message`):
    ``True`` when the message is built only from names, shapes and protocol facts (no
    data values), or a separate safe text. By default peers see no message text.
    """

    #: subclasses whose messages are, by construction, free of data values (protocol
    #: refusals built from party names, tags and key facts) set this to True
    safe_text: bool = False
    party: str | None = None
    field: str | None = None
    public: str | bool | None = None

    def __init__(
        self,
        message: str = "",
        *args: object,
        party: str | None = None,
        field: str | None = None,
        public: str | bool | None = None,
    ):
        self.party = party
        self.field = field
        self.public = public
        self._raw = str(message)
        super().__init__(_prefix(str(message), party, field), *args)

    def public_message(self, party: str | None = None) -> str:
        """The text other parties may receive: class, party, field and a safe message only.

        `party` is the party that failed (used when the error names none).

        >>> DataError("cell 'John Q.' is not a number", field="income").public_message("bank")
        "DataError at party 'bank' (field 'income')"
        >>> ParameterError("bad epochs", field="epochs", public="epochs must be >= 1").public_message()
        "ParameterError (field 'epochs'): epochs must be >= 1"
        """
        return public_summary(self, party)


def public_summary(exc: BaseException, party: str | None = None, safe_types: tuple[type, ...] = ()) -> str:
    """What other parties may learn of `exc`, raised at `party`: never data values.

    The class name, the party and the field always; the message only when the raising
    code marked it safe (``public=``), or the class (or one of `safe_types`) builds its
    messages from names and protocol facts only. Non-jointml exceptions (a bare
    ``ValueError`` from numpy or user code) give only their class name.

    >>> public_summary(ValueError("could not convert 'ACCT-4711 John Q. Customer'"), "bank")
    "ValueError at party 'bank'"
    >>> public_summary(AccessDenied("not a result party"), "enclave")
    "AccessDenied at party 'enclave': not a result party"
    """
    where = type(exc).__name__
    p = getattr(exc, "party", None) if isinstance(exc, JointMLError) else None
    p = p or party
    if p:
        where += f" at party '{p}'"
    if not isinstance(exc, JointMLError):
        return where + (": " + str(exc) if isinstance(exc, safe_types) and safe_types else "")
    if exc.field is not None:
        where += f" (field '{exc.field}')"
    if isinstance(exc.public, str):
        return f"{where}: {exc.public}"
    if exc.public is True or exc.safe_text or (safe_types and isinstance(exc, safe_types)):
        return f"{where}: {getattr(exc, '_raw', None) or str(exc)}"
    return where


def _prefix(message: str, party: str | None, field: str | None) -> str:
    where = []
    if party is not None and f"'{party}'" not in message:
        where.append(f"party '{party}'")
    if field is not None and f"'{field}'" not in message:
        where.append(f"field '{field}'")
    return f"{', '.join(where)}: {message}" if where else message


class EncodingRangeError(JointMLError, ValueError):
    """A value does not fit the fixed-point / ring representation."""


class WireFormatError(JointMLError, ValueError):
    """A frame or message is malformed, truncated, or not what the protocol expects."""


class LinkError(JointMLError, ConnectionError):
    """Base class of link failures; `party` names the peer."""

    # built from party names, tags and sequence numbers (a peer's abort carries only its
    # public text): safe to pass on
    safe_text = True

    def __init__(self, message: str, party: str | None = None):
        # the peer is part of every link message already: keep the text as written
        super().__init__(message)
        self.party = party


class PeerUnreachable(LinkError):
    """A peer could not be reached before the connect deadline."""


class PeerClosed(LinkError):
    """A peer closed its connection (it exited or crashed)."""


class PeerAborted(LinkError):
    """A peer reported that its program failed; the message carries its error."""


class LinkTimeout(LinkError, TimeoutError):
    """No message arrived from a peer within the timeout."""


class ProtocolOutOfSync(LinkError):
    """The next message from a peer is not the one this party expects.

    Two parties running the same SPMD program diverged (different branches, a
    different number of operations): fail fast instead of hanging or computing
    garbage."""


class AuthenticationError(LinkError):
    """A peer's certificate does not match the party it claims to be."""


class ConfigError(JointMLError, ValueError):
    """A cluster or job configuration is invalid."""


class MissingDependency(ConfigError, ImportError):
    """An optional package is not installed; the message names the extra that installs it
    (`pip install 'jointml[parquet]'`). Raised by `jointml.core.optional.require`."""


class UnknownParty(JointMLError, KeyError):
    """A party name that is not part of the cluster or has no link (a `KeyError` too)."""


class DataError(JointMLError, ValueError):
    """Bad input data (wrong columns, NaN, mismatched rows); names the party and the column."""


class ParameterError(JointMLError, ValueError):
    """An argument or hyperparameter is out of range or of the wrong kind; names the field."""


class ParameterTypeError(ParameterError, TypeError):
    """An argument of a type the function cannot take (a ``TypeError`` too); names the field.

    >>> e = ParameterTypeError("scores must be a SecretArray", field="scores")
    >>> isinstance(e, TypeError), isinstance(e, ParameterError), e.field
    (True, True, 'scores')
    """


#: The name `jointml.data.secure.metrics` exported first: the same class.
ArgumentTypeError = ParameterTypeError


class ColumnTypeError(DataError, TypeError):
    """A column holds values of a type the code cannot use (text where numbers are needed,
    values that cannot be ordered); a `DataError` and a ``TypeError``; `field` names the column.

    >>> isinstance(ColumnTypeError("not numeric", field="city"), TypeError)
    True
    """


class UnknownColumnError(DataError, KeyError):
    """A column that the data or a fitted transformer does not have (a ``KeyError`` too).

    >>> e = UnknownColumnError("no column 'age'", field="age")
    >>> isinstance(e, KeyError), e.field
    (True, 'age')
    """


class ModelError(JointMLError, ValueError):
    """A model cannot be trained, used or loaded as asked (unfitted, inconsistent parts...)."""


class ProtocolError(JointMLError, ValueError):
    """A cryptographic protocol was misused or received a value it cannot accept."""


class CryptoError(JointMLError, ValueError):
    """Invalid key material, ciphertext or encoding (HE, PSI, sealing)."""


class UnsupportedOperation(JointMLError, TypeError):
    """An operation the object does not support (multiplying two Paillier ciphertexts,
    pickling a private key); a ``TypeError``, as Python raises for unsupported operands.

    >>> isinstance(UnsupportedOperation("cannot multiply two ciphertexts"), TypeError)
    True
    """


class EncodingOverflowError(JointMLError, OverflowError):
    """A value or a homomorphic result left the range its encoding can represent (an
    ``OverflowError``, as before: it is not a bad argument but a computation out of range).

    >>> isinstance(EncodingOverflowError("sum exceeds n // 3"), OverflowError)
    True
    """


class AccessDenied(JointMLError, PermissionError):
    """A party asked for data, a result or a role it is not entitled to (a ``PermissionError``).

    >>> e = AccessDenied("not a result party of this enclave", party="mallory")
    >>> isinstance(e, PermissionError), str(e)
    (True, "party 'mallory': not a result party of this enclave")
    """

    # a refusal names who asked for what (party, result, role): no data values
    safe_text = True


class NotOwnerError(JointMLError):
    """Reading the value of an object at a party that does not own it."""


class ResourceError(JointMLError, RuntimeError):
    """A worker, enclave or other resource failed or is unavailable."""


class PersistError(JointMLError, ValueError):
    """A saved model part is missing, of another format or version, or does not match its peers."""
