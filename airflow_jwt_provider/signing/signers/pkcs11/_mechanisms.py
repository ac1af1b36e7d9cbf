"""Which PKCS#11 mechanism signs each JWS algorithm, and what it is fed.

RS256/384/512: ``CKM_SHA*_RSA_PKCS`` when the token has it, else ``CKM_RSA_PKCS`` over a
DigestInfo; PS256/384/512: ``CKM_SHA*_RSA_PKCS_PSS`` else ``CKM_RSA_PKCS_PSS`` over the digest,
MGF1 with the same hash and a salt as long as the hash (RFC 7518 §3.5); ES256/384/512:
``CKM_ECDSA`` over the digest (else ``CKM_ECDSA_SHA*``), whose ``r || s`` output is already the
JWS form. The first mechanism of each list that the token offers is used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from airflow_jwt_provider.signing.jws import JWS_HASHES, SigningPublicKey, choose_algorithm, digest, hash_for

# DER prefix of a PKCS#1 v1.5 DigestInfo (RFC 8017 §9.2, note 1), for tokens without CKM_SHA*_RSA_PKCS.
_DIGEST_INFO_PREFIXES = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_BITS = {"sha256": "256", "sha384": "384", "sha512": "512"}


@dataclass(frozen=True)
class SigningPlan:
    """How one algorithm is signed on a token.

    :param mechanism: the PKCS#11 mechanism (a python-pkcs11 ``Mechanism``).
    :param parameter: the PSS parameters (hash, MGF, salt length), else ``None``.
    :param prepare: turns the JWS signing input into what the mechanism signs (itself, its
        digest, or a DigestInfo).
    """

    mechanism: Any
    parameter: Any
    prepare: Callable[[bytes], bytes]

    def sign_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of python-pkcs11's ``PrivateKey.sign``."""
        kwargs: dict[str, Any] = {"mechanism": self.mechanism}
        if self.parameter is not None:
            kwargs["mechanism_param"] = self.parameter
        return kwargs

    @property
    def mechanism_name(self) -> str:
        return str(self.mechanism.name)


def candidate_plans(algorithm: str) -> list[SigningPlan]:
    """The plans that can sign ``algorithm``, preferred first."""
    from pkcs11 import MGF, Mechanism

    hash_name = hash_for(algorithm).name
    bits = _BITS[hash_name]

    def whole(data: bytes) -> bytes:
        return data

    def hashed(data: bytes) -> bytes:
        return digest(algorithm, data)

    def digest_info(data: bytes) -> bytes:
        return _DIGEST_INFO_PREFIXES[hash_name] + digest(algorithm, data)

    pss = (getattr(Mechanism, f"SHA{bits}"), getattr(MGF, f"SHA{bits}"), int(bits) // 8)
    if algorithm.startswith("RS"):
        return [
            SigningPlan(getattr(Mechanism, f"SHA{bits}_RSA_PKCS"), None, whole),
            SigningPlan(Mechanism.RSA_PKCS, None, digest_info),
        ]
    if algorithm.startswith("PS"):
        return [
            SigningPlan(getattr(Mechanism, f"SHA{bits}_RSA_PKCS_PSS"), pss, whole),
            SigningPlan(Mechanism.RSA_PKCS_PSS, pss, hashed),
        ]
    return [
        SigningPlan(Mechanism.ECDSA, None, hashed),
        SigningPlan(getattr(Mechanism, f"ECDSA_SHA{bits}"), None, whole),
    ]


def plan_for(algorithm: str, available: frozenset[Any]) -> SigningPlan | None:
    """The first plan for ``algorithm`` whose mechanism the token offers, else ``None``."""
    return next((plan for plan in candidate_plans(algorithm) if plan.mechanism in available), None)


def algorithms_with(public_key: SigningPublicKey, available: frozenset[Any]) -> list[str]:
    """The JWS algorithms the token can sign with ``public_key``'s private half (for error messages)."""
    from pkcs11 import Mechanism

    usable = []
    for algorithm in JWS_HASHES:
        bits = algorithm[2:]
        if isinstance(public_key, rsa.RSAPublicKey) and algorithm[:2] in ("RS", "PS"):
            suffix = "RSA_PKCS" if algorithm.startswith("RS") else "RSA_PKCS_PSS"
            names = (f"SHA{bits}_{suffix}", suffix)
        elif isinstance(public_key, ec.EllipticCurvePublicKey) and algorithm.startswith("ES"):
            names = ("ECDSA", f"ECDSA_SHA{bits}")
            if choose_algorithm(public_key, None) != algorithm:
                continue
        else:
            continue
        if any(getattr(Mechanism, name) in available for name in names):
            usable.append(algorithm)
    return usable
