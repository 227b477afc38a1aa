#!/usr/bin/env python3
"""Kafka users and ACLs per party, from deploy/security/parties.toml.

Logs in to a secured broker (SASL_PLAINTEXT, SCRAM-SHA-512) as the super user
"admin", creates or updates the SCRAM credential of every party's user
(AlterUserScramCredentials) and creates the party's ACLs (CreateAcls; creating
an existing ACL again is a no-op, so running this twice is harmless)::

    python3 deploy/security/acls.py --bootstrap 127.0.0.1:9092 \\
        --admin-password-file deploy/security/.data/secrets/admin.password \\
        --secrets deploy/security/.data/secrets
    python3 deploy/security/acls.py --print        # the ACLs only, no broker

With --secrets DIR, DIR/<user>.password is read (created with a random password
when missing) and DIR/<user>.properties is written: Java client properties for
that party (also usable as `kafka-console-producer --producer.config`).

Also a module: load_parties(), acl_bindings(), server_config(), client_kwargs(),
create_users(), apply_acls() (used by tests/integration/test_kafka_acl_integration.py).
"""
from __future__ import annotations

import argparse
import secrets as _secrets
import sys
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTIES = HERE / "parties.toml"
SERVER_PROPERTIES = HERE / "server.properties"
MECHANISM = "SCRAM-SHA-512"
ADMIN = "admin"


def load_parties(path: str | Path = PARTIES) -> dict[str, dict]:
    """The [parties.*] tables of parties.toml, by party name."""
    with open(path, "rb") as f:
        return tomllib.load(f)["parties"]


def server_config(admin_password: str) -> str:
    """The broker's security properties (server.properties with the admin password)."""
    _check_password(admin_password)
    return SERVER_PROPERTIES.read_text().replace("@ADMIN_PASSWORD@", admin_password)


def format_scram(user: str, password: str) -> str:
    """A credential for `kafka-storage format --add-scram` (kafka.sh KAFKA_ADD_SCRAM)."""
    _check_password(password)
    return f"{MECHANISM}=[name={user},password={password}]"


def client_properties(user: str, password: str) -> str:
    """Java client properties for logging in as `user`."""
    _check_password(password)
    return (
        "security.protocol=SASL_PLAINTEXT\n"
        f"sasl.mechanism={MECHANISM}\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{user}" password="{password}";\n'
    )


def client_kwargs(user: str, password: str) -> dict:
    """kafka-python (KafkaProducer/KafkaConsumer/KafkaAdminClient) login arguments."""
    return dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism=MECHANISM,
                sasl_plain_username=user, sasl_plain_password=password)


def new_password() -> str:
    # Hex only: safe inside the --add-scram [..] syntax and JAAS quotes.
    return _secrets.token_hex(16)


def _check_password(password: str) -> None:
    bad = set(password) & set('",[]=\\\n; ')
    if not password or bad:
        raise ValueError(f"password must be non-empty, without any of {sorted(bad)}")


def acl_bindings(parties: dict[str, dict] | None = None) -> list:
    """kafka-python ACL objects granting each party exactly its rights (host *)."""
    from kafka.admin import (ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                             ResourcePattern, ResourceType)

    parties = load_parties() if parties is None else parties
    literal, prefixed = ACLResourcePatternType.LITERAL, ACLResourcePatternType.PREFIXED
    acls = []
    for name, party in parties.items():
        principal = f"User:{party.get('user', name)}"

        def allow(op, rtype, resource, pattern=literal):
            acls.append(ACL(principal=principal, host="*", operation=op,
                            permission_type=ACLPermissionType.ALLOW,
                            resource_pattern=ResourcePattern(rtype, resource, pattern)))

        for topic in party.get("write", []):
            allow(ACLOperation.WRITE, ResourceType.TOPIC, topic)
        for topic in party.get("read", []):
            allow(ACLOperation.READ, ResourceType.TOPIC, topic)
        for start in party.get("write_prefixes", []):
            allow(ACLOperation.CREATE, ResourceType.TOPIC, start, prefixed)
            allow(ACLOperation.WRITE, ResourceType.TOPIC, start, prefixed)
        for group in party.get("groups", []):
            allow(ACLOperation.READ, ResourceType.GROUP, group, prefixed)
        if party.get("prefix"):
            for rtype in (ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID):
                allow(ACLOperation.ALL, rtype, party["prefix"], prefixed)
        for op in party.get("cluster", []):
            allow(ACLOperation[op.upper()], ResourceType.CLUSTER, "kafka-cluster")
    return acls


def admin_client(bootstrap: str, admin_password: str, **kwargs):
    from kafka.admin import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="workerfile-acls",
                            **client_kwargs(ADMIN, admin_password), **kwargs)


def create_users(admin, passwords: dict[str, str]) -> None:
    """Create or update the SCRAM-SHA-512 credential of each user (user -> password)."""
    from kafka.admin import ScramMechanism, UserScramCredentialUpsertion

    for password in passwords.values():
        _check_password(password)
    result = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion(user, ScramMechanism.SCRAM_SHA_512, password, iterations=4096)
        for user, password in passwords.items()
    ])
    errors = {user: err for user, err in (result or {}).items() if err}
    if errors:
        raise RuntimeError(f"creating SCRAM users failed: {errors}")


def apply_acls(admin, acls: list) -> int:
    """Create the ACLs; return how many; raise if the broker refused any."""
    result = admin.create_acls(acls)
    failed = result.get("failed", [])
    if failed:
        raise RuntimeError(f"{len(failed)} ACLs refused: {failed}")
    return len(result.get("succeeded", []))


def describe(acl) -> str:
    p = acl.resource_pattern
    return (f"{acl.principal:<18} {acl.permission_type.name} {acl.operation.name:<16} "
            f"{p.resource_type.name} {p.pattern_type.name} {p.resource_name}")


def _secret(directory: Path, user: str) -> str:
    path = directory / f"{user}.password"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(new_password() + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--parties", default=str(PARTIES))
    ap.add_argument("--admin-password-file", help="file holding the admin password")
    ap.add_argument("--secrets", metavar="DIR",
                    help="party passwords DIR/<user>.password (created if missing); "
                         "DIR/<user>.properties written; users created on the broker")
    ap.add_argument("--print", action="store_true", help="only print the ACLs")
    args = ap.parse_args(argv)
    parties = load_parties(args.parties)
    acls = acl_bindings(parties)
    if args.print:
        print("\n".join(describe(a) for a in acls))
        return 0
    if not args.admin_password_file:
        ap.error("--admin-password-file is needed (or --print)")
    admin_password = Path(args.admin_password_file).read_text().strip()
    admin = admin_client(args.bootstrap, admin_password)
    try:
        if args.secrets:
            directory = Path(args.secrets)
            passwords = {p.get("user", n): _secret(directory, p.get("user", n)) for n, p in parties.items()}
            for user, password in passwords.items():
                props = directory / f"{user}.properties"
                props.write_text(client_properties(user, password))
                props.chmod(0o600)
            create_users(admin, passwords)
            print(f"SCRAM users created/updated: {', '.join(passwords)}")
        count = apply_acls(admin, acls)
        print(f"ACLs applied: {count} for {len(parties)} parties")
    finally:
        admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
