"""TLS server context for SIP over TLS (RFC 3261 §26.2.1, RFC 5630).

``tls_cert = auto`` makes a self-signed certificate in the data directory on
first start, so the demo offers TLS out of the box; production sets a real
certificate and key.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

log = logging.getLogger("pbx.transport.tls")


def self_signed(directory: Path, common_name: str, hosts: list[str]) -> tuple[Path, Path]:
    """Create (once) a self-signed ECDSA certificate valid for ``hosts``."""
    cert_path, key_path = directory / "sip-cert.pem", directory / "sip-key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    log.info("created self-signed TLS certificate %s", cert_path)
    return cert_path, key_path


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context that accepts phones without client certificates."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context


def client_context(ca_file: str = "", verify: bool = True) -> ssl.SSLContext:
    """A context for connections we open (to a carrier): the peer's certificate
    checked against ``ca_file`` (PEM, the carrier's CA pinned) or the system's CAs,
    and its name against the host we dial (RFC 5922 §7.2).  ``verify=False``
    checks nothing: for a carrier with a self-signed certificate one cannot pin."""
    context = ssl.create_default_context(cafile=ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def failure(exc: BaseException) -> str:
    """Why a TLS connection failed, as an operator can act on it: the
    verification message (``Hostname mismatch, certificate is not valid for
    'x'``, ``unable to get local issuer certificate``) or the error itself."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"
    return str(exc) or type(exc).__name__
