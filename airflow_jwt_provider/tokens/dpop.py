"""DPoP on the wire (RFC 9449): which key binds a connection's tokens, proofs per request, server nonces.

* :class:`DPoPBinding`: the connection's choice of key. ``generated``: one key per connection and
  process, kept for every token this process fetches (a renewal keeps the binding and the server's
  nonce), and stored with the token, sealed, in a shared cache, so every process served that token
  proves with the key it is bound to. ``signer``: the connection's own signing key, which every
  process has already (an HSM or KMS key then signs every API call).
* :data:`NONCES`: the last nonce each server (origin) gave, sent in the next proofs to it (§8, §9),
  taken from every answer that carries one (a 200 may rotate it).
* :func:`request_headers`: ``Authorization`` (and ``DPoP``) for an API call with a token.
* :func:`nonce_challenge`: an answer asking to retry with the nonce it gave (``use_dpop_nonce``: a
  400 from the token endpoint, a 401 ``WWW-Authenticate: DPoP`` from an API). A caller retries once.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from airflow_jwt_provider.common.process_cache import ProcessCache
from airflow_jwt_provider.connection.kinds import DPoPKeySource
from airflow_jwt_provider.connection.settings import DPoPSettings
from airflow_jwt_provider.signing.dpop import DPoPKey
from airflow_jwt_provider.signing.signers.base import Signer
from airflow_jwt_provider.tokens.access_token import AccessToken

NONCE_HEADER = "DPoP-Nonce"
#: Servers whose nonce a process remembers (one per origin; the least recently used is forgotten).
MAX_SERVERS = 256
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CHALLENGE = re.compile(
    r"""([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)((?:\s*,?\s*[A-Za-z0-9_-]+\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^\s,]+))*)"""
)
_PARAMETER = re.compile(r"""([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]+)""")
#: Generated keys, per connection and algorithm, for this process (bounded like the other process caches).
_GENERATED: ProcessCache[DPoPKey] = ProcessCache(max_entries=64)


def htu_of(url: str) -> str:
    """RFC 9449 §4.2 ``htu``: the target URI without query, fragment and user info, normalized (RFC 3986 §6.2.2-3)."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def origin_of(url: str) -> str:
    parts = urlsplit(htu_of(url))
    return f"{parts.scheme}://{parts.netloc}"


class NonceStore:
    """The last ``DPoP-Nonce`` of each server: nonces are per server (§9), opaque, and replaced at any answer."""

    def __init__(self, max_servers: int = MAX_SERVERS) -> None:
        self.max_servers = max_servers
        self._nonces: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str) -> str | None:
        with self._lock:
            return self._nonces.get(origin_of(url))

    def remember(self, url: str, headers: Mapping[str, str]) -> str | None:
        """Keep the nonce ``headers`` carry for ``url``'s server; the nonce, if any."""
        nonce = headers.get(NONCE_HEADER)
        if not nonce:
            return None
        origin = origin_of(url)
        with self._lock:
            self._nonces[origin] = nonce
            self._nonces.move_to_end(origin)
            while len(self._nonces) > self.max_servers:
                self._nonces.popitem(last=False)
        return nonce

    def clear(self) -> None:
        with self._lock:
            self._nonces.clear()


NONCES = NonceStore()


def proof(key: DPoPKey, method: str, url: str, access_token: str | None = None) -> str:
    """A proof for one request to ``url``, with the nonce its server gave last (if any)."""
    return key.proof(method, htu_of(url), access_token=access_token, nonce=NONCES.get(url))


def challenges(header: str | None) -> dict[str, dict[str, str]]:
    """``WWW-Authenticate`` as ``{scheme (lower case): {parameter: value}}`` (several challenges in one header)."""
    found: dict[str, dict[str, str]] = {}
    for match in _CHALLENGE.finditer(header or ""):
        parameters = {name.lower(): value.strip('"') for name, value in _PARAMETER.findall(match.group(2))}
        found.setdefault(match.group(1).lower(), parameters)
    return found


def nonce_challenge(status: int, headers: Mapping[str, str], body: object = None) -> bool:
    """Whether an answer asks for a retry with the nonce it carries (``use_dpop_nonce``, RFC 9449 §8, §9)."""
    if not headers.get(NONCE_HEADER):
        return False
    if status == 400:
        return isinstance(body, Mapping) and body.get("error") == "use_dpop_nonce"
    if status == 401:
        return challenges(headers.get("WWW-Authenticate")).get("dpop", {}).get("error") == "use_dpop_nonce"
    return False


def request_headers(token: AccessToken, method: str, url: str) -> dict[str, str]:
    """``Authorization`` for an API call with ``token``; for a DPoP-bound token also its ``DPoP`` proof (``ath``)."""
    authorization = token.authorization_header  # refuses a token that is not an access token
    if token.dpop_key is None:
        return {"Authorization": authorization}
    return {"Authorization": authorization, "DPoP": proof(token.dpop_key, method, url, token.access_token)}


class DPoPBinding:
    """Which key a connection's DPoP-bound tokens are bound to (see the module docstring).

    :param conn_id: names the generated key of this process (one per connection and algorithm).
    :param signer: the connection's signer (``dpop_key: signer``).
    """

    def __init__(self, settings: DPoPSettings, conn_id: str, signer: Signer | None) -> None:
        self.settings = settings
        self.conn_id = conn_id
        self._signer_key: DPoPKey | None = None
        if settings.key is DPoPKeySource.SIGNER:
            if signer is None:
                raise ValueError("dpop_key signer needs the connection's signer")
            self._signer_key = DPoPKey(signer)

    def __repr__(self) -> str:
        return f"DPoPBinding(key={self.settings.key.value!r}, algorithm={self.algorithm!r})"

    @property
    def algorithm(self) -> str:
        return self._signer_key.algorithm if self._signer_key else self.settings.algorithm

    def key(self) -> DPoPKey:
        """The key the next token request binds to."""
        if self._signer_key is not None:
            return self._signer_key
        algorithm = self.settings.algorithm
        return _GENERATED.get_or_load(f"{self.conn_id}\x00{algorithm}", lambda: DPoPKey.generate(algorithm))

    def cache_tag(self) -> str:
        """What the token cache key says about the binding (tokens bound otherwise are other tokens)."""
        if self._signer_key is not None:
            return f"dpop:signer:{self._signer_key.jkt}"
        return f"dpop:generated:{self.settings.algorithm}"

    def bind(self, token: AccessToken) -> AccessToken:
        """A DPoP token from a cache that holds no key for it (``signer`` keys are not stored): with the signer's."""
        if token.dpop_bound and token.dpop_key is None and self._signer_key is not None:
            return token.with_dpop_key(self._signer_key)
        return token
