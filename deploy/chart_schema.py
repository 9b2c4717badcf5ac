"""The chart's values.schema.json: the deployment settings, with the policy's own schema embedded.

Helm validates values against it before rendering, so a typo (unknown key), a wrong type or a
bad number fails ``helm install`` with the key's path. Sections that hold Kubernetes objects
(resources, tolerations, affinity, ...) are left to the API server; kvscale's own keys are closed.
"""

from __future__ import annotations

from typing import Any

from exporter.contract.policy import json_schema


def _obj(properties: dict[str, Any], *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


_BOOL = {"type": "boolean"}
_STR = {"type": "string"}
_MAP = {"type": "object"}
_LIST = {"type": "array"}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
_POSITIVE = {"type": "number", "exclusiveMinimum": 0}
_DURATION = {"type": "string", "pattern": r"^([0-9]+(ms|s|m|h))+$"}
_LOG = {"type": "string", "enum": ["debug", "info", "warning", "error"]}
_REPLICAS = {"type": "integer", "minimum": 1}
_TOLERANCE = {"type": ["number", "null"], "minimum": 0, "maximum": 1}


def _scrape() -> dict[str, Any]:
    return _obj({"enabled": _BOOL, "interval": _DURATION, "scrapeTimeout": _DURATION, "labels": _LABELS})


def _pod_settings() -> dict[str, Any]:
    return {"nodeSelector": _LABELS, "tolerations": _LIST, "affinity": _MAP, "priorityClassName": _STR,
            "extraEnv": _LIST, "resources": _MAP, "podAnnotations": _LABELS, "logLevel": _LOG, "port": _PORT,
            "enabled": _BOOL}


def _exporter() -> dict[str, Any]:
    return _obj({
        **_pod_settings(),
        "runtimeClassName": _STR, "nvidiaVisibleDevices": _STR,
        "nvml": {"type": "string", "enum": ["auto", "on", "off"]},
        "podResources": _obj({"enabled": _BOOL, "hostPath": {"type": "string", "pattern": "^/"}}),
        "podSelector": {"type": "string", "minLength": 1}, "podPort": _PORT,
        "interval": _POSITIVE, "window": _POSITIVE,
        "gpuPricePerHour": {"type": "number", "minimum": 0},
        "updateStrategy": _MAP,
    })


def _adapter() -> dict[str, Any]:
    return _obj({
        **_pod_settings(),
        "replicas": _REPLICAS,
        "source": {"type": "string", "enum": ["direct", "prometheus"]},
        "prometheusUrl": {"type": "string", "pattern": "^https?://"},
        "refreshInterval": _POSITIVE,
        "authorizationMode": {"type": "string", "enum": ["delegated", "none"]},
        "topologySpreadConstraints": _LIST,
        "pdb": _obj({"enabled": _BOOL, "minAvailable": {"type": ["integer", "string"]}}),
        "apiService": _obj({
            "versions": {"type": "array", "minItems": 1, "uniqueItems": True,
                         "items": {"type": "string", "enum": ["v1beta1", "v1beta2"]}},
            "groupPriorityMinimum": {"type": "integer", "minimum": 1, "maximum": 20000},
            "insecureSkipTLSVerify": _BOOL}),
        "certManager": _obj({"enabled": _BOOL, "issuerRef": _MAP, "duration": _DURATION,
                             "renewBefore": _DURATION}),
        "generatedCert": _obj({"validityDays": {"type": "integer", "minimum": 1}}),
        "serviceMonitor": _obj({"enabled": _BOOL}),
    })


def _autoscaling() -> dict[str, Any]:
    return _obj({
        "mode": {"type": "string", "enum": ["none", "hpa", "keda"]},
        "target": _obj({"name": _STR, "namespace": _STR}),
        "minReplicas": _REPLICAS, "maxReplicas": _REPLICAS,
        "metrics": _obj({"queue": _BOOL, "ttft": _BOOL, "kvCache": _BOOL}),
        "ttftQuantile": {"type": "string", "pattern": r"^0\.[0-9]+$"},
        "scaleUp": _obj({"stabilizationWindowSeconds": {"type": "integer", "minimum": 0, "maximum": 3600},
                         "tolerance": _TOLERANCE}),
        "scaleDown": _obj({"tolerance": _TOLERANCE}),
        "keda": _obj({"prometheusUrl": {"type": "string", "pattern": "^https?://"},
                      "pollingInterval": {"type": "integer", "minimum": 1},
                      "cooldownPeriod": {"type": "integer", "minimum": 0}}),
    })


def _keda() -> dict[str, Any]:
    """KEDA's external scaler served by the adapter (its own gRPC port)."""
    return _obj({
        "enabled": _BOOL, "port": _PORT, "servicePort": _PORT,
        "allowedNames": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
        "clientCASecret": _obj({"name": _STR, "key": {"type": "string", "minLength": 1}}),
        "activationSources": {"type": "object", "additionalProperties": {"type": "string", "pattern": "^https?://"},
                              "propertyNames": {"pattern": "^[A-Za-z0-9][-A-Za-z0-9_.]*$",
                                                "not": {"const": "prometheus"}}},
        "operatorNamespaceSelector": _MAP,
    })


def values_schema(required_strings: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The whole values.schema.json; ``required_strings`` are policy strings the generators need non-empty."""
    policy = json_schema()
    policy.pop("$schema", None)
    for name in required_strings:
        policy["properties"][name]["minLength"] = 1
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "kvscale chart values",
        **_obj({
            "policy": policy,
            "image": _obj({"repository": {"type": "string", "minLength": 1}, "tag": _STR, "digest": _STR,
                           "pullPolicy": {"type": "string", "enum": ["Always", "IfNotPresent", "Never"]}}),
            "imagePullSecrets": _LIST, "nameOverride": _STR, "fullnameOverride": _STR, "commonLabels": _LABELS,
            "exporter": _exporter(), "adapter": _adapter(),
            "serviceAccount": _obj({"annotations": _LABELS}), "rbac": _obj({"create": _BOOL}),
            "dra": _obj({"enabled": _BOOL}), "monitoringLabels": _LABELS,
            "serviceMonitor": _scrape(), "podMonitor": _scrape(),
            "prometheusRule": _obj({"enabled": _BOOL, "labels": _LABELS,
                                    "disabled": {"type": "object", "additionalProperties": _BOOL}}),
            "dashboards": _obj({"enabled": _BOOL, "label": {"type": "string", "minLength": 1}, "labelValue": _STR,
                                "folderAnnotation": {"type": "string", "minLength": 1}, "folder": _STR,
                                "namespace": _STR}),
            "networkPolicy": _obj({"enabled": _BOOL, "apiServerCIDRs": {"type": "array", "items": _STR},
                                   "prometheus": _obj({"namespaceSelector": _MAP, "podSelector": _MAP})}),
            "autoscaling": _autoscaling(),
            "keda": _keda(),
        }),
    }
