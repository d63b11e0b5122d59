"""Per-cluster TLS: a CA and one certificate for a DaskCluster, and a `Security` built from its Secret.

The operator generates a fresh CA per cluster, signs one leaf certificate with it and throws the CA's private key
away: the Secret holds `ca.crt`, `tls.crt` and `tls.key` only, so nobody (the operator included) can issue a second
certificate that the cluster trusts. Scheduler, workers and clients all present that leaf: distributed requires
mutual TLS and does not check host names, so what admits a peer is a certificate chaining to the cluster's CA, and
reading the Secret is the permission to join. The SANs still name the scheduler Service, for tools that do check.

Nothing here logs or formats a PEM: errors name the Secret and the key, never a value.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from distributed.security import Security

from . import naming

# Generated certificates outlive any reasonable cluster: there is no rotation, a cluster's life is its validity.
VALIDITY = dt.timedelta(days=3650)
# Tolerate clocks a little behind the operator's.
BACKDATE = dt.timedelta(minutes=5)
KEYS = (naming.TLS_CA_KEY, naming.TLS_CERT_KEY, naming.TLS_PRIVATE_KEY_KEY)


class TLSSecretError(ValueError):
    """A TLS Secret is missing a key or holds something that is not PEM; the message never quotes a value."""


@dataclass(frozen=True, repr=False)
class ClusterCertificates:
    """The PEM texts of a cluster's CA certificate, its certificate and that certificate's private key."""

    ca: str
    cert: str
    key: str

    def __repr__(self) -> str:  # a repr must never leak the key into a log or a traceback
        return "ClusterCertificates(<PEM redacted>)"

    def secret_data(self) -> dict[str, str]:
        """The Secret's `data`: base64 of each PEM."""
        return {k: base64.b64encode(v.encode()).decode() for k, v in zip(KEYS, (self.ca, self.cert, self.key),
                                                                        strict=True)}

    def security(self) -> Security:
        """A client-side `Security` with the PEMs in memory (distributed writes them to a private temporary
        directory only while it builds the SSL context)."""
        return Security(require_encryption=True, tls_ca_file=self.ca, tls_client_cert=self.cert,
                        tls_client_key=self.key)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dask_kube"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def generate(cluster: str, namespace: str, domain: str = naming.DEFAULT_CLUSTER_DOMAIN,
             now: dt.datetime | None = None) -> ClusterCertificates:
    """A new CA and a leaf certificate for the cluster's scheduler Service names, localhost and 127.0.0.1.

    ECDSA P-256: as strong as RSA 3072 for TLS 1.2/1.3 and generated in a millisecond, not a second."""
    now = now or dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"dask_kube CA {namespace}/{cluster}")
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - BACKDATE).not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    dns = naming.scheduler_dns_names(cluster, namespace, domain)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in [*dns, "localhost"]]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder().subject_name(_name(dns[-1])).issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - BACKDATE).not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return ClusterCertificates(ca=ca_cert.public_bytes(pem).decode(), cert=cert.public_bytes(pem).decode(),
                               key=_pem_key(key))


def from_secret_data(data: Mapping[str, str] | None, secret: str) -> ClusterCertificates:
    """The certificates in a Secret's `data` (base64), checked to be PEM of the right kind.

    Raises `TLSSecretError` naming the Secret and the key that is missing or wrong."""
    data = data or {}
    texts: list[str] = []
    for key in KEYS:
        if not data.get(key):
            raise TLSSecretError(f"Secret {secret} has no key {key!r} (a TLS Secret needs {', '.join(KEYS)})")
        try:
            texts.append(base64.b64decode(data[key], validate=True).decode())
        except (binascii.Error, UnicodeDecodeError):
            raise TLSSecretError(f"Secret {secret}: key {key!r} is not base64 of a PEM text") from None
    ca, cert, key = texts
    for what, text in ((naming.TLS_CA_KEY, ca), (naming.TLS_CERT_KEY, cert)):
        try:
            x509.load_pem_x509_certificate(text.encode())
        except ValueError:
            raise TLSSecretError(f"Secret {secret}: key {what!r} is not a PEM certificate") from None
    try:
        serialization.load_pem_private_key(key.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise TLSSecretError(f"Secret {secret}: key {naming.TLS_PRIVATE_KEY_KEY!r} is not an unencrypted PEM "
                             "private key") from None
    return ClusterCertificates(ca=ca, cert=cert, key=key)
