"""Parse a ``jwt_bearer`` connection once into a typed, validated :class:`JwtBearerSettings`.

Everything downstream (key loading, assertion minting, the token client) reads this
object and never the raw connection, so a setting is checked in exactly one place and
every error can name the field at fault. A connection saved from the Airflow 3 form
stores every declared field, ``null`` when left empty: ``None`` and ``""`` mean *unset*.
Connections defined as URIs carry every extra as a string, so numbers, booleans and
objects are also accepted in their string form.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from airflow_jwt_provider.exceptions import JwtBearerConfigError
from airflow_jwt_provider.presets import Preset, get_preset
from airflow_jwt_provider.redaction import mask_stable_secret
from airflow_jwt_provider.seconds import finite_seconds
from airflow_jwt_provider.token_parameters import canonical_claims
from airflow_jwt_provider.trusted_hosts import HostPattern, TrustedHosts, parse_trusted_hosts

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLIENT_CREDENTIALS_GRANT = "client_credentials"

SIGNING_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
KEYSTORE_TYPES = ("jks", "jceks", "pkcs12", "pem", "google_json")
#: Where the private key lives: a key file or inline key loaded on the worker, a PKCS#11
#: device (HSM, smart card), an AWS KMS key.
SIGNERS = ("local", "pkcs11", "aws_kms")
DEFAULT_AWS_CONN_ID = "aws_default"
#: The settings only some signers read. Set with another signer they are refused, naming both,
#: rather than ignored: a key_file left over after the key moved into an HSM would suggest
#: that the file still signs.
SIGNER_SETTINGS: dict[str, tuple[str, ...]] = {
    "key_file": ("local",),
    "private_key": ("local",),
    "key_password": ("local",),
    "keystore_type": ("local",),
    "keystore_password": ("local", "pkcs11"),
    "pkcs11_module": ("pkcs11",),
    "pkcs11_token_label": ("pkcs11",),
    "pkcs11_key_id": ("pkcs11",),
    "aws_conn_id": ("aws_kms",),
    "certificate_file": ("pkcs11", "aws_kms"),
}
CLIENT_AUTH_METHODS = ("none", "client_secret_post", "client_secret_basic", "private_key_jwt")
_FORM_PREFIX = "extra__jwt_bearer__"
DEFAULT_LIFETIME = 60
DEFAULT_TIMEOUT = 30.0
#: How long a token is used when the endpoint does not say (``expires_in`` absent).
DEFAULT_TOKEN_LIFETIME = 300
#: Upper bounds: an assertion or token lifetime of a day, an HTTP timeout of an hour.
MAX_LIFETIME = 86400
MAX_TIMEOUT = 3600.0

#: Every extra key the connection accepts. Anything else is a typo or a misunderstanding,
#: and is refused rather than ignored (or, worse, sent as an HTTP header).
EXTRA_KEYS = (
    "auth_url",
    "key_file",
    "private_key",
    "keystore_password",
    "key_alias",
    "key_password",
    "keystore_type",
    "signer",
    "pkcs11_module",
    "pkcs11_token_label",
    "pkcs11_key_id",
    "aws_conn_id",
    "certificate_file",
    "issuer",
    "subject",
    "audience",
    "lifetime",
    "claims",
    "scope",
    "algorithm",
    "key_id",
    "x5t",
    "nbf",
    "client_auth",
    "auth_params",
    "token_cache",
    "token_cache_conn_id",
    "token_cache_dir",
    "preset",
    "timeout",
    "verify",
    "proxies",
    "trusted_hosts",
    "default_token_lifetime",
)


class ConnectionLike(Protocol):
    """What settings need of an Airflow ``Connection`` (so tests and triggers can pass their own)."""

    conn_id: str
    host: str | None
    login: str | None
    password: str | None
    schema: str | None
    port: int | None

    @property
    def extra_dejson(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class KeySource:
    """Where the key material comes from: a file path, or the material itself inline.

    ``repr`` never shows inline material.
    """

    path: str | None = None
    inline: str | None = field(default=None, repr=False)

    @property
    def field_name(self) -> str:
        return "key_file" if self.path is not None else "private_key"


@dataclass(frozen=True)
class HttpSettings:
    """HTTP options shared by token requests and API calls, sync and async."""

    timeout: float = DEFAULT_TIMEOUT
    verify: bool | str = True
    #: Not in ``repr``: a proxy URL may carry ``user:password@``.
    proxies: Mapping[str, str] | None = field(default=None, repr=False)


#: Where tokens are shared: each process alone, every process of one machine, every worker of a cluster.
TOKEN_CACHE_KINDS = ("memory", "file", "redis")
#: The provider's section of the Airflow configuration (declared in ``get_provider_info()["config"]``):
#: deployment-wide defaults of the ``token_cache*`` extras, and the knobs that only a deployment sets.
CONFIG_SECTION = "jwt_bearer"
#: The redis connection a shared cache uses when none is named (the redis provider's default).
DEFAULT_TOKEN_CACHE_CONN_ID = "redis_default"
#: How long a process waits for another's token request before fetching for itself.
DEFAULT_TOKEN_CACHE_WAIT = 10.0
#: The bound of each call to the shared store: a slow store must cost a task little.
DEFAULT_TOKEN_CACHE_IO_TIMEOUT = 0.5
MAX_TOKEN_CACHE_WAIT = 300.0
MAX_TOKEN_CACHE_IO_TIMEOUT = 30.0


@dataclass(frozen=True)
class TokenCacheSettings:
    """Where tokens are cached beyond the process, from the connection's extras or ``[jwt_bearer]``.

    :param kind: ``memory`` (each process alone), ``file`` (a directory every process of the
        machine shares), ``redis`` (a Redis every worker of the cluster reaches).
    :param conn_id: the Airflow ``redis`` connection (``redis`` only).
    :param directory: the folder of ``file`` (``None``: under ``AIRFLOW_HOME``).
    :param wait: seconds a process waits for another's token request before fetching itself.
    :param io_timeout: seconds each call to the store may take before the store counts as down.
    """

    kind: str = "memory"
    conn_id: str = DEFAULT_TOKEN_CACHE_CONN_ID
    directory: str | None = None
    wait: float = DEFAULT_TOKEN_CACHE_WAIT
    io_timeout: float = DEFAULT_TOKEN_CACHE_IO_TIMEOUT

    @property
    def shared(self) -> bool:
        """Whether tokens are shared with other processes (every kind but ``memory``)."""
        return self.kind != "memory"


@dataclass(frozen=True)
class JwtBearerSettings:
    """The validated settings of one ``jwt_bearer`` connection.

    Secrets are excluded from ``repr`` so that logging the object is harmless.

    The key: ``signer`` says where it lives. ``key_aliases`` names it for every signer (the
    keystore alias, the PKCS#11 key label, the KMS key id, ARN or alias), several during a key
    rotation (first usable one signs); ``key_ids`` are then the ``kid`` of each, in the same
    order, when the connection gives one per key. ``key_source`` (local signer only) is the key
    file or inline key; ``keystore_password`` is also the user PIN of a PKCS#11 token.
    """

    conn_id: str
    key_source: KeySource | None = None
    auth_url: str | None = None
    api_base_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    keystore_password: str | None = field(default=None, repr=False)
    key_aliases: tuple[str, ...] = ()
    key_password: str | None = field(default=None, repr=False)
    keystore_type: str | None = None
    signer: str = "local"
    pkcs11_module: str | None = None
    pkcs11_token_label: str | None = None
    pkcs11_key_id: str | None = None
    aws_conn_id: str | None = None
    certificate_file: str | None = None
    issuer: str | None = None
    subject: str | None = None
    audience: str | tuple[str, ...] | None = None
    lifetime: int = DEFAULT_LIFETIME
    claims: Mapping[str, Any] = field(default_factory=dict)
    scope: str | None = None
    algorithm: str | None = None
    key_id: str | None = None
    key_ids: tuple[str, ...] = ()
    x5t: bool = False
    nbf: bool = False
    client_auth: str = "none"
    auth_params: Mapping[str, str] = field(default_factory=dict)
    preset: Preset | None = None
    timeout: float = DEFAULT_TIMEOUT
    default_token_lifetime: int = DEFAULT_TOKEN_LIFETIME
    verify: bool | str = True
    proxies: Mapping[str, str] | None = field(default=None, repr=False)
    trusted_hosts: tuple[HostPattern, ...] = ()
    token_cache: TokenCacheSettings = field(default_factory=TokenCacheSettings)

    def trusted(self, base_url: str | None) -> TrustedHosts:
        """Where this connection's token may go, given the effective API base (Host or ``instance_url``)."""
        return TrustedHosts(self.conn_id, base_url, self.trusted_hosts)

    @property
    def http(self) -> HttpSettings:
        """The options every HTTP request of this connection uses."""
        return HttpSettings(timeout=self.timeout, verify=self.verify, proxies=self.proxies)

    @property
    def grant_type(self) -> str:
        """The grant used when no assertion is handed in: the preset's, else RFC 7523's."""
        return self.preset.grant_type if self.preset else JWT_BEARER_GRANT

    @property
    def scope_in_assertion(self) -> bool:
        """Google and DocuSign read the scope from a ``scope`` claim, not from the form."""
        return bool(self.preset and self.preset.scope_in_assertion)

    @classmethod
    def from_connection(cls, conn: ConnectionLike, *, check_preset: bool = True) -> JwtBearerSettings:
        """Validate ``conn`` and return its settings, or raise :class:`JwtBearerConfigError`.

        :param check_preset: apply the preset's rules; ``airflow jwt-bearer check`` reports
            them as a step of their own, after the settings themselves.
        """
        return _SettingsParser(conn, check_preset=check_preset).parse()


class _SettingsParser:
    """One-shot parser; keeps the connection id at hand for error messages."""

    def __init__(self, conn: ConnectionLike, *, check_preset: bool = True) -> None:
        self.conn = conn
        self.conn_id = conn.conn_id
        self.check_preset = check_preset
        raw = getattr(conn, "extra", None)
        if isinstance(raw, str) and raw.strip():
            # Parsed here rather than through extra_dejson, which logs a traceback and
            # returns {} for invalid JSON: the user would then see "auth_url is required".
            try:
                extra = json.loads(raw)
            except ValueError:
                raise self.error("extra", "is not valid JSON; fix the connection's Extra field") from None
        else:
            extra = conn.extra_dejson
        if not isinstance(extra, Mapping):
            raise self.error("extra", "must be a JSON object of the keys listed in the README")
        # Older Airflow forms prefixed extras with ``extra__<conn_type>__``; accept both spellings.
        self.extra: dict[str, Any] = {k.removeprefix(_FORM_PREFIX): v for k, v in extra.items() if not _is_unset(v)}
        #: What the connection itself sets (a preset's defaults are added to ``extra`` later).
        self.given = frozenset(self.extra)

    def error(self, field_name: str, problem: str) -> JwtBearerConfigError:
        end = "" if problem.endswith((".", "?")) else "."
        return JwtBearerConfigError(f"Connection {self.conn_id!r}: {field_name} {problem}{end}", field=field_name)

    def parse(self) -> JwtBearerSettings:
        self._refuse_unknown_keys()
        preset = self._preset()
        if preset is not None:
            for key, value in preset.defaults.items():
                self.extra.setdefault(key, value)
            if preset.auth_url_from_host and "auth_url" not in self.extra and self.conn.host:
                self.extra["auth_url"] = preset.auth_url_from_host(self._api_base_url() or "")

        client_id = _clean(self.conn.login)
        client_secret = _clean(self.conn.password)
        signer_fields = self._signer_group()
        key_source: KeySource | None = signer_fields["key_source"]
        keystore_password = self._str("keystore_password")
        key_password = self._str("key_password")
        for secret in (client_secret, keystore_password, key_password, key_source.inline if key_source else None):
            mask_stable_secret(secret)

        client_auth = self._choice("client_auth", CLIENT_AUTH_METHODS) or (
            "client_secret_post" if client_secret else "none"
        )
        if client_auth.startswith("client_secret") and not client_secret:
            raise self.error(
                "password",
                f"(the client secret) is empty, but client_auth is {client_auth!r}; "
                "enter the client secret in the Password field or set client_auth to 'none'",
            )
        if client_auth == "private_key_jwt" and not client_id:
            raise self.error("login", "(the client id) is required when client_auth is 'private_key_jwt'")

        settings = JwtBearerSettings(
            conn_id=self.conn_id,
            auth_url=self._url("auth_url"),
            api_base_url=self._api_base_url(),
            client_id=client_id,
            client_secret=client_secret,
            keystore_password=keystore_password,
            key_password=key_password,
            # a preset's keystore_type (Google's JSON key) means nothing to a device signer
            keystore_type=self._choice("keystore_type", KEYSTORE_TYPES, lower=True) if key_source else None,
            issuer=self._str("issuer"),
            subject=self._str("subject"),
            audience=self._audience(),
            lifetime=int(self._seconds("lifetime", DEFAULT_LIFETIME, maximum=MAX_LIFETIME, whole=True)),
            claims=self._claims(),
            scope=self._scope(),
            algorithm=self._choice("algorithm", SIGNING_ALGORITHMS),
            x5t=self._bool("x5t", False),
            nbf=self._bool("nbf", False),
            client_auth=client_auth,
            auth_params=self._string_map("auth_params"),
            preset=preset,
            timeout=self._seconds("timeout", DEFAULT_TIMEOUT, maximum=MAX_TIMEOUT),
            default_token_lifetime=int(
                self._seconds("default_token_lifetime", DEFAULT_TOKEN_LIFETIME, maximum=MAX_LIFETIME, whole=True)
            ),
            verify=self._verify(),
            proxies=self._proxies(),
            trusted_hosts=self._trusted_hosts(),
            **signer_fields,
            token_cache=self._token_cache(),
        )
        if settings.auth_url is None and settings.keystore_type != "google_json":
            raise self.error(
                "auth_url",
                "(the token endpoint URL) is required; set it in Extra, e.g. "
                '"auth_url": "https://login.example.com/oauth2/token", or choose a preset that fills it',
            )
        if not (settings.client_id or settings.issuer or settings.keystore_type == "google_json"):
            raise self.error(
                "login",
                "(the client id) is empty; enter it in the Login field (it is the assertion's issuer "
                "unless the issuer extra says otherwise)",
            )
        if preset is not None and self.check_preset:
            preset.check(settings, self.error)
        return settings

    # -- one method per kind of value -------------------------------------------------

    def _refuse_unknown_keys(self) -> None:
        unknown = sorted(set(self.extra) - set(EXTRA_KEYS))
        if not unknown:
            return
        key = unknown[0]
        close = difflib.get_close_matches(key, EXTRA_KEYS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; accepted keys: {', '.join(EXTRA_KEYS)}"
        raise self.error(f"extra key {key!r}", f"is not a jwt_bearer setting{hint}")

    def _preset(self) -> Preset | None:
        name = self._str("preset")
        if name is None:
            return None
        try:
            return get_preset(name)
        except KeyError as exc:
            raise self.error("preset", str(exc.args[0])) from None

    def _signer_group(self) -> dict[str, Any]:
        """The signer, and the settings that select and open its key (``JwtBearerSettings`` fields).

        Refuses, naming both, a setting that another signer reads; requires what the chosen
        signer needs. ``key_alias`` names the key for every signer and may list several (comma-
        separated or a JSON list) for a rotation; ``key_id`` may then list one ``kid`` per key.
        """
        signer = self._choice("signer", SIGNERS, lower=True) or "local"
        for key in sorted(self.given):
            owners = SIGNER_SETTINGS.get(key)
            if owners is not None and signer not in owners:
                named = " or ".join(repr(owner) for owner in owners)
                raise self.error(
                    key,
                    f"does not apply to signer {signer!r} (only signer {named} reads it); "
                    f"remove {key} or set signer to {named}",
                )
        aliases = self._name_list("key_alias")
        key_id, key_ids = self._key_ids(aliases)
        fields: dict[str, Any] = {
            "signer": signer,
            "key_aliases": aliases,
            "key_id": key_id,
            "key_ids": key_ids,
            "key_source": None,
            "certificate_file": self._str("certificate_file"),
        }
        if signer == "local":
            fields["key_source"] = self._key_source()
        elif signer == "pkcs11":
            fields["pkcs11_module"] = self._required(
                "pkcs11_module", "the path of the HSM vendor's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so"
            )
            fields["pkcs11_token_label"] = self._required(
                "pkcs11_token_label", "the label of the token holding the key"
            )
            fields["pkcs11_key_id"] = self._str("pkcs11_key_id")
            if self._str("keystore_password") is None:
                raise self.error(
                    "keystore_password",
                    "(the user PIN of the PKCS#11 token with signer 'pkcs11') is empty; enter the PIN there "
                    "(Airflow masks that field in logs, the UI and REST answers)",
                )
            if not aliases and fields["pkcs11_key_id"] is None:
                raise self.error(
                    "key_alias",
                    "(the PKCS#11 key label) is empty and so is pkcs11_key_id; set the label of the private key "
                    "in key_alias, or its CKA_ID in hex in pkcs11_key_id",
                )
            if len(aliases) > 1 and fields["pkcs11_key_id"] is not None:
                raise self.error(
                    "pkcs11_key_id",
                    f"selects one key, but key_alias lists {len(aliases)} labels for a rotation; "
                    "remove pkcs11_key_id or keep a single label",
                )
        else:
            if not aliases:
                raise self.error(
                    "key_alias",
                    "(the KMS key) is required with signer 'aws_kms': the key id, key ARN or alias name "
                    "(alias/...) of an asymmetric SIGN_VERIFY key",
                )
            fields["aws_conn_id"] = self._str("aws_conn_id") or DEFAULT_AWS_CONN_ID
        return fields

    def _required(self, key: str, what: str) -> str:
        value = self._str(key)
        if value is None:
            raise self.error(key, f"is required with signer {SIGNER_SETTINGS[key][0]!r}: {what}")
        return value

    def _name_list(self, key: str) -> tuple[str, ...]:
        """One name or several: comma-separated, or a JSON list of strings."""
        value = self._json_value(key)
        if value is None:
            return ()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, 'must be a name, several comma-separated, or a JSON list like ["new", "old"]')
        names = tuple(v.strip() for v in value if v.strip())
        if len(set(names)) != len(names):
            raise self.error(key, f"lists a key twice: {', '.join(names)}")
        return names

    def _key_ids(self, aliases: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
        """``key_id`` as one kid, or (a JSON list) one kid per ``key_alias`` entry."""
        value = self._json_value("key_id")
        if not isinstance(value, list):
            return self._str("key_id"), ()
        if not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.error("key_id", "must be one kid or a JSON list of kids (non-empty strings)")
        if len(value) != len(aliases):
            raise self.error(
                "key_id",
                f"lists {len(value)} kid(s) but key_alias lists {len(aliases)} key(s); give one kid per key, "
                "in the order of key_alias",
            )
        kids = tuple(v.strip() for v in value)
        return kids[0], kids

    def _key_source(self) -> KeySource:
        path = self._str("key_file")
        inline = self.extra.get("private_key")
        if inline is not None and not isinstance(inline, str):
            if isinstance(inline, Mapping):  # a service-account JSON pasted as an object
                inline = json.dumps(inline)
            else:
                raise self.error("private_key", "must be text: PEM, base64 keystore bytes or JSON")
        if path and inline:
            raise self.error("key_file", "and private_key are both set; keep only one key source")
        if not path and not inline:
            raise self.error(
                "key_file",
                "is not set and neither is private_key; give the path of the keystore or PEM key "
                "in key_file, or paste the key material into private_key",
            )
        return KeySource(path=path) if path else KeySource(inline=inline)

    def _api_base_url(self) -> str | None:
        host = _clean(self.conn.host)
        if host is None:
            return None
        if "://" not in host:  # like the http provider: Schema is the URL scheme, https by default
            schema = (_clean(self.conn.schema) or "https").lower()
            if schema not in ("http", "https"):
                raise self.error(
                    "schema",
                    f"is {schema!r} but must be http or https (the scheme of the API base URL); "
                    "or put the whole base URL, e.g. https://api.example.com/v2, in Host",
                )
            host = f"{schema}://{host}"
        if self.conn.port and ":" not in host.split("://", 1)[1].split("/", 1)[0]:
            scheme, rest = host.split("://", 1)
            authority, _, path = rest.partition("/")
            host = f"{scheme}://{authority}:{self.conn.port}" + (f"/{path}" if path else "")
        return host.rstrip("/")

    def _str(self, key: str) -> str | None:
        value = self.extra.get(key)
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, not {type(value).__name__}")
        return _clean(value)

    def _url(self, key: str) -> str | None:
        value = self._str(key)
        if value is not None and not value.startswith(("https://", "http://")):
            raise self.error(key, f"must be an absolute http(s) URL, got {value!r}")
        return value

    def _choice(self, key: str, allowed: tuple[str, ...], *, lower: bool = False) -> str | None:
        value = self._str(key)
        if value is None:
            return None
        by_folded = {a.lower(): a for a in allowed}
        chosen = by_folded.get(value.lower())
        if chosen is None:
            raise self.error(key, f"is {value!r}; use one of: {', '.join(allowed)}")
        return chosen.lower() if lower else chosen

    def _seconds(self, key: str, default: float, *, maximum: float, whole: bool = False) -> float:
        """A number of seconds: finite, above zero, at most ``maximum`` (URI strings converted).

        JSON allows ``1e400`` (infinity once parsed) and URI strings ``"inf"``/``"nan"``; such a
        value is refused here, by name, rather than crashing a request much later.
        """
        value = self.extra.get(key)
        if value is None:
            return default
        number = finite_seconds(value)
        kind = "a whole number of seconds" if whole else "a number of seconds"
        if number is None or (whole and number != int(number)):
            raise self.error(key, f"must be {kind}, got {value!r}")
        if not 0 < number <= maximum:
            raise self.error(key, f"must be above 0 and at most {maximum:g} seconds, got {value!r}")
        return number

    def _bool(self, key: str, default: bool) -> bool:
        value = self.extra.get(key)
        if value is None:
            return default
        parsed = _parse_bool(value)
        if parsed is None:
            raise self.error(key, f"must be true or false, got {value!r}")
        return parsed

    def _json_value(self, key: str) -> Any:
        value = self.extra.get(key)
        if isinstance(value, str) and value.strip()[:1] in ("{", "["):
            try:
                return json.loads(value)
            except ValueError:
                raise self.error(key, "is not valid JSON") from None
        return value

    def _object(self, key: str) -> dict[str, Any]:
        value = self._json_value(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(key, 'must be a JSON object, e.g. {"name": "value"}')
        return dict(value)

    def _string_map(self, key: str) -> dict[str, str]:
        value = self._object(key)
        for name, item in value.items():
            if not isinstance(item, (str, int, float)) or isinstance(item, bool):
                raise self.error(f"{key}.{name}", "must be a string or a number")
        return {name: str(item) for name, item in value.items()}

    def _claims(self) -> dict[str, Any]:
        claims = self._object("claims")
        try:
            canonical_claims(claims)  # reserved names and non-JSON values are refused, naming the claim
        except JwtBearerConfigError as exc:
            raise JwtBearerConfigError(f"Connection {self.conn_id!r}: {exc}", field=exc.field) from None
        return claims

    def _audience(self) -> str | tuple[str, ...] | None:
        value = self._json_value("audience")
        if value is None:
            return None
        if isinstance(value, str):
            return _clean(value)
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            return tuple(value) if len(value) > 1 else value[0]
        raise self.error("audience", "must be a string or a non-empty list of strings")

    def _scope(self) -> str | None:
        value = self._json_value("scope")
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise self.error("scope", "must be a string or a list of strings")
            return " ".join(value) or None
        return self._str("scope")

    def _verify(self) -> bool | str:
        value = self.extra.get("verify")
        if value is None:
            return True
        parsed = _parse_bool(value)
        if parsed is not None:
            return parsed
        if isinstance(value, str):
            return value  # a CA bundle path, as requests accepts
        raise self.error("verify", "must be true, false or the path of a CA bundle")

    def _trusted_hosts(self) -> tuple[HostPattern, ...]:
        value = self._json_value("trusted_hosts")
        if value is None:
            return ()
        if isinstance(value, str):
            value = value.replace(",", " ").split()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(
                "trusted_hosts", 'must be host names, comma-separated or a JSON list like ["files.example.com"]'
            )
        try:
            return parse_trusted_hosts(value)
        except ValueError as exc:
            raise self.error("trusted_hosts", f"entry {exc}") from None

    def _token_cache(self) -> TokenCacheSettings:
        """``token_cache*`` from the extras, else from the ``[jwt_bearer]`` configuration section.

        An extra wins over the configuration; an error names where the bad value came from
        (the connection's extra, or the configuration option and its environment variable).
        ``token_cache_wait`` and ``token_cache_io_timeout`` are deployment knobs: configuration only.
        """
        from airflow.sdk import conf

        def configured(key: str) -> str | None:
            value = conf.get(CONFIG_SECTION, key, fallback=None)
            return _clean(value) if isinstance(value, str) else None

        def where(key: str) -> str:
            return f"[{CONFIG_SECTION}] {key} (AIRFLOW__{CONFIG_SECTION.upper()}__{key.upper()})"

        def config_error(key: str, problem: str) -> JwtBearerConfigError:
            return JwtBearerConfigError(
                f"Connection {self.conn_id!r}: the Airflow configuration option {where(key)} {problem}", field=key
            )

        kind = self._choice("token_cache", TOKEN_CACHE_KINDS, lower=True)
        if kind is None:
            kind = configured("token_cache") or "memory"
            if kind.lower() not in TOKEN_CACHE_KINDS:
                raise config_error("token_cache", f"is {kind!r}; use one of: {', '.join(TOKEN_CACHE_KINDS)}")
            kind = kind.lower()
        conn_id = self._str("token_cache_conn_id") or configured("token_cache_conn_id") or DEFAULT_TOKEN_CACHE_CONN_ID
        directory = self._str("token_cache_dir") or configured("token_cache_dir")

        def seconds(key: str, default: float, maximum: float) -> float:
            raw = configured(key)
            if raw is None:
                return default
            number = finite_seconds(raw)
            if number is None or not 0 < number <= maximum:
                raise config_error(key, f"must be a number of seconds above 0 and at most {maximum:g}, got {raw!r}")
            return number

        return TokenCacheSettings(
            kind=kind,
            conn_id=conn_id,
            directory=directory,
            wait=seconds("token_cache_wait", DEFAULT_TOKEN_CACHE_WAIT, MAX_TOKEN_CACHE_WAIT),
            io_timeout=seconds("token_cache_io_timeout", DEFAULT_TOKEN_CACHE_IO_TIMEOUT, MAX_TOKEN_CACHE_IO_TIMEOUT),
        )

    def _proxies(self) -> dict[str, str] | None:
        value = self._json_value("proxies")
        if value is None:
            return None
        if isinstance(value, str):
            proxies = {"http": value, "https": value}
        elif isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values()):
            proxies = {str(k): v for k, v in value.items()}
        else:
            raise self.error("proxies", 'must be a proxy URL or an object like {"https": "http://proxy:3128"}')
        for url in proxies.values():
            try:
                password = urlsplit(url).password
            except ValueError:
                raise self.error(
                    "proxies", "holds a URL that cannot be parsed; use http://[user:password@]host:port"
                ) from None
            mask_stable_secret(url)
            mask_stable_secret(password and unquote(password))
        return proxies


def _is_unset(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _parse_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        folded = value.strip().lower()
        if folded in ("true", "1", "yes", "on"):
            return True
        if folded in ("false", "0", "no", "off"):
            return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    return None
