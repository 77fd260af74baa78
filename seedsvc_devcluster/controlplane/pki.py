"""The control plane's certificates: one CA, serving and client certificates, the service-account key pair."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from seedsvc_devcluster.controlplane.options import LOOPBACK, ControlPlaneOptions

_CERT_LIFETIME = datetime.timedelta(days=365)


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _write_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def make_ca(directory: Path) -> KeyPair:
    """A self-signed CA that signs every serving and client certificate of this control plane."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("seedsvc-test-ca"))
        .issuer_name(_name("seedsvc-test-ca"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _CERT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    pair = KeyPair(directory / "ca.crt", directory / "ca.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, pair.key)
    return pair


def issue_cert(
    ca: KeyPair,
    directory: Path,
    *,
    stem: str,
    common_name: str,
    organization: str | None = None,
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
) -> KeyPair:
    """A leaf certificate for server and client auth, signed by `ca`."""
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _CERT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    pair = KeyPair(directory / f"{stem}.crt", directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, pair.key)
    return pair


def make_service_account_keys(directory: Path) -> KeyPair:
    """The RSA key the API server signs service-account tokens with, and its public half."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pair = KeyPair(directory / "sa.pub", directory / "sa.key")
    pair.cert.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    _write_key(key, pair.key)
    return pair


@dataclass(frozen=True)
class Pki:
    """Every key pair one control plane needs, under ``<directory>/pki``."""

    ca: KeyPair
    apiserver: KeyPair
    admin: KeyPair
    controller_manager: KeyPair
    coredns: KeyPair
    service_account: KeyPair
    scheduler: KeyPair
    kubelet_client: KeyPair


def existing_pki(directory: Path) -> Pki:
    """The key pairs :func:`make_pki` wrote under ``<directory>/pki`` (for attaching to a running plane)."""
    pki = directory / "pki"

    def pair(stem: str) -> KeyPair:
        return KeyPair(pki / f"{stem}.crt", pki / f"{stem}.key")

    return Pki(
        ca=pair("ca"),
        apiserver=pair("apiserver"),
        admin=pair("admin"),
        controller_manager=pair("kube-controller-manager"),
        coredns=pair("coredns"),
        service_account=KeyPair(pki / "sa.pub", pki / "sa.key"),
        scheduler=pair("kube-scheduler"),
        kubelet_client=pair("apiserver-kubelet-client"),
    )


def make_pki(directory: Path, options: ControlPlaneOptions) -> Pki:
    pki = directory / "pki"
    pki.mkdir(exist_ok=True)
    ca = make_ca(pki)
    service_ip = str(next(ipaddress.ip_network(options.service_cluster_ip_range).hosts()))
    domain = options.cluster_domain
    return Pki(
        ca=ca,
        apiserver=issue_cert(
            ca,
            pki,
            stem="apiserver",
            common_name="kube-apiserver",
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                f"kubernetes.default.svc.{domain}",
            ),
            ip_addresses=tuple(dict.fromkeys((LOOPBACK, options.address, service_ip))),
        ),
        scheduler=issue_cert(ca, pki, stem="kube-scheduler", common_name="system:kube-scheduler"),
        kubelet_client=issue_cert(
            ca,
            pki,
            stem="apiserver-kubelet-client",
            common_name="kube-apiserver-kubelet-client",
            organization="system:masters",
        ),
        admin=issue_cert(ca, pki, stem="admin", common_name="seedsvc-admin", organization="system:masters"),
        # The built-in RBAC roles bind this user name; each controller then runs under its own
        # service account (--use-service-account-credentials), as kubeadm sets it up.
        controller_manager=issue_cert(
            ca, pki, stem="kube-controller-manager", common_name="system:kube-controller-manager"
        ),
        # CoreDNS only reads; system:masters spares us a ClusterRole nobody tests here.
        coredns=issue_cert(ca, pki, stem="coredns", common_name="seedsvc:coredns", organization="system:masters"),
        service_account=make_service_account_keys(pki),
    )
