"""Signers: what turns a JWS signing input into a signature, wherever the private key lives.

:class:`~airflow_jwt_provider.signers.base.Signer` is the contract. The provider's own
implementations sign with a key loaded from a keystore or PEM on the worker (``local``) or
inside a device that never lets the key out (PKCS#11 HSMs, cloud KMS).
"""

from airflow_jwt_provider.signers.base import Signer

__all__ = ["Signer"]
