"""Sign JWT assertions with an AWS KMS asymmetric key: the private key never leaves KMS.

Needs the optional dependency ``apache-airflow-providers-amazon``
(``pip install 'airflow-jwt-provider[aws]'``). Credentials, region and endpoint come from an
Airflow ``aws`` connection through the amazon provider's ``AwsBaseHook``, exactly as for any
other AWS operator: access keys, assumed roles, profiles, the ``endpoint_url`` extra (VPC
endpoints, a local emulator) and the ``region_name`` extra all work as configured there.

What an integrator needs to know:

* One ``GetPublicKey`` call when the signer is built: it checks that the key is an asymmetric
  ``SIGN_VERIFY`` key whose key spec allows the requested algorithm, and it gives the public
  key (for the cache fingerprint and for ``airflow jwt-bearer inspect``). The caller needs
  ``kms:GetPublicKey`` and ``kms:Sign`` on the key, nothing else.
* One ``Sign`` call per assertion with ``MessageType=DIGEST``: only the SHA-256/384/512 digest
  of the signing input is sent, so there is no 4 KB message limit (``x5c`` headers can be
  large) and the claims themselves never reach AWS.
* The key is pinned to the ARN that ``GetPublicKey`` returned: if ``kms_key_id`` is an alias
  that is later pointed at another key, this signer keeps signing with the key whose public
  key it holds (build a new signer to follow the alias).
* Thread safety: boto3 clients are thread-safe and the signer keeps no other mutable state,
  so one signer may sign from many threads at once.
* KMS holds no certificates: give ``certificate_file`` when the authorization server needs
  ``x5t`` headers; it must certify the KMS key's public key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, NoReturn

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from airflow_jwt_provider.exceptions import JwtBearerConfigError, KeystoreError
from airflow_jwt_provider.signing.certificates import load_certificate_file
from airflow_jwt_provider.signing.jws import (
    SigningPublicKey,
    choose_algorithm,
    describe_public_key,
    digest,
    ecdsa_der_to_jws,
    public_key_fingerprint,
)
from airflow_jwt_provider.signing.signers.base import DeviceSigner

__all__ = ["DEFAULT_FIELD_NAMES", "INSTALL_HINT", "JWS_TO_KMS", "AwsKmsSigner"]

INSTALL_HINT = "pip install 'airflow-jwt-provider[aws]'"

#: JWS algorithm → KMS ``SigningAlgorithm`` (RFC 7518 §3 ↔ KMS API reference, same padding and salt).
JWS_TO_KMS: Mapping[str, str] = {
    "RS256": "RSASSA_PKCS1_V1_5_SHA_256",
    "RS384": "RSASSA_PKCS1_V1_5_SHA_384",
    "RS512": "RSASSA_PKCS1_V1_5_SHA_512",
    "PS256": "RSASSA_PSS_SHA_256",
    "PS384": "RSASSA_PSS_SHA_384",
    "PS512": "RSASSA_PSS_SHA_512",
    "ES256": "ECDSA_SHA_256",
    "ES384": "ECDSA_SHA_384",
    "ES512": "ECDSA_SHA_512",
}
_KMS_TO_JWS = {kms: jws for jws, kms in JWS_TO_KMS.items()}

#: The setting names errors point at, by constructor argument (``field_names`` overrides them).
DEFAULT_FIELD_NAMES: Mapping[str, str] = {
    "kms_key_id": "kms_key_id",
    "aws_conn_id": "aws_conn_id",
    "region_name": "region_name",
    "algorithm": "algorithm",
    "certificate_file": "certificate_file",
}

# AWS error codes about the caller's credentials: their messages are not repeated (some services
# echo the access key id or the string to sign in them).
_CREDENTIAL_ERRORS = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "ExpiredTokenException",
    "ExpiredToken",
    "InvalidToken",
}
_UNAVAILABLE_ERRORS = {
    "KMSInternalException",
    "DependencyTimeoutException",
    "KeyUnavailableException",
    "ThrottlingException",
    "LimitExceededException",
}
_AWS_MESSAGE_LIMIT = 300


def _import_aws(field: str) -> tuple[Any, Any]:
    try:
        import botocore.exceptions
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    except ImportError:
        raise KeystoreError(
            f"signing with an AWS KMS key ({field}) needs the optional dependency "
            f"apache-airflow-providers-amazon: {INSTALL_HINT}",
            field=field,
        ) from None
    return AwsBaseHook, botocore.exceptions


class AwsKmsSigner(DeviceSigner):
    """A :class:`~airflow_jwt_provider.signing.signers.base.Signer` whose private key is an AWS KMS key.

    :param kms_key_id: key id, key ARN, alias name (``alias/jwt-signing``) or alias ARN.
    :param aws_conn_id: the Airflow ``aws`` connection with the credentials, region and
        (optionally) ``endpoint_url``; ``None`` uses boto3's default credential chain. As with
        every amazon-provider hook, a connection id that does not exist falls back to that chain.
    :param region_name: overrides the connection's region.
    :param algorithm: JWS algorithm; default from the key (RSA → RS256, ECC_NIST_P256/384/521 →
        ES256/384/512). RSA keys may also use RS384/512 and PS256/384/512.
    :param certificate_file: PEM/DER certificate of the KMS key pair (KMS stores none).
    :param field_names: setting names for error messages, by argument name (:data:`DEFAULT_FIELD_NAMES`).
    :raises KeystoreError: the key cannot be used (not found, disabled, pending deletion, not a
        signing key, access denied, credentials refused, KMS unreachable), or the certificate file.
    :raises JwtBearerConfigError: a setting is missing, or the algorithm does not fit the key.
    """

    def __init__(
        self,
        kms_key_id: str,
        *,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        algorithm: str | None = None,
        certificate_file: str | os.PathLike[str] | None = None,
        field_names: Mapping[str, str] | None = None,
    ) -> None:
        self._fields = {**DEFAULT_FIELD_NAMES, **(field_names or {})}
        hook_class, self._botocore = _import_aws(self._fields["kms_key_id"])
        if not kms_key_id or not kms_key_id.strip():
            field = self._fields["kms_key_id"]
            raise JwtBearerConfigError(
                f"{field} is empty; set the KMS key id, key ARN or alias (alias/...) that signs", field=field
            )
        self._requested_key = kms_key_id.strip()
        self._aws_conn_id = aws_conn_id
        self._key_ref = self._requested_key  # the ARN once GetPublicKey answered
        self._client = self._make_client(hook_class, region_name)
        self._region = getattr(getattr(self._client, "meta", None), "region_name", None) or region_name

        response = self._call("GetPublicKey", KeyId=self._requested_key)
        self._key_ref = response.get("KeyId") or self._requested_key
        self._key_spec = str(response.get("KeySpec") or response.get("CustomerMasterKeySpec") or "")
        usage = response.get("KeyUsage")
        if usage != "SIGN_VERIFY":
            field = self._fields["kms_key_id"]
            raise KeystoreError(
                f"KMS key {self._shown_key()} has KeyUsage {usage} ({self._key_spec}); JWT assertions need an "
                "asymmetric key created with KeyUsage SIGN_VERIFY (RSA_2048+ or ECC_NIST_P256/P384/P521)",
                field=field,
            )
        self._public_key = self._load_public_key(response.get("PublicKey") or b"")
        self._algorithm = choose_algorithm(
            self._public_key,
            algorithm,
            field=self._fields["algorithm"],
            key_field=self._fields["kms_key_id"],
            where=f"KMS key {self._shown_key()} ({self._key_spec})",
        )
        self._kms_algorithm = JWS_TO_KMS[self._algorithm]
        offered = list(response.get("SigningAlgorithms") or [])
        if self._kms_algorithm not in offered:
            field = self._fields["algorithm"]
            usable = [_KMS_TO_JWS[name] for name in offered if name in _KMS_TO_JWS]
            raise JwtBearerConfigError(
                f"KMS key {self._shown_key()} ({self._key_spec}) does not sign with {self._kms_algorithm} "
                f"({self._algorithm}); it offers {', '.join(offered) or 'no signing algorithm'}: set {field} to one "
                f"of {', '.join(usable) or '(none usable for JWS)'}",
                field=field,
            )
        self._certificate: x509.Certificate | None = None
        if certificate_file:
            self._certificate = load_certificate_file(
                certificate_file, self._public_key, field=self._fields["certificate_file"]
            )

    # --- the Signer contract -------------------------------------------------------------------

    def sign(self, signing_input: bytes) -> bytes:
        """The JWS signature of ``signing_input``: one KMS ``Sign`` round trip, digest only."""
        response = self._call(
            "Sign",
            KeyId=self._key_ref,
            Message=digest(self._algorithm, signing_input),
            MessageType="DIGEST",
            SigningAlgorithm=self._kms_algorithm,
        )
        signature = bytes(response["Signature"])
        if isinstance(self._public_key, ec.EllipticCurvePublicKey):
            return ecdsa_der_to_jws(signature, self._public_key.curve.key_size)
        assert isinstance(self._public_key, rsa.RSAPublicKey)
        return signature.rjust((self._public_key.key_size + 7) // 8, b"\0")

    # --- more about the key ----------------------------------------------------------------------

    @property
    def key_arn(self) -> str:
        """The key that signs, as KMS named it (an ARN on AWS)."""
        return self._key_ref

    @property
    def key_spec(self) -> str:
        return self._key_spec

    @property
    def kms_algorithm(self) -> str:
        return self._kms_algorithm

    def __repr__(self) -> str:
        return (
            f"AwsKmsSigner(key={self._shown_key()}, aws_conn_id={self._aws_conn_id!r}, region={self._region!r}, "
            f"algorithm={self._algorithm}, kms_algorithm={self._kms_algorithm}, "
            f"public_key={describe_public_key(self._public_key)}, "
            f"fingerprint={public_key_fingerprint(self._public_key)[:16]}…)"
        )

    # --- AWS calls ---------------------------------------------------------------------------------

    def _make_client(self, hook_class: Any, region_name: str | None) -> Any:
        try:
            hook = hook_class(aws_conn_id=self._aws_conn_id, client_type="kms", region_name=region_name)
            return hook.get_conn()
        except self._botocore.NoRegionError:
            field = self._fields["aws_conn_id"]
            raise JwtBearerConfigError(
                f"no AWS region for KMS: set region_name in the extra of Airflow connection {self._aws_conn_id!r} "
                f"(or the {self._fields['region_name']} setting)",
                field=field,
            ) from None
        except self._botocore.ClientError as exc:  # e.g. the connection's role_arn cannot be assumed
            error = exc.response.get("Error", {}) if isinstance(exc.response, dict) else {}
            field = self._fields["aws_conn_id"]
            raise KeystoreError(
                f"cannot create a KMS client from Airflow connection {self._aws_conn_id!r}: AWS refused "
                f"{getattr(exc, 'operation_name', 'a call')} ({error.get('Code', 'Unknown')}); check its credentials "
                "and role_arn",
                field=field,
            ) from None
        except (self._botocore.BotoCoreError, ValueError) as exc:
            field = self._fields["aws_conn_id"]
            raise KeystoreError(
                f"cannot create a KMS client from Airflow connection {self._aws_conn_id!r} ({type(exc).__name__}); "
                "check its extra (region_name, endpoint_url, role_arn...)",
                field=field,
            ) from None

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        method = getattr(self._client, "sign" if operation == "Sign" else "get_public_key")
        try:
            return dict(method(**kwargs))
        except self._botocore.ClientError as exc:
            self._raise_client_error(operation, exc)
        except self._botocore.NoCredentialsError:
            field = self._fields["aws_conn_id"]
            raise KeystoreError(
                f"no AWS credentials for KMS {operation}: Airflow connection {self._aws_conn_id!r} has none (or does "
                "not exist) and boto3 found none in the environment; set the connection's login/password, "
                "role_arn or profile",
                field=field,
            ) from None
        except self._botocore.ParamValidationError:
            field = self._fields["kms_key_id"]
            raise JwtBearerConfigError(
                f"{field} {self._requested_key!r} is not a valid KMS key id, key ARN or alias name", field=field
            ) from None
        except (self._botocore.EndpointConnectionError, self._botocore.ConnectionError) as exc:
            field = self._fields["aws_conn_id"]
            endpoint = getattr(getattr(self._client, "meta", None), "endpoint_url", "?")
            raise KeystoreError(
                f"cannot reach KMS at {endpoint} for {operation} ({type(exc).__name__}); check the network and the "
                f"endpoint_url / region_name of Airflow connection {self._aws_conn_id!r}",
                field=field,
            ) from None
        except self._botocore.BotoCoreError as exc:
            raise KeystoreError(
                f"KMS {operation} on key {self._shown_key()} failed ({type(exc).__name__})",
                field=self._fields["kms_key_id"],
            ) from None

    def _raise_client_error(self, operation: str, exc: Any) -> NoReturn:
        response = exc.response if isinstance(exc.response, dict) else {}
        error = response.get("Error", {})
        code = str(error.get("Code") or "Unknown")
        aws_says = str(error.get("Message") or "").strip()
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if aws_says.startswith("<"):
            # An XML error body where KMS speaks JSON (a proxy, an emulator): keep its code and message.
            found_code = re.search(r"<Code>([^<]{1,100})</Code>", aws_says)
            found_message = re.search(r"<Message>([^<]{0,1000})</Message>", aws_says)
            code = found_code.group(1) if found_code else code
            aws_says = found_message.group(1).strip() if found_message else ""
        if status == 403 and code not in _CREDENTIAL_ERRORS:
            code = "AccessDeniedException"  # KMS says AccessDeniedException; gateways and proxies say 403
        aws_says = aws_says[:_AWS_MESSAGE_LIMIT]
        detail = f"AWS: {code}" + (f": {aws_says}" if aws_says else "")
        key = self._shown_key()
        key_field = self._fields["kms_key_id"]
        conn_field = self._fields["aws_conn_id"]
        if code in _CREDENTIAL_ERRORS:
            raise KeystoreError(
                f"AWS refused the credentials of Airflow connection {self._aws_conn_id!r} for KMS {operation} "
                f"({code}); check its access key, secret, session token or role",
                field=conn_field,
            ) from None
        if code == "NotFoundException":
            raise KeystoreError(
                f"{key_field} {self._requested_key!r}: no such KMS key in region {self._region} ({detail}); check the "
                "key id, ARN or alias and the region of the aws connection",
                field=key_field,
            ) from None
        if code == "DisabledException":
            raise KeystoreError(
                f"KMS key {key} is disabled ({detail}); enable it (aws kms enable-key) or use another key",
                field=key_field,
            ) from None
        if code == "KMSInvalidStateException":
            raise KeystoreError(
                f"KMS key {key} cannot be used in its current state, e.g. pending deletion or pending import "
                f"({detail}); cancel the deletion or use another key",
                field=key_field,
            ) from None
        if code == "AccessDeniedException":
            raise KeystoreError(
                f"the credentials of Airflow connection {self._aws_conn_id!r} may not call kms:{operation} on KMS key "
                f"{key} ({detail}); grant kms:{operation} in the key policy or the IAM policy",
                field=conn_field,
            ) from None
        if code == "InvalidKeyUsageException":
            raise KeystoreError(
                f"KMS key {key} is not a SIGN_VERIFY key ({detail}); JWT assertions need an asymmetric signing key",
                field=key_field,
            ) from None
        if code == "UnsupportedOperationException" and operation == "GetPublicKey":
            raise KeystoreError(
                f"KMS key {key} has no public key: it is a symmetric or HMAC key ({detail}); JWT assertions need an "
                "asymmetric SIGN_VERIFY key (RSA or ECC_NIST_*)",
                field=key_field,
            ) from None
        if code in ("UnsupportedOperationException", "ValidationException") and operation == "Sign":
            field = self._fields["algorithm"]
            raise JwtBearerConfigError(
                f"KMS refused to sign with {getattr(self, '_kms_algorithm', '?')} using key {key} ({detail}); "
                f"check {field}",
                field=field,
            ) from None
        if code in _UNAVAILABLE_ERRORS:
            raise KeystoreError(
                f"KMS could not {operation} with key {key} right now ({detail}); retry later", field=key_field
            ) from None
        raise KeystoreError(f"KMS {operation} with key {key} failed ({detail})", field=key_field) from None

    def _load_public_key(self, der: bytes) -> SigningPublicKey:
        try:
            key = serialization.load_der_public_key(bytes(der))
        except (ValueError, UnsupportedAlgorithm):
            key = None
        if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            field = self._fields["kms_key_id"]
            raise KeystoreError(
                f"KMS key {self._shown_key()} ({self._key_spec}) has a public key this signer cannot use; "
                "use an RSA_2048/3072/4096 or ECC_NIST_P256/P384/P521 key",
                field=field,
            )
        return key

    def _shown_key(self) -> str:
        if self._key_ref != self._requested_key:
            return f"{self._requested_key} ({self._key_ref})"
        return self._requested_key
