"""Aggregation-layer authentication: front-proxy (requestheader) client certificates and mTLS users.

The TLS layer verifies a client certificate against the union of the trusted
CAs; here we decide *which* CA issued it. ``X-Remote-*`` headers are believed only
when the peer certificate was issued by the requestheader CA and its CN is an
allowed name; from anyone else they are ignored, which is what stops spoofing.
A certificate issued by the client CA authenticates its CN as the user and its
O entries as groups, as kube-apiserver does. Pure: certificate bytes and headers in;
the one I/O call (:func:`read_cluster_auth`) reads the cluster's settings through a
client passed in. That ConfigMap's list-valued keys are JSON-encoded string arrays.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID


class AuthConfigError(ValueError):
    """A CA bundle or requestheader setting is unusable."""


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestHeaderConfig:
    ca_pem: bytes
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ("X-Remote-User",)
    group_headers: tuple[str, ...] = ("X-Remote-Group",)
    extra_prefixes: tuple[str, ...] = ("X-Remote-Extra-",)


def load_cas(pem: bytes) -> tuple[x509.Certificate, ...]:
    try:
        cas = tuple(x509.load_pem_x509_certificates(pem))
    except ValueError as exc:
        raise AuthConfigError(f"not a PEM certificate bundle: {exc}") from exc
    if not cas:
        raise AuthConfigError("empty CA bundle")
    return cas


def _issued_by(leaf: x509.Certificate, cas: Sequence[x509.Certificate]) -> bool:
    for ca in cas:
        try:
            leaf.verify_directly_issued_by(ca)
        except (InvalidSignature, ValueError, TypeError):
            continue
        return True
    return False


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


class Authenticator:
    """Authenticates a request from its peer certificate (DER, or None) and headers."""

    def __init__(self, *, requestheader: RequestHeaderConfig | None, client_ca_pem: bytes | None = None) -> None:
        self._rh = requestheader
        self._rh_cas = load_cas(requestheader.ca_pem) if requestheader else ()
        self._client_cas = load_cas(client_ca_pem) if client_ca_pem else ()
        # Which CA issued a certificate does not change: remember it per certificate (connections reuse one).
        self._issuers: dict[bytes, tuple[x509.Certificate, bool, bool]] = {}

    @property
    def trusted_pem(self) -> bytes:
        """Every CA a client certificate may chain to (for the TLS layer)."""
        return b"".join(ca.public_bytes(Encoding.PEM) for ca in (*self._rh_cas, *self._client_cas))

    def authenticate(self, peer_der: bytes | None, headers: Mapping[str, str] | None,
                     header_values: Mapping[str, Sequence[str]] | None = None) -> User | None:
        """The user, or None (401). ``header_values`` gives every value of repeated headers."""
        if peer_der is None:
            return None
        known = self._issuers.get(peer_der)
        if known is None:
            try:
                leaf = x509.load_der_x509_certificate(peer_der)
            except ValueError:
                return None
            known = (leaf, _issued_by(leaf, self._rh_cas), _issued_by(leaf, self._client_cas))
            if len(self._issuers) > 1024:
                self._issuers.clear()
            self._issuers[peer_der] = known
        leaf, by_proxy_ca, by_client_ca = known
        if self._rh is not None and by_proxy_ca:
            allowed = not self._rh.allowed_names or _common_name(leaf) in self._rh.allowed_names
            user = self._from_headers(headers or {}, header_values or {}) if allowed else None
            if user is not None:
                return user
        if by_client_ca:
            orgs = leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
            name = _common_name(leaf)
            return User(name, tuple(str(o.value) for o in orgs)) if name else None
        return None

    def _from_headers(self, headers: Mapping[str, str], values: Mapping[str, Sequence[str]]) -> User | None:
        assert self._rh is not None
        lower: dict[str, list[str]] = {}
        pairs = [(k, v) for k, vs in values.items() for v in vs] if values else list(headers.items())
        for key, value in pairs:  # names are case-insensitive: every spelling's values count, in order
            lower.setdefault(key.lower(), []).append(value)
        name = next((v for h in self._rh.username_headers for v in lower.get(h.lower(), ()) if v), "")
        if not name:
            return None
        groups = tuple(v for h in self._rh.group_headers for v in lower.get(h.lower(), ()))
        extra: dict[str, tuple[str, ...]] = {}
        for prefix in (p.lower() for p in self._rh.extra_prefixes):
            for key, vals in lower.items():
                if key.startswith(prefix) and len(key) > len(prefix):
                    extra[unquote(key[len(prefix):])] = tuple(vals)
        return User(name, groups, extra)


def remote_header_names(config: RequestHeaderConfig | None) -> tuple[str, ...]:
    """Header names (lower case) and prefixes to strip before anything downstream sees the request."""
    if config is None:
        return ("x-remote-user", "x-remote-group", "x-remote-extra-")
    return tuple(h.lower() for h in (*config.username_headers, *config.group_headers, *config.extra_prefixes))


# ---- settings published by kube-apiserver in kube-system/extension-apiserver-authentication ----
CONFIGMAP_NAMESPACE = "kube-system"
CONFIGMAP_NAME = "extension-apiserver-authentication"


@dataclass(frozen=True)
class ClusterAuth:
    requestheader: RequestHeaderConfig | None
    client_ca_pem: bytes | None


def _strings(data: Mapping[str, str], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = data.get(key)
    if raw is None or raw == "":
        return default
    try:
        values = json.loads(raw)
    except ValueError as exc:
        raise AuthConfigError(f"{key} in {CONFIGMAP_NAME} is not a JSON array: {raw[:80]!r}") from exc
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise AuthConfigError(f"{key} in {CONFIGMAP_NAME} is not a JSON array of strings")
    return tuple(values)


def from_configmap(data: Mapping[str, str]) -> ClusterAuth:
    """The cluster's requestheader and client CA settings from the ConfigMap's data (pure)."""
    ca = data.get("requestheader-client-ca-file", "")
    requestheader = None
    if ca:
        requestheader = RequestHeaderConfig(
            ca_pem=ca.encode(),
            allowed_names=_strings(data, "requestheader-allowed-names", ()),
            username_headers=_strings(data, "requestheader-username-headers", ("X-Remote-User",)),
            group_headers=_strings(data, "requestheader-group-headers", ("X-Remote-Group",)),
            extra_prefixes=_strings(data, "requestheader-extra-headers-prefix", ("X-Remote-Extra-",)))
    client_ca = data.get("client-ca-file", "")
    return ClusterAuth(requestheader, client_ca.encode() if client_ca else None)


def read_cluster_auth(core_api: Any, timeout: float = 10.0) -> ClusterAuth:
    try:
        cm = core_api.read_namespaced_config_map(CONFIGMAP_NAME, CONFIGMAP_NAMESPACE,
                                                 _request_timeout=(timeout, timeout))
    except Exception as exc:  # ApiException (403 without the auth-reader RoleBinding), transport errors
        raise AuthConfigError(
            f"cannot read {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME} (needs the extension-apiserver-authentication-reader "
            f"Role): {exc}") from exc
    return from_configmap(cm.data or {})
