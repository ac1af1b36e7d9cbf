"""Every extra key a ``jwt_bearer`` connection accepts, declared once: the form, the parser and the docs read this.

One :class:`ExtraField` per key gives its label and description (what the Airflow 3 UI shows,
and what the documentation's reference lists) and its JSON-Schema type. The settings parser
refuses any key that is not declared here or by a registered signer, so a setting cannot exist
without its form field and its description.

Fields marked ``signer_scoped`` are read by some signers only: each built-in signer's own
fields are listed in :data:`BUILTIN_SIGNER_FIELDS` (its registration hands them to the parser),
and a shared one is read by the signers whose registration lists it in ``reads``. With any other
signer they are refused by name rather than ignored. A signer another package registers reads
its settings from ``signer_options`` (a JSON object).

This module imports nothing of Airflow: the provider info builds the form from it while Airflow
itself is being imported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_jwt_provider.common.registry import ASSERTION_SOURCE_GROUP, SIGNER_GROUP, entry_point_names
from airflow_jwt_provider.connection.kinds import (
    DPOP_ALGORITHMS,
    ClientAssertionAudience,
    ClientAuthMethod,
    DPoPKeySource,
    GrantType,
    KeystoreType,
    token_cache_kinds,
)
from airflow_jwt_provider.connection.presets import PRESETS

#: The provider's own signers, in the order the form lists them (others follow alphabetically).
BUILTIN_SIGNERS = ("local", "pkcs11", "aws_kms")
#: The provider's own assertion sources, in menu order.
BUILTIN_SOURCES = ("sign", "file", "github_actions", "aws_sts", "gcp_metadata", "callable")

#: The JWS algorithms a connection may name (RFC 7518 §3; EdDSA per RFC 8037).
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")

STRING: Mapping[str, Any] = {"type": ["string", "null"]}
SECRET: Mapping[str, Any] = {"type": ["string", "null"], "format": "password"}
INTEGER: Mapping[str, Any] = {"type": ["integer", "null"]}
NUMBER: Mapping[str, Any] = {"type": ["number", "null"]}
BOOLEAN: Mapping[str, Any] = {"type": ["boolean", "null"]}
OBJECT: Mapping[str, Any] = {"type": ["object", "null"]}


def choice(values: Iterable[str]) -> Mapping[str, Any]:
    """A drop-down of ``values``, left empty for the default (shown as "(default)" rather than "null")."""
    return {"type": ["string", "null"], "values_display": {"null": "(default)"}, "enum": [None, *values]}


@dataclass(frozen=True)
class ExtraField:
    """One extra key of the connection.

    :param name: the key, as stored in the connection's extra (and in the form).
    :param label: the form's label.
    :param description: one or two sentences: what it is, its default, when to set it.
    :param schema: JSON Schema of the value (``format: password`` makes the form mask the input).
    :param signer_scoped: read only by the signers whose registration lists it in ``reads``.
    """

    name: str
    label: str
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: STRING)
    signer_scoped: bool = False
    #: read only by the assertion sources that list its suffix (``assertion_file``: ``file``)
    source_scoped: bool = False
    #: read only with ``grant`` token_exchange
    exchange_only: bool = False

    @property
    def secret(self) -> bool:
        return self.schema.get("format") == "password"

    def form(self) -> dict[str, Any]:
        """The ``conn-fields`` entry of the provider info."""
        schema = dict(self.schema)
        if "enum" in schema:
            schema["enum"] = list(schema["enum"])
            schema["values_display"] = dict(schema["values_display"])
        return {"label": self.label, "description": self.description, "schema": schema}


def _fields(*fields: ExtraField) -> dict[str, ExtraField]:
    return {f.name: f for f in fields}


#: The fields before the signer's own ones, in form order.
ENDPOINT_FIELDS = _fields(
    ExtraField(
        "preset",
        "Vendor preset",
        f"Fills and checks the vendor's mandatory settings: {', '.join(PRESETS)}.",
        choice(PRESETS),
    ),
    ExtraField("auth_url", "Token endpoint URL", "Where the JWT is exchanged for a token (also the default 'aud')."),
    ExtraField(
        "auth_issuer",
        "Authorization server issuer",
        "Its issuer identifier (RFC 8414), e.g. https://login.example.com: the aud of client assertions "
        "(draft-ietf-oauth-rfc7523bis). Without it, client assertions name the token endpoint.",
    ),
    ExtraField(
        "grant",
        "Grant",
        "jwt_bearer (the JWT is the grant, RFC 7523 §2.1; default), client_credentials (the JWT is the client "
        "assertion, §2.2), token_exchange (the JWT is the subject token, RFC 8693).",
        choice(g.setting for g in GrantType),
    ),
    ExtraField(
        "assertion_source",
        "Assertion source",
        "Where the JWT comes from: sign (minted with the key below; default), or a token the platform gives the "
        "workload, so no key is needed: file, github_actions, aws_sts, gcp_metadata, callable.",
        # The enum is filled from the registry when the provider info is built (form_fields).
    ),
    ExtraField(
        "signer",
        "Signer",
        "Where the private key lives: local (key file or inline key, the default), pkcs11 (an HSM or smart card), "
        "aws_kms (an AWS KMS key), or a signer another installed package registers. Settings of another signer "
        "are refused.",
        # The enum is filled from the registry when the provider info is built (form_fields).
    ),
)


def _source_fields(prefix: str, what: str) -> dict[str, ExtraField]:
    """The settings of an assertion source, under ``prefix`` (``assertion`` or ``actor_token``)."""
    return _fields(
        ExtraField(
            f"{prefix}_file",
            f"{what} file",
            f"assertion source file: the file holding the {what.lower()} (e.g. /var/run/secrets/tokens/airflow, or "
            "$AZURE_FEDERATED_TOKEN_FILE); read again when it changes.",
            source_scoped=True,
        ),
        ExtraField(
            f"{prefix}_audience",
            f"{what} audience",
            "The audience to ask the platform for (github_actions, aws_sts, gcp_metadata, callable), or that the "
            "file's token must carry.",
            source_scoped=True,
        ),
        ExtraField(
            f"{prefix}_callable",
            f"{what} callable",
            "assertion source callable: the dotted path of a function(audience) returning a JWT.",
            source_scoped=True,
        ),
        ExtraField(
            f"{prefix}_aws_conn_id",
            f"{what} AWS connection",
            "assertion source aws_sts: the Airflow aws connection whose identity asks STS for the token; default "
            "aws_default.",
            source_scoped=True,
        ),
        ExtraField(
            f"{prefix}_signing_algorithm",
            f"{what} signing algorithm",
            "assertion source aws_sts: RS256 (default) or ES384.",
            choice(("RS256", "ES384")),
            source_scoped=True,
        ),
        ExtraField(
            f"{prefix}_options",
            f"{what} options",
            "JSON object of the settings of an assertion source another package registers.",
            OBJECT,
            source_scoped=True,
        ),
    )


#: The settings of the assertion's source.
ASSERTION_SOURCE_FIELDS = _source_fields("assertion", "Assertion")

#: RFC 8693 token exchange (grant token_exchange only).
TOKEN_EXCHANGE_FIELDS = _fields(
    ExtraField(
        "subject_token_type",
        "Subject token type",
        "The subject token's type (RFC 8693 §3); default urn:ietf:params:oauth:token-type:jwt.",
        exchange_only=True,
    ),
    ExtraField(
        "requested_token_type",
        "Requested token type",
        "e.g. urn:ietf:params:oauth:token-type:access_token; the answer's issued_token_type must match it.",
        exchange_only=True,
    ),
    ExtraField(
        "exchange_audience",
        "Exchange audience",
        "The token request's audience parameter(s), comma-separated (Google: //iam.googleapis.com/projects/…).",
        exchange_only=True,
    ),
    ExtraField(
        "exchange_resource",
        "Exchange resource",
        "The token request's resource parameter(s) (RFC 8707), comma-separated.",
        exchange_only=True,
    ),
    ExtraField(
        "actor_token_source",
        "Actor token source",
        "Where an actor token comes from (sign, file, callable…); none by default.",
        exchange_only=True,
    ),
    *(replace(f, exchange_only=True) for f in _source_fields("actor_token", "Actor token").values()),
    ExtraField(
        "actor_token_type",
        "Actor token type",
        "The actor token's type; default urn:ietf:params:oauth:token-type:jwt.",
        exchange_only=True,
    ),
    ExtraField(
        "service_account_impersonation_url",
        "Service account impersonation URL",
        "Google: after the exchange, generateAccessToken of this URL "
        "(https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/EMAIL:generateAccessToken).",
        exchange_only=True,
    ),
)

#: Signer settings more than one signer reads (each signer's ``reads`` says whether it does).
SHARED_SIGNER_FIELDS = _fields(
    ExtraField(
        "keystore_password",
        "Keystore password / PIN",
        "Store password; also the passphrase of an encrypted PEM, and the user PIN of the token with signer pkcs11.",
        SECRET,
        signer_scoped=True,
    ),
    ExtraField(
        "key_alias",
        "Key alias",
        "The key that signs: keystore alias, PKCS#11 key label or KMS key id/ARN/alias. Several, comma-separated, "
        "to rotate: the first valid one signs.",
    ),
    ExtraField(
        "certificate_file",
        "Certificate file",
        "signer pkcs11 or aws_kms: PEM/DER certificate of the key, when the device holds only the key (x5t headers).",
        signer_scoped=True,
    ),
    ExtraField(
        "signer_options",
        "Signer options",
        'JSON object of the settings of a signer registered by another package, e.g. {"vault_url": "..."}; see '
        "that package's documentation.",
        OBJECT,
        signer_scoped=True,
    ),
)

#: The fields after the signer's, in form order.
ASSERTION_AND_HTTP_FIELDS = _fields(
    ExtraField("issuer", "Issuer (iss)", "Defaults to the client id (Login)."),
    ExtraField("subject", "Subject (sub)", "User, account or enterprise id the token acts for; tasks may override."),
    ExtraField("audience", "Audience (aud)", "Defaults to the token endpoint URL (or the preset's rule)."),
    ExtraField("lifetime", "Assertion lifetime (s)", "Seconds from iat to exp; default 60.", INTEGER),
    ExtraField(
        "claims", "Extra claims", 'JSON object of additional claims, e.g. {"box_sub_type": "enterprise"}.', OBJECT
    ),
    ExtraField("scope", "Scope", "Space-separated scopes to request."),
    ExtraField(
        "algorithm",
        "Signing algorithm",
        "Defaults from the key: RSA → RS256, EC by curve, Ed25519 → EdDSA.",
        choice(SIGNING_ALGORITHMS),
    ),
    ExtraField(
        "key_id",
        "Key id (kid)",
        'kid header, as registered with the server (Box public key id, ...); a JSON list ["k2", "k1"] gives one '
        "per Key alias entry.",
    ),
    ExtraField("x5t", "Certificate thumbprint headers", "Add x5t#S256 and x5t (Microsoft Entra).", BOOLEAN),
    ExtraField("nbf", "Add nbf claim", "Add a not-before claim equal to iat.", BOOLEAN),
    ExtraField(
        "client_auth",
        "Client authentication",
        "How the client authenticates at the token endpoint; default client_secret_post when a secret is set.",
        choice(m.value for m in ClientAuthMethod),
    ),
    ExtraField(
        "client_assertion_audience",
        "Client assertion audience",
        "The aud of client assertions: issuer (auth_issuer, as draft-ietf-oauth-rfc7523bis asks; the default when "
        "auth_issuer is set), token_endpoint (the default otherwise), or both.",
        choice(a.value for a in ClientAssertionAudience),
    ),
    ExtraField(
        "client_assertion_typ",
        "Client assertion typ header",
        "Send typ: client-authentication+jwt in client assertions (draft-ietf-oauth-rfc7523bis); default false.",
        BOOLEAN,
    ),
    ExtraField(
        "dpop",
        "DPoP-bound tokens",
        "Ask for tokens bound to a key (RFC 9449): a DPoP proof on every token request and API call; a stolen "
        "token is useless without the key. Default false.",
        BOOLEAN,
    ),
    ExtraField(
        "dpop_key",
        "DPoP key",
        "generated (default: a key made for the token, kept with it, sealed in a shared cache) or signer (the "
        "connection's signing key: an HSM or KMS key signs every proof).",
        choice(k.value for k in DPoPKeySource),
    ),
    ExtraField(
        "dpop_algorithm",
        "DPoP proof algorithm",
        "The algorithm of a generated DPoP key: ES256 (default), ES384, ES512, EdDSA, PS256, RS256.",
        choice(DPOP_ALGORITHMS),
    ),
    ExtraField(
        "dpop_allow_bearer",
        "Accept unbound tokens",
        "When the server answers a DPoP request with a Bearer token (RFC 9449 §5 allows it), use it with a "
        "warning instead of refusing it. Default false.",
        BOOLEAN,
    ),
    ExtraField(
        "mtls",
        "Certificate-bound tokens (mTLS)",
        "Call the token endpoint and the API over mutual TLS with the connection's key and certificate (RFC 8705): "
        "tokens bound to the certificate. Default false.",
        BOOLEAN,
    ),
    ExtraField(
        "auth_params",
        "Extra token request fields",
        'JSON object added to the token request form, e.g. {"resource": "..."}.',
        OBJECT,
    ),
    ExtraField(
        "token_cache",
        "Token cache",
        "Where tokens are shared: memory (each process), file (every process of a machine), redis (every "
        "worker of the cluster). Default: [jwt_bearer] token_cache, else memory.",
        # The enum is filled from the token store registry when the provider info is built.
    ),
    ExtraField(
        "token_cache_conn_id",
        "Token cache Redis connection",
        "The Airflow redis connection of token_cache redis (e.g. the Celery broker's Redis). "
        "Default: [jwt_bearer] token_cache_conn_id, else redis_default.",
    ),
    ExtraField(
        "token_cache_dir",
        "Token cache directory",
        "The folder of token_cache file, owner-only. Default: [jwt_bearer] token_cache_dir, else "
        "$AIRFLOW_HOME/jwt_bearer_token_cache.",
    ),
    ExtraField(
        "default_token_lifetime",
        "Default token lifetime (s)",
        "How long a token is used when the endpoint gives no expires_in (Salesforce); default 300.",
        INTEGER,
    ),
    ExtraField("timeout", "HTTP timeout (s)", "For token and API calls; default 30.", NUMBER),
    ExtraField("verify", "TLS verification", "true (default), false, or the path of a CA bundle."),
    ExtraField("proxies", "Proxies", 'Proxy URL, or JSON object like {"https": "http://proxy:3128"}.', SECRET),
    ExtraField(
        "trusted_hosts",
        "Trusted hosts",
        "Other hosts the token may be sent to besides the API base URL, comma-separated "
        "(files.example.com, *.example.com, host:port); https only. Requests elsewhere are refused.",
    ),
)

#: The fields only one built-in signer reads, by signer (each registration's ``fields``).
BUILTIN_SIGNER_FIELDS: Mapping[str, tuple[ExtraField, ...]] = {
    "local": (
        ExtraField(
            "key_file",
            "Key file path",
            "Keystore (JKS, JCEKS, PKCS#12), PEM private key or Google service-account JSON, readable by workers.",
            signer_scoped=True,
        ),
        ExtraField(
            "private_key",
            "Private key (inline)",
            "Instead of a key file: PEM text, base64 keystore bytes, or service-account JSON. Stored masked.",
            SECRET,
            signer_scoped=True,
        ),
        ExtraField(
            "key_password",
            "Key password",
            "Password of the key entry, if it differs from the store's.",
            SECRET,
            signer_scoped=True,
        ),
        ExtraField(
            "keystore_type",
            "Keystore type",
            "Normally detected from the content: jks, jceks, pkcs12, pem, google_json.",
            choice(t.value for t in KeystoreType),
            signer_scoped=True,
        ),
    ),
    "pkcs11": (
        ExtraField(
            "pkcs11_module",
            "PKCS#11 module",
            "signer pkcs11: path of the HSM vendor's PKCS#11 library (.so) on every worker.",
            signer_scoped=True,
        ),
        ExtraField(
            "pkcs11_token_label",
            "PKCS#11 token label",
            "signer pkcs11: the label of the token holding the key.",
            signer_scoped=True,
        ),
        ExtraField(
            "pkcs11_key_id",
            "PKCS#11 key id",
            "signer pkcs11: the key's CKA_ID in hex, instead of (or with) its label in Key alias.",
            signer_scoped=True,
        ),
    ),
    "aws_kms": (
        ExtraField(
            "aws_conn_id",
            "AWS connection",
            "signer aws_kms: the Airflow aws connection with credentials and region; default aws_default.",
            signer_scoped=True,
        ),
    ),
}


def form_fields() -> dict[str, ExtraField]:
    """Every field of the form, in form order; the signer and token cache drop-downs list what is installed."""
    sources = choice(entry_point_names(ASSERTION_SOURCE_GROUP, BUILTIN_SOURCES))
    signers = choice(entry_point_names(SIGNER_GROUP, BUILTIN_SIGNERS))
    fields: dict[str, ExtraField] = {}
    for name, extra in ENDPOINT_FIELDS.items():
        if name == "signer":
            fields.update(ASSERTION_SOURCE_FIELDS)  # the source's settings right after the source
            extra = replace(extra, schema=signers)
        elif name == "assertion_source":
            extra = replace(extra, schema=sources)
        fields[name] = extra
    for signer_fields in BUILTIN_SIGNER_FIELDS.values():
        fields.update({f.name: f for f in signer_fields})
    fields.update(SHARED_SIGNER_FIELDS)
    fields.update(ASSERTION_AND_HTTP_FIELDS)
    fields.update(TOKEN_EXCHANGE_FIELDS)
    fields["actor_token_source"] = replace(fields["actor_token_source"], schema=sources)
    fields["token_cache"] = replace(fields["token_cache"], schema=choice(token_cache_kinds()))
    return fields


#: Every extra key of the connection (the drop-downs' choices aside, what :func:`form_fields` gives).
ALL_FIELDS: Mapping[str, ExtraField] = {
    **ENDPOINT_FIELDS,
    **ASSERTION_SOURCE_FIELDS,
    **{f.name: f for signer_fields in BUILTIN_SIGNER_FIELDS.values() for f in signer_fields},
    **SHARED_SIGNER_FIELDS,
    **ASSERTION_AND_HTTP_FIELDS,
    **TOKEN_EXCHANGE_FIELDS,
}
