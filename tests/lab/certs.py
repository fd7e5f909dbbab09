"""Test PKI for the TLS tests, made with the openssl command-line tool.

``make_certs(directory) -> LabCerts``: a CA; server, client, expired, not-yet-valid and
wrong-host certificates signed by it; a second, unrelated CA with a client certificate of its own.
All keys are RSA 2048 (what DCMTK's default TLS profile and every client accept), PEM, unencrypted.
Leaf certificates are issued with ``openssl ca`` so their validity period can be set exactly
(Debian 12's OpenSSL 3.0 ``x509`` has no ``-not_before``/``-not_after``).
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LabCerts", "make_certs", "OPENSSL"]

OPENSSL = "/usr/bin/openssl"


@dataclass(frozen=True)
class LabCerts:
    directory: Path
    ca_cert: Path  # "pacsbrowser test CA": trust anchor of everything below but other_*
    ca_key: Path
    server_cert: Path  # CN=localhost, SAN DNS:localhost, IP:127.0.0.1; serverAuth+clientAuth
    server_key: Path
    client_cert: Path  # CN=PACSBROWSER; clientAuth
    client_key: Path
    other_ca_cert: Path  # an unrelated CA ("unknown CA" tests)
    other_ca_key: Path
    other_client_cert: Path  # a client certificate signed by the unrelated CA
    other_client_key: Path
    expired_cert: Path  # like server_cert, valid 2020-01-01 .. 2021-01-01
    expired_key: Path
    notyetvalid_cert: Path  # like server_cert, valid 2099-01-01 .. 2100-01-01
    notyetvalid_key: Path
    wronghost_cert: Path  # CN=wrong.example, SAN DNS:wrong.example only; signed by the CA
    wronghost_key: Path


_CA_CONFIG = """\
[ ca ]
default_ca = lab_ca

[ lab_ca ]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/issued
serial = {dir}/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no

[ policy_any ]
organizationName = optional
commonName = supplied

[ server_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:localhost, IP:127.0.0.1

[ wronghost_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:wrong.example

[ client_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _run(args: list[str], cwd: Path) -> None:
    result = subprocess.run(
        [OPENSSL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"openssl {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-2000:]}"
        )


def _stamp(when: dt.datetime) -> str:
    return when.strftime("%Y%m%d%H%M%SZ")


def make_certs(directory: Path) -> LabCerts:
    """Create the lab's PKI in ``directory`` (created if needed); about half a second."""
    if shutil.which(OPENSSL) is None:
        raise RuntimeError(f"{OPENSSL} not found: install the Debian package 'openssl'")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)

    names = ["ca", "server", "client", "other_ca", "other_client", "expired", "notyetvalid",
             "wronghost"]
    # Key generation dominates; run the openssl processes side by side.
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        list(pool.map(
            lambda n: _run(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                            "-out", f"{n}.key"], d),
            names,
        ))

    for ca, cn in (("ca", "pacsbrowser test CA"), ("other_ca", "unrelated test CA")):
        _run(["req", "-x509", "-new", "-key", f"{ca}.key", "-sha256", "-days", "3650",
              "-subj", f"/O=pacsbrowser test lab/CN={cn}",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign",
              "-addext", "subjectKeyIdentifier=hash",
              "-out", f"{ca}.crt"], d)
        ca_dir = d / f"{ca}.db"
        (ca_dir / "issued").mkdir(parents=True, exist_ok=True)
        (ca_dir / "index.txt").write_text("")
        (ca_dir / "serial").write_text("1000\n")
        (ca_dir / "ca.cnf").write_text(_CA_CONFIG.format(dir=ca_dir))

    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    valid = (now - dt.timedelta(days=1), now + dt.timedelta(days=365))
    leaves = [
        # name, CA, subject CN, extensions section, validity
        ("server", "ca", "localhost", "server_ext", valid),
        ("client", "ca", "PACSBROWSER", "client_ext", valid),
        ("other_client", "other_ca", "PACSBROWSER", "client_ext", valid),
        ("expired", "ca", "localhost", "server_ext",
         (dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc),
          dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc))),
        ("notyetvalid", "ca", "localhost", "server_ext",
         (dt.datetime(2099, 1, 1, tzinfo=dt.timezone.utc),
          dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc))),
        ("wronghost", "ca", "wrong.example", "wronghost_ext", valid),
    ]
    for name, ca, cn, ext, (start, end) in leaves:
        _run(["req", "-new", "-key", f"{name}.key", "-subj",
              f"/O=pacsbrowser test lab/CN={cn}", "-out", f"{name}.csr"], d)
        _run(["ca", "-batch", "-notext", "-config", str(d / f"{ca}.db" / "ca.cnf"),
              "-cert", f"{ca}.crt", "-keyfile", f"{ca}.key",
              "-extensions", ext, "-startdate", _stamp(start), "-enddate", _stamp(end),
              "-in", f"{name}.csr", "-out", f"{name}.crt"], d)

    return LabCerts(
        directory=d,
        ca_cert=d / "ca.crt", ca_key=d / "ca.key",
        server_cert=d / "server.crt", server_key=d / "server.key",
        client_cert=d / "client.crt", client_key=d / "client.key",
        other_ca_cert=d / "other_ca.crt", other_ca_key=d / "other_ca.key",
        other_client_cert=d / "other_client.crt", other_client_key=d / "other_client.key",
        expired_cert=d / "expired.crt", expired_key=d / "expired.key",
        notyetvalid_cert=d / "notyetvalid.crt", notyetvalid_key=d / "notyetvalid.key",
        wronghost_cert=d / "wronghost.crt", wronghost_key=d / "wronghost.key",
    )
