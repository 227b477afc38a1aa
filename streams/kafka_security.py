"""How the project's Kafka clients log in to a secured broker (deploy/security/).

One setting for every client — `workerfile topics`, `worker`, `emit`, `subscribe`,
`sink`, `stats follow/serve/recount`, and the library functions behind them — read from
the environment (the commands' `--kafka-user`, `--kafka-password-file` and
`--kafka-config` options override it):

| variable | default | meaning |
|---|---|---|
| WORKERFILE_KAFKA_SECURITY_PROTOCOL | PLAINTEXT (SASL_PLAINTEXT when a user or a config file is given) | PLAINTEXT, SASL_PLAINTEXT or SASL_SSL |
| WORKERFILE_KAFKA_SASL_MECHANISM | SCRAM-SHA-512 | SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN |
| WORKERFILE_KAFKA_USER | — | the SASL user (the party's user of deploy/security/parties.toml) |
| WORKERFILE_KAFKA_PASSWORD_FILE | — | a file holding the password (one line; trailing line break ignored) |
| WORKERFILE_KAFKA_CONFIG | — | a Java client properties file (what `deploy/security/acls.py --secrets` writes): security.protocol, sasl.mechanism, sasl.jaas.config with username/password, ssl.truststore.location when ssl.truststore.type=PEM |
| WORKERFILE_KAFKA_SSL_CAFILE | system CAs | PEM file of the CAs that signed the brokers' certificates (SASL_SSL) |

An option replaces the variable of the same meaning, and `--kafka-config` replaces the
whole login of the variables (WORKERFILE_KAFKA_CONFIG, _USER, _PASSWORD_FILE);
WORKERFILE_KAFKA_USER and _PASSWORD_FILE win over WORKERFILE_KAFKA_CONFIG's file, and
_SECURITY_PROTOCOL, _SASL_MECHANISM, _SSL_CAFILE over any properties file. The password is only ever read from a
file — never from the command line or a variable (WORKERFILE_KAFKA_PASSWORD is refused
with a hint) — and never shown: not in repr()/str() of the settings, not in repr() of
the client keyword arguments, not in error messages.

Use::

    security = KafkaSecurity.from_env()
    KafkaProducer(bootstrap_servers=b, **security.kafka_python())   # kafka-python
    AIOKafkaConsumer(bootstrap_servers=b, **security.aiokafka())      # aiokafka
    faust.App(..., broker_credentials=security.faust_credentials())   # None when PLAINTEXT

A wrong or missing setting raises KafkaSecurityError naming the variable (or option).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

ENV_PROTOCOL = "WORKERFILE_KAFKA_SECURITY_PROTOCOL"
ENV_MECHANISM = "WORKERFILE_KAFKA_SASL_MECHANISM"
ENV_USER = "WORKERFILE_KAFKA_USER"
ENV_PASSWORD_FILE = "WORKERFILE_KAFKA_PASSWORD_FILE"
ENV_CONFIG = "WORKERFILE_KAFKA_CONFIG"
ENV_CAFILE = "WORKERFILE_KAFKA_SSL_CAFILE"
ENV_PASSWORD_REFUSED = "WORKERFILE_KAFKA_PASSWORD"

PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
DEFAULT_MECHANISM = "SCRAM-SHA-512"

_LOGIN_MODULES = {
    "org.apache.kafka.common.security.scram.ScramLoginModule": ("SCRAM-SHA-512", "SCRAM-SHA-256"),
    "org.apache.kafka.common.security.plain.PlainLoginModule": ("PLAIN",),
}


class KafkaSecurityError(ValueError):
    """A security setting is missing or wrong; the message names the variable or option."""


class _Secret(str):
    """A password: a plain str for the clients, hidden from repr() (dicts of client
    arguments in logs and tracebacks)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<hidden>'"


@dataclass(frozen=True)
class KafkaSecurity:
    """The login of a Kafka client. `password` is never part of repr() or str()."""

    protocol: str = "PLAINTEXT"
    mechanism: str = DEFAULT_MECHANISM
    user: str | None = None
    password: str | None = field(default=None, repr=False, compare=False)
    cafile: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise KafkaSecurityError(f"{ENV_PROTOCOL}={self.protocol!r} is not one of {', '.join(PROTOCOLS)}")
        if self.mechanism not in MECHANISMS:
            raise KafkaSecurityError(f"{ENV_MECHANISM}={self.mechanism!r} is not one of {', '.join(MECHANISMS)}")
        if self.sasl:
            if not self.user:
                raise KafkaSecurityError(
                    f"{ENV_PROTOCOL}={self.protocol} needs a user: set {ENV_USER} (or --kafka-user), "
                    f"or {ENV_CONFIG} (or --kafka-config) to a client properties file")
            if not self.password:
                raise KafkaSecurityError(
                    f"user {self.user!r} needs a password: set {ENV_PASSWORD_FILE} (or --kafka-password-file) "
                    f"to a file holding it, or {ENV_CONFIG} to a client properties file")
        elif self.user or self.password:
            raise KafkaSecurityError(
                f"a Kafka user or password is given but {ENV_PROTOCOL}=PLAINTEXT sends no login: "
                f"use SASL_PLAINTEXT or SASL_SSL")
        if self.cafile and self.protocol != "SASL_SSL":
            raise KafkaSecurityError(f"{ENV_CAFILE} is only used with {ENV_PROTOCOL}=SASL_SSL, not {self.protocol}")
        if self.password is not None and not isinstance(self.password, _Secret):
            object.__setattr__(self, "password", _Secret(self.password))

    # --- reading the settings ----------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, user: str | None = None,
                 password_file: str | os.PathLike | None = None,
                 config: str | os.PathLike | None = None) -> "KafkaSecurity":
        """The settings of the WORKERFILE_KAFKA_* variables of `environ` (default:
        os.environ); `user`, `password_file`, `config` (command-line options) win over
        the variables of the same meaning (`config` replaces the login variables: user,
        password file, config file). Raises KafkaSecurityError."""
        env = os.environ if environ is None else environ
        if env.get(ENV_PASSWORD_REFUSED):
            raise KafkaSecurityError(
                f"{ENV_PASSWORD_REFUSED} is not read (a password in the environment is too easily shown): "
                f"put the password in a file readable only by you and set {ENV_PASSWORD_FILE} to it")
        values: dict[str, str | None] = {}
        config_name = "--kafka-config" if config else ENV_CONFIG
        if config:  # a whole login given on the command line: not mixed with the environment's
            env = {k: v for k, v in env.items() if k not in (ENV_USER, ENV_PASSWORD_FILE, ENV_CONFIG)}
        config = config or env.get(ENV_CONFIG) or None
        if config:
            values.update(read_client_properties(config, config_name))
        protocol = _clean(env.get(ENV_PROTOCOL))
        mechanism = _clean(env.get(ENV_MECHANISM))
        if protocol:
            values["protocol"] = protocol.upper()
        if mechanism:
            values["mechanism"] = mechanism.upper()
        user = user or _clean(env.get(ENV_USER))
        if user:
            values["user"] = user
        if password_file:
            values["password"] = read_password_file(password_file, "--kafka-password-file")
        elif env.get(ENV_PASSWORD_FILE):
            values["password"] = read_password_file(env[ENV_PASSWORD_FILE], ENV_PASSWORD_FILE)
        cafile = _clean(env.get(ENV_CAFILE))
        if cafile:
            if not Path(cafile).is_file():
                raise KafkaSecurityError(f"{ENV_CAFILE}={cafile}: no such file")
            values["cafile"] = cafile
        if "protocol" not in values and (values.get("user") or values.get("password")):
            values["protocol"] = "SASL_PLAINTEXT"  # a login was asked for: the SASL listener
        return cls(**{k: v for k, v in values.items() if v is not None})

    # --- what the clients take ---------------------------------------------------------------

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def ssl_context(self):
        """The TLS context of SASL_SSL (None otherwise): the CAs of WORKERFILE_KAFKA_SSL_CAFILE,
        else the system's; host names checked."""
        if self.protocol != "SASL_SSL":
            return None
        import ssl

        return ssl.create_default_context(cafile=self.cafile)

    def _sasl_kwargs(self) -> dict:
        if not self.sasl:
            return {}
        kwargs = dict(security_protocol=self.protocol, sasl_mechanism=self.mechanism,
                      sasl_plain_username=self.user, sasl_plain_password=self.password)
        if self.protocol == "SASL_SSL":
            kwargs["ssl_context"] = self.ssl_context()
        return kwargs

    def kafka_python(self) -> dict:
        """Keyword arguments for kafka-python's KafkaProducer / KafkaConsumer /
        KafkaAdminClient ({} for PLAINTEXT, so that the clients' defaults stay)."""
        return self._sasl_kwargs()

    def aiokafka(self) -> dict:
        """Keyword arguments for aiokafka's AIOKafkaProducer / AIOKafkaConsumer /
        AIOKafkaAdminClient ({} for PLAINTEXT)."""
        return self._sasl_kwargs()

    def faust_credentials(self):
        """faust.App(broker_credentials=...): a faust.SASLCredentials, or None for PLAINTEXT."""
        if not self.sasl:
            return None
        import faust

        return faust.SASLCredentials(username=self.user, password=self.password, mechanism=self.mechanism,
                                     ssl_context=self.ssl_context())

    def describe(self) -> str:
        """One line for messages: protocol, mechanism, user — never the password."""
        if not self.sasl:
            return "PLAINTEXT (no login)"
        return f"{self.protocol} {self.mechanism} as user {self.user!r}"

    __str__ = describe


def _clean(value: str | None) -> str | None:
    value = value.strip() if value else None
    return value or None


def _read_text(path: str | os.PathLike, name: str) -> str:
    """The text of a login file; KafkaSecurityError naming the setting `name` if it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KafkaSecurityError(f"{name}={path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise KafkaSecurityError(f"{name}={path}: cannot read it ({type(err).__name__})") from None


def read_password_file(path: str | os.PathLike, name: str = ENV_PASSWORD_FILE) -> str:
    """The password held in `path` (its first line); KafkaSecurityError naming `name`
    when the file is missing, unreadable or empty."""
    text = _read_text(path, name)
    lines = text.splitlines()
    password = lines[0] if lines else ""
    if not password.strip():
        raise KafkaSecurityError(f"{name}={path}: the file is empty (the password is its first line)")
    if any(line.strip() for line in lines[1:]):
        raise KafkaSecurityError(f"{name}={path}: more than one line (the file must hold the password only)")
    return _Secret(password)


def parse_properties(text: str) -> dict[str, str]:
    """Java .properties: `key=value`, `key: value` or `key value`; # and ! comments;
    a backslash at the end of a line continues it; backslash escapes."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.lstrip()
        if not pending and (not line or line[0] in "#!"):
            continue
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2 == 1:
            pending += line[:-1]
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    result = {}
    for line in logical:
        match = re.match(r"((?:[^\\=:\s]|\\.)*)\s*[=:\s]?\s*(.*)$", line, re.S)
        key, value = match.group(1), match.group(2)
        result[_unescape(key)] = _unescape(value.rstrip())
    return result


def _unescape(text: str) -> str:
    escapes = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)",
                  lambda m: chr(int(m.group(1)[1:], 16)) if len(m.group(1)) == 5 else escapes.get(m.group(1), m.group(1)),
                  text)


def read_client_properties(path: str | os.PathLike, name: str = ENV_CONFIG) -> dict[str, str]:
    """The login in a Java client properties file, as KafkaSecurity fields."""
    text = _read_text(path, name)
    props = parse_properties(text)
    values: dict[str, str] = {}
    if props.get("security.protocol"):
        values["protocol"] = props["security.protocol"].strip().upper()
        if values["protocol"] not in PROTOCOLS:
            raise KafkaSecurityError(f"{name}={path}: security.protocol={values['protocol']} is not one of "
                                     f"{', '.join(PROTOCOLS)}")
    if props.get("sasl.mechanism"):
        values["mechanism"] = props["sasl.mechanism"].strip().upper()
        if values["mechanism"] not in MECHANISMS:
            raise KafkaSecurityError(f"{name}={path}: sasl.mechanism={values['mechanism']} is not one of "
                                     f"{', '.join(MECHANISMS)}")
    jaas = props.get("sasl.jaas.config", "").strip()
    if jaas:
        module = jaas.split(None, 1)[0]
        if module not in _LOGIN_MODULES:
            raise KafkaSecurityError(f"{name}={path}: sasl.jaas.config uses {module}; only "
                                     f"{' and '.join(m.rsplit('.', 1)[1] for m in _LOGIN_MODULES)} are supported")
        options = {k: re.sub(r"\\(.)", r"\1", v) for k, v in re.findall(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"', jaas)}
        if "username" not in options or "password" not in options:
            raise KafkaSecurityError(f"{name}={path}: sasl.jaas.config has no username=\"...\" password=\"...\"")
        values["user"] = options["username"]
        values["password"] = _Secret(options["password"])
        mechanism = values.get("mechanism", DEFAULT_MECHANISM)
        if mechanism not in _LOGIN_MODULES[module]:
            raise KafkaSecurityError(f"{name}={path}: sasl.mechanism={mechanism} does not go with {module.rsplit('.', 1)[1]}")
    if props.get("ssl.truststore.location"):
        if props.get("ssl.truststore.type", "JKS").strip().upper() != "PEM":
            raise KafkaSecurityError(f"{name}={path}: only a PEM trust store is read (ssl.truststore.type=PEM); "
                                     f"or set {ENV_CAFILE} to a PEM file of the CAs")
        values["cafile"] = props["ssl.truststore.location"].strip()
    if "user" in values and "protocol" not in values:
        values["protocol"] = "SASL_PLAINTEXT"
    return values


def or_env(security: KafkaSecurity | None) -> KafkaSecurity:
    """`security` if given, else the settings of this process's environment: what every
    client function of the project does with its `security=None` argument."""
    return security if security is not None else KafkaSecurity.from_env()
