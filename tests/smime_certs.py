"""Throwaway S/MIME certificates for the tests: a CA, and leaf certificates with or without
e-mail protection, expired or for another address, as .pfx and as PEM."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PASSWORD = "Pfx-S3cret-canary"


@dataclass(frozen=True)
class Identity:
    address: str
    pfx: Path        # key, certificate and CA, protected by PASSWORD
    pem: Path        # the certificate alone (what a recipient hands out)
    key: Path        # the private key, PEM, unencrypted (for openssl cms -decrypt)
    bundle: Path     # PEM: certificate, CA and key encrypted with PASSWORD


class Authority:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SMail Test S/MIME CA")])
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256()))
        self.pem = folder / "ca.pem"
        self.pem.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, address: str, *, email_protection: bool = True, expired: bool = False,
              in_subject: bool = False, elliptic: bool = False) -> Identity:
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
            ec.generate_private_key(ec.SECP256R1()) if elliptic else rsa.generate_private_key(public_exponent=65537, key_size=2048))
        now = datetime.datetime.now(datetime.UTC)
        start, end = (now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)) if expired \
            else (now - datetime.timedelta(days=1), now + datetime.timedelta(days=365))
        subject = [x509.NameAttribute(NameOID.COMMON_NAME, name)]
        if in_subject:
            subject.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, address))
        builder = (x509.CertificateBuilder().subject_name(x509.Name(subject)).issuer_name(self.name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=not elliptic,
                                                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                                crl_sign=False, encipher_only=False, decipher_only=False), critical=True))
        if not in_subject:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(address)]), critical=False)
        if email_protection:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        secret = PASSWORD.encode()
        pfx, pem, key_file, bundle = (self.folder / f"{name}{suffix}" for suffix in (".pfx", ".cer", ".key", "-bundle.pem"))
        pfx.write_bytes(pkcs12.serialize_key_and_certificates(
            name.encode(), key, certificate, [self.certificate], serialization.BestAvailableEncryption(secret)))
        pem.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        bundle.write_bytes(certificate.public_bytes(serialization.Encoding.PEM)
                           + self.certificate.public_bytes(serialization.Encoding.PEM)
                           + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.BestAvailableEncryption(secret)))
        return Identity(address=address, pfx=pfx, pem=pem, key=key_file, bundle=bundle)
