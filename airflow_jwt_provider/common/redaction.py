"""Keep per-call credentials (assertions, access tokens) out of logs and error texts at a constant cost.

Airflow's secret masker is built for stable secrets: every registered value is kept for the
life of the process and one regular expression over all of them is recompiled at each
addition and run on every log line. Registering each minted assertion or fetched token would
make a triggerer or a long task slower and larger with every token, without bound. So the
provider splits its secrets in two:

* **Stable secrets** (client secret, keystore and key passwords, inline key material, proxy
  passwords) are registered with Airflow's masker, once per distinct value per process
  (:func:`mask_stable_secret`).
* **Per-call credentials** (assertions, access tokens, handed-in assertions) are never
  registered. The provider never logs them, never puts them in ``repr``/``str``, and strips
  them from every text it builds from a server's answer (:func:`redact_text` with the values
  it knows it sent). As a second line, :func:`install_log_redaction` adds one processor to
  the process's logging (once) that blanks, in every log line, whatever *looks* like a
  credential — a JWT, the credential after ``Bearer``/``Basic``/``DPoP``, the value of an
  ``access_token``/``assertion``/``client_secret``… field — and the access tokens this
  process currently holds (a bounded set, :data:`LIVE_TOKENS`, checked by set lookup, so its
  cost does not grow with the number of tokens ever issued).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, MutableMapping
from typing import Any

REPLACEMENT = "***"

#: A JWS/JWT in compact form: ``eyJ`` is the base64url of ``{"``.
JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)?")
#: The credential after an HTTP authentication scheme (``Authorization: Bearer <credential>``): at least
#: 8 characters, not all lower-case letters (so ``bearer tokens`` or ``basic authentication`` stay).
AUTH_SCHEME_RE = re.compile(
    r"(?i:\b(bearer|basic|dpop))(\s+)(?=[A-Za-z0-9\-._~+/!]*[A-Z0-9\-._~+/!])[A-Za-z0-9\-._~+/!]{8,}=*"
)
_CREDENTIAL_NAMES = r"access_token|refresh_token|id_token|assertion|client_assertion|client_secret|subject_token"
#: The value of a field that holds a credential: JSON (``"access_token": "…"``) or a form / query
#: string (``assertion=…``); prose such as "the assertion: it expired" is left alone.
#: The credential after ``token`` or ``mac`` (``Authorization: token <hex>``), which are also plain words:
#: only a run with a digit counts, so that "Token endpoint … answered" stays readable.
WORD_SCHEME_RE = re.compile(r"(?i)\b(token|mac)(\s+)(?=[A-Za-z\-._~+/!]*[0-9])[A-Za-z0-9\-._~+/!]{6,}=*")
CREDENTIAL_FIELD_RE = re.compile(
    rf"""(?i)((?:["'](?:{_CREDENTIAL_NAMES})["']\s*:\s*["']?)|(?:\b(?:{_CREDENTIAL_NAMES})=))[^"'&\s,;}}]+"""
)
#: Runs of characters an opaque token is made of (RFC 6750 b64token, plus ``!`` for Salesforce).
_MIN_TOKEN_LENGTH = 16
_CANDIDATE_RE = re.compile(r"[A-Za-z0-9\-._~+/!]{16,}=*")

_MIN_LINE_LENGTH = 16
_MIN_MASKABLE = 5


class LiveTokens:
    """The access tokens this process holds now: a bounded, least-recently-added set.

    Log redaction looks each token-shaped run of characters up in it (a set lookup), so a
    token printed bare by user code is blanked while it is live, and the set never holds more
    than ``max_entries`` values however many tokens the process fetches in its life.
    """

    def __init__(self, max_entries: int = 1024) -> None:
        self._values: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def add(self, value: str) -> None:
        if len(value) < _MIN_TOKEN_LENGTH:
            return  # too short to be told apart from ordinary words (and no real token is that short)
        value = value.rstrip("=")  # looked up without base64 padding, however it is printed
        with self._lock:
            self._values[value] = None
            self._values.move_to_end(value)
            while len(self._values) > self.max_entries:
                self._values.popitem(last=False)

    def discard(self, value: str) -> None:
        with self._lock:
            self._values.pop(value.rstrip("="), None)

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and value.rstrip("=") in self._values

    def __len__(self) -> int:
        return len(self._values)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


#: The process's live access tokens (fed by the token cache).
LIVE_TOKENS = LiveTokens()


def redact_text(text: str, known: Iterable[str | None] = ()) -> str:
    """``text`` without credentials: the ``known`` values, live tokens, and anything credential-shaped.

    :param known: values the caller knows to be secret here (the token or assertion it just
        sent, the client secret); blanked wherever they appear, even inside other words.
    """
    for value in known:
        if value and len(value) >= _MIN_MASKABLE:
            text = text.replace(value, REPLACEMENT)
    text = JWT_RE.sub(REPLACEMENT, text)
    text = AUTH_SCHEME_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REPLACEMENT}", text)
    text = WORD_SCHEME_RE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REPLACEMENT}", text)
    text = CREDENTIAL_FIELD_RE.sub(lambda m: f"{m.group(1)}{REPLACEMENT}", text)
    if len(LIVE_TOKENS):
        text = _CANDIDATE_RE.sub(_blank_if_live, text)
    return text


def _blank_if_live(match: re.Match[str]) -> str:
    run = match.group(0)
    return REPLACEMENT if run in LIVE_TOKENS else run


# --------------------------------------------------------------------------- stable secrets

_registered: set[str] = set()
_registered_lock = threading.Lock()


def mask_stable_secret(value: str | None) -> None:
    """Register a stable secret with Airflow's masker, once per distinct value per process.

    No-op for ``None``, empty and very short values (Airflow refuses those). A multi-line value
    (PEM text) is also registered line by line, since Airflow masks a multi-line value only as
    a whole and a traceback may quote a single line.
    """
    if not value or len(value) < _MIN_MASKABLE:
        return
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    with _registered_lock:
        if digest in _registered:
            return
        _registered.add(digest)
    from airflow.sdk.log import mask_secret

    mask_secret(value)
    if "\n" in value:
        for line in value.splitlines():
            line = line.strip()
            if len(line) >= _MIN_LINE_LENGTH and not line.startswith("-----"):
                mask_secret(line)


# --------------------------------------------------------------------------- logging


_PLAIN = (int, float, bool, type(None))


def _redact_value(value: Any) -> Any:
    """A log value without credentials: strings redacted; other objects too, through their ``repr``.

    Renderers show an object by its ``repr`` (a message model, a dict of headers...), so a
    credential inside one is found there; the value is replaced by the redacted ``repr`` only
    when redaction changed it, and left as it is otherwise.
    """
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, _PLAIN):
        return value
    try:
        shown = repr(value)
    except Exception:  # a broken __repr__ is the renderer's problem, not a reason to lose the line
        return value
    redacted = redact_text(shown)
    return redacted if redacted != shown else value


def redact_log_event(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: every value of the event without credentials (see :func:`_redact_value`)."""
    for key, value in event_dict.items():
        event_dict[key] = _redact_value(value)
    return event_dict


class RedactingFilter(logging.Filter):
    """stdlib logging filter doing what :func:`redact_log_event` does, for handlers not fed by structlog."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_value(a) for a in record.args)
        return True


_FILTER = RedactingFilter()
_install_lock = threading.Lock()


def install_log_redaction() -> None:
    """Add the credential redaction to this process's logging, once; cheap to call again.

    structlog (Airflow 3's logging) keeps one processor chain, ending with the renderer: the
    processor goes just before it, so it sees every event of every logger, stdlib records
    included once they join the chain (the root handlers' ``ProcessorFormatter`` pre-chain
    gets it too). Handlers that are not structlog's get a :class:`RedactingFilter`. When
    Airflow configures logging again (a new task in the same process), the next call puts
    the processor back.
    """
    with _install_lock:
        _install_structlog()
        for handler in logging.getLogger().handlers:
            formatter = handler.formatter
            chain = getattr(formatter, "foreign_pre_chain", None)
            if isinstance(chain, list):
                if redact_log_event not in chain:
                    chain.append(redact_log_event)
            elif _FILTER not in handler.filters:
                handler.addFilter(_FILTER)


def _install_structlog() -> None:
    try:
        import structlog
    except ImportError:  # pragma: no cover - Airflow 3 always has it
        return
    processors = structlog.get_config().get("processors")
    if isinstance(processors, list) and processors and redact_log_event not in processors:
        processors.insert(len(processors) - 1, redact_log_event)
