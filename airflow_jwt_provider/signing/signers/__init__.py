"""Signers: what turns a JWS signing input into a signature, wherever the private key lives.

:mod:`.base` holds the contract (:class:`~.base.Signer`, :class:`~.base.SignerType`). Each
built-in kind is a package whose ``__init__`` is its registration (light: it parses settings
and imports the signing code only when it builds): ``local`` (a key file or inline key loaded
on the worker), ``pkcs11`` (an HSM, a smart card), ``aws_kms`` (an AWS KMS key). Other
packages add kinds through the ``airflow_jwt_provider.signers`` entry-point group.
"""
