"""`streams.kafka_security` without a broker: the WORKERFILE_KAFKA_* variables and the
Java client properties file, the keyword arguments of each client library, the errors
(each naming its variable), and the password never shown; the commands' options and
errors; `workerfile emit` refusing a file whose topics the login may not write."""

from __future__ import annotations

import importlib.util
import io
import ssl
from pathlib import Path

import faust
import pytest

from streams import emit
from streams.kafka_security import (
    ENV_CAFILE, ENV_CONFIG, ENV_MECHANISM, ENV_PASSWORD_FILE, ENV_PROTOCOL, ENV_USER, KafkaSecurity,
    KafkaSecurityError, parse_properties, read_client_properties,
)
from streams.producer import NotAllowed
from streams.settings import StreamSettings
from workerfile import cli

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "s3cr3t-Pa55word"
_spec = importlib.util.spec_from_file_location("security_acls", ROOT / "deploy" / "security" / "acls.py")
acls = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(acls)


@pytest.fixture
def password_file(tmp_path) -> Path:
    path = tmp_path / "training.password"
    path.write_text(PASSWORD + "\n")
    return path


@pytest.fixture
def clean_env(monkeypatch):
    """No WORKERFILE_KAFKA_* of the developer's shell leaks into a test."""
    for name in (ENV_PROTOCOL, ENV_MECHANISM, ENV_USER, ENV_PASSWORD_FILE, ENV_CONFIG, ENV_CAFILE,
                 "WORKERFILE_KAFKA_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def login(password_file, **more) -> KafkaSecurity:
    return KafkaSecurity.from_env({ENV_USER: "training", ENV_PASSWORD_FILE: str(password_file), **more})


def shown(security: KafkaSecurity) -> str:
    """Everything about a setting a log line or a traceback could show."""
    return " ".join([repr(security), str(security), security.describe(), repr(security.kafka_python()),
                     repr(security.aiokafka()), repr(security.faust_credentials())])


# --- the variables ---------------------------------------------------------------------------

def test_no_variables_is_plaintext_and_changes_no_client():
    security = KafkaSecurity.from_env({})
    assert security.protocol == "PLAINTEXT" and not security.sasl
    assert security.kafka_python() == {} and security.aiokafka() == {}
    assert security.faust_credentials() is None
    assert str(security) == "PLAINTEXT (no login)"


def test_a_user_and_a_password_file_log_in_with_scram_sha_512(password_file):
    security = login(password_file)
    assert (security.protocol, security.mechanism, security.user) == ("SASL_PLAINTEXT", "SCRAM-SHA-512", "training")
    assert security.password == PASSWORD  # the first line, without its line break
    expected = dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                    sasl_plain_username="training", sasl_plain_password=PASSWORD)
    assert security.kafka_python() == expected
    assert security.aiokafka() == expected
    credentials = security.faust_credentials()
    assert isinstance(credentials, faust.SASLCredentials)
    assert (credentials.username, credentials.password) == ("training", PASSWORD)
    assert credentials.mechanism.value == "SCRAM-SHA-512" and credentials.protocol.value == "SASL_PLAINTEXT"


def test_protocol_and_mechanism_are_read_in_any_case(password_file):
    security = login(password_file, **{ENV_PROTOCOL: " sasl_plaintext ", ENV_MECHANISM: "scram-sha-256"})
    assert (security.protocol, security.mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-256")
    assert security.faust_credentials().mechanism.value == "SCRAM-SHA-256"


def test_sasl_ssl_gives_every_client_a_tls_context(password_file, tmp_path):
    security = login(password_file, **{ENV_PROTOCOL: "SASL_SSL"})
    assert security.protocol == "SASL_SSL"
    for kwargs in (security.kafka_python(), security.aiokafka()):
        assert kwargs["security_protocol"] == "SASL_SSL"
        assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
        assert kwargs["ssl_context"].check_hostname
    credentials = security.faust_credentials()
    assert credentials.protocol.value == "SASL_SSL" and isinstance(credentials.ssl_context, ssl.SSLContext)


def test_options_win_over_the_variables(password_file, tmp_path):
    other = tmp_path / "other.password"
    other.write_text("other-password\n")
    security = KafkaSecurity.from_env({ENV_USER: "training", ENV_PASSWORD_FILE: str(password_file)},
                                      user="employer", password_file=other)
    assert (security.user, security.password) == ("employer", "other-password")


def test_a_config_option_replaces_the_login_of_the_environment(tmp_path, password_file):
    path = tmp_path / "admin.properties"
    path.write_text(acls.client_properties("admin", "admin-password"))
    env = {ENV_USER: "training", ENV_PASSWORD_FILE: str(password_file), ENV_CONFIG: "/nonexistent"}
    security = KafkaSecurity.from_env(env, config=path)
    assert (security.user, security.password) == ("admin", "admin-password")
    # the options of the same meaning still win over the file
    security = KafkaSecurity.from_env(env, config=path, user="training", password_file=password_file)
    assert (security.user, security.password) == ("training", PASSWORD)


def test_stream_settings_carry_the_login(clean_env, password_file):
    clean_env.setenv(ENV_USER, "workerfile")
    clean_env.setenv(ENV_PASSWORD_FILE, str(password_file))
    settings = StreamSettings.from_env()
    assert settings.kafka.user == "workerfile"
    assert isinstance(settings.kafka_credentials(), faust.SASLCredentials)
    assert settings.aiokafka_kwargs()["sasl_plain_username"] == "workerfile"
    assert PASSWORD not in repr(settings)
    plain = StreamSettings.from_env(kafka=KafkaSecurity())
    assert plain.kafka_credentials() is None and plain.aiokafka_kwargs() == {}


def test_stream_settings_default_is_plaintext(clean_env):
    assert StreamSettings().kafka_credentials() is None
    assert StreamSettings.from_env().kafka_credentials() is None


# --- errors name their variable --------------------------------------------------------------

@pytest.mark.parametrize("env, names", [
    ({ENV_PROTOCOL: "SSL"}, [ENV_PROTOCOL, "SASL_SSL"]),
    ({ENV_PROTOCOL: "SASL_PLAINTEXT"}, [ENV_PROTOCOL, ENV_USER, ENV_CONFIG]),
    ({ENV_USER: "training"}, ["'training'", ENV_PASSWORD_FILE]),
    ({ENV_USER: "training", ENV_PASSWORD_FILE: "/nonexistent/pw"}, [ENV_PASSWORD_FILE, "/nonexistent/pw", "no such file"]),
    ({ENV_USER: "training", ENV_MECHANISM: "GSSAPI", ENV_PASSWORD_FILE: "@pw"}, [ENV_MECHANISM, "GSSAPI"]),
    ({ENV_PROTOCOL: "PLAINTEXT", ENV_USER: "training", ENV_PASSWORD_FILE: "@pw"}, [ENV_PROTOCOL, "PLAINTEXT"]),
    ({ENV_USER: "training", ENV_PASSWORD_FILE: "@pw", ENV_CAFILE: "/nonexistent/ca.pem"}, [ENV_CAFILE, "no such file"]),
    ({ENV_USER: "training", ENV_PASSWORD_FILE: "@pw", ENV_CAFILE: "@pw"}, [ENV_CAFILE, "SASL_SSL"]),
    ({ENV_CONFIG: "/nonexistent/client.properties"}, [ENV_CONFIG, "no such file"]),
    ({"WORKERFILE_KAFKA_PASSWORD": PASSWORD}, ["WORKERFILE_KAFKA_PASSWORD", ENV_PASSWORD_FILE]),
])
def test_a_missing_or_wrong_setting_names_its_variable(env, names, password_file):
    env = {k: str(password_file) if v == "@pw" else v for k, v in env.items()}
    with pytest.raises(KafkaSecurityError) as info:
        KafkaSecurity.from_env(env)
    for name in names:
        assert name in str(info.value)
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize("content, reason", [
    ("", "empty"), ("\n\n", "empty"), ("   \n", "empty"), (f"{PASSWORD}\nsecond line\n", "more than one line"),
])
def test_a_password_file_holds_exactly_one_password(tmp_path, content, reason):
    path = tmp_path / "pw"
    path.write_text(content)
    with pytest.raises(KafkaSecurityError, match=reason) as info:
        KafkaSecurity.from_env({ENV_USER: "training", ENV_PASSWORD_FILE: str(path)})
    assert ENV_PASSWORD_FILE in str(info.value) and PASSWORD not in str(info.value)


def test_an_unreadable_password_file_is_named(tmp_path):
    with pytest.raises(KafkaSecurityError, match="cannot read") as info:
        KafkaSecurity.from_env({ENV_USER: "training", ENV_PASSWORD_FILE: str(tmp_path)})  # a directory
    assert ENV_PASSWORD_FILE in str(info.value)


def test_an_option_is_named_when_it_is_wrong():
    with pytest.raises(KafkaSecurityError, match="--kafka-password-file=/nonexistent/pw: no such file"):
        KafkaSecurity.from_env({}, user="training", password_file="/nonexistent/pw")
    with pytest.raises(KafkaSecurityError, match="--kafka-config=/nonexistent/p: no such file"):
        KafkaSecurity.from_env({}, config="/nonexistent/p")


def test_direct_construction_is_checked_too():
    with pytest.raises(KafkaSecurityError, match=ENV_USER):
        KafkaSecurity(protocol="SASL_PLAINTEXT")
    with pytest.raises(KafkaSecurityError, match=ENV_PASSWORD_FILE):
        KafkaSecurity(protocol="SASL_PLAINTEXT", user="training")


# --- the password is never shown -------------------------------------------------------------

def test_the_password_is_never_shown(password_file):
    for security in (login(password_file), login(password_file, **{ENV_PROTOCOL: "SASL_SSL"})):
        text = shown(security)
        assert "training" in text and PASSWORD not in text
        assert "<hidden>" in repr(security.kafka_python())
        # it still is the password for the clients
        assert security.kafka_python()["sasl_plain_password"] == PASSWORD
        assert security.kafka_python()["sasl_plain_password"].encode() == PASSWORD.encode()


def test_the_password_is_not_compared_or_hashed_into_view(password_file, tmp_path):
    other = tmp_path / "other"
    other.write_text("another-password")
    a, b = login(password_file), KafkaSecurity.from_env({ENV_USER: "training", ENV_PASSWORD_FILE: str(other)})
    assert a == b  # equality (and hash) ignore the password: nothing about it leaks by comparison
    assert hash(a) == hash(b)


# --- the Java client properties file ---------------------------------------------------------

def test_reads_the_properties_that_acls_py_writes(tmp_path):
    path = tmp_path / "insurance.properties"
    path.write_text(acls.client_properties("insurance", PASSWORD))
    security = KafkaSecurity.from_env({ENV_CONFIG: str(path)})
    assert (security.protocol, security.mechanism, security.user) == ("SASL_PLAINTEXT", "SCRAM-SHA-512", "insurance")
    assert security.password == PASSWORD and PASSWORD not in shown(security)


def test_variables_win_over_the_properties_file(tmp_path, password_file):
    path = tmp_path / "admin.properties"
    path.write_text(acls.client_properties("admin", "admin-password"))
    security = KafkaSecurity.from_env({ENV_CONFIG: str(path), ENV_USER: "training",
                                       ENV_PASSWORD_FILE: str(password_file), ENV_MECHANISM: "SCRAM-SHA-256"})
    assert (security.user, security.password, security.mechanism) == ("training", PASSWORD, "SCRAM-SHA-256")


def test_properties_syntax():
    text = ("# comment\n! another\n  a = 1\nb: 2\nc 3\nlong = x\\\n    y\\\n  z\n"
            'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \\\n'
            '    username="u" password="p\\\\w";\n' "esc=tab\\there\\u0041\n")
    props = parse_properties(text)
    assert props["a"] == "1" and props["b"] == "2" and props["c"] == "3" and props["long"] == "xyz"
    assert props["esc"] == "tab\thereA"
    assert props["sasl.jaas.config"].endswith('username="u" password="p\\w";')


def test_plain_login_module_and_pem_trust_store(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not parsed here")
    path = tmp_path / "c.properties"
    path.write_text("security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n"
                    "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
                    'username="svc" password="pw\\\\"quoted";\n'  # properties unescape, then JAAS's
                    f"ssl.truststore.type=PEM\nssl.truststore.location={ca}\nclient.id=ignored\n")
    values = read_client_properties(path)
    assert values == {"protocol": "SASL_SSL", "mechanism": "PLAIN", "user": "svc", "password": 'pw"quoted',
                      "cafile": str(ca)}


@pytest.mark.parametrize("text, message", [
    ("security.protocol=SSL\n", "security.protocol=SSL"),
    ("sasl.mechanism=GSSAPI\n", "sasl.mechanism=GSSAPI"),
    ("sasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required;\n", "Krb5LoginModule"),
    ('sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="u";\n',
     "no username"),
    ("sasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
     f'username="u" password="{PASSWORD}";\n', "does not go with ScramLoginModule"),
    ("ssl.truststore.location=/etc/truststore.jks\n", "PEM"),
])
def test_a_wrong_properties_file_is_named(tmp_path, text, message):
    path = tmp_path / "client.properties"
    path.write_text(text)
    with pytest.raises(KafkaSecurityError, match=message) as info:
        KafkaSecurity.from_env({ENV_CONFIG: str(path)})
    assert f"{ENV_CONFIG}={path}" in str(info.value) and PASSWORD not in str(info.value)


# --- the commands ----------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["topics"], ["worker"], ["emit", "events.jsonl"], ["subscribe", "services"], ["sink", "sqlite"],
    ["stats", "follow"], ["stats", "recount"],
])
def test_every_kafka_command_refuses_a_wrong_login_before_connecting(clean_env, capsys, argv, tmp_path):
    clean_env.chdir(tmp_path)
    clean_env.setenv(ENV_PROTOCOL, "SASL_PLAINTEXT")
    assert cli.main(argv + ["--broker", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"workerfile {' '.join(argv[:2]) if argv[0] == 'stats' else argv[0]}: ")
    assert ENV_USER in err


def test_the_options_are_the_same_on_every_kafka_command(password_file):
    parser = cli.build_parser()
    for argv in (["topics"], ["worker"], ["emit", "f"], ["subscribe", "services"], ["sink", "sqlite"],
                 ["stats", "follow"], ["stats", "serve"], ["stats", "recount"]):
        args = parser.parse_args(argv + ["--kafka-user", "training", "--kafka-password-file", str(password_file),
                                         "--kafka-config", "c.properties"])
        assert (args.kafka_user, args.kafka_password_file, args.kafka_config) == (
            "training", str(password_file), "c.properties")

def test_a_password_on_the_command_line_is_refused_and_not_echoed(capsys):
    for argv in (["emit", "f", "--kafka-password", PASSWORD], ["emit", "f", f"--kafka-password={PASSWORD}"],
                 ["topics", "--kafka-passw", PASSWORD]):
        with pytest.raises(SystemExit) as info:
            cli.build_parser().parse_args(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "--kafka-password-file FILE" in err and PASSWORD not in err


def test_the_command_options_reach_the_settings(clean_env, password_file):
    args = cli.build_parser().parse_args(["emit", "f", "--kafka-user", "training",
                                          "--kafka-password-file", str(password_file)])
    security = cli.kafka_security(args, "emit")
    assert (security.protocol, security.user, security.password) == ("SASL_PLAINTEXT", "training", PASSWORD)


# --- emit: a file the login may not write is refused as a whole ------------------------------

class RefusingSender:
    """A producer whose login may write training-events only."""

    allowed = {"training-events"}

    def __init__(self):
        self.sent = []
        self.security = KafkaSecurity()

    def topic_for(self, event):
        return {"training": "training-events", "employment": "employment-events"}[event.type.split(".")[0]]

    def check_topics(self, topics):
        refused = sorted(set(topics) - self.allowed)
        if refused:
            raise NotAllowed(refused, "SASL_PLAINTEXT SCRAM-SHA-512 as user 'training'")

    def send(self, event):
        self.sent.append(event)
        raise AssertionError("nothing may be sent")

    def flush(self, timeout=None):
        pass


def test_emit_sends_nothing_when_the_login_may_not_write_a_topic(tmp_path):
    import orjson

    from workerfile.population import generate_population

    events = [e for e in generate_population(3, seed=1, months=6, anomalies=False)
              if e["type"].startswith(("training.", "employment."))]
    assert {e["type"].split(".")[0] for e in events} == {"training", "employment"}
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    sender = RefusingSender()
    out, err = io.BytesIO(), io.StringIO()
    code = emit.run(str(path), broker="unused", event_type=None, source=None, encoding="auto", format="auto",
                    partial=False, dry_run=False, out=out, err=err, sender=sender)
    assert code == 4 and sender.sent == []
    text = err.getvalue()
    assert "not allowed to write to employment-events (SASL_PLAINTEXT SCRAM-SHA-512 as user 'training')" in text
    assert "NOTHING SENT: this login may not write to employment-events" in text
