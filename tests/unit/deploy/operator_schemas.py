"""The fields the chart may set on the two operators' resources, and nothing else beside them.

Istio's and the Prometheus operator's resources are checked against their published models
(cloudcoil-models-* on PyPI), which also catch a misspelt field. Strimzi's and CloudNativePG's are
checked twice: by those operators' own models, generated from their CRDs (npm's
@kubernetes-models/strimzi-kafka-operator and /cloudnative-pg, run by operator_models/validate.mjs),
for types, bounds and required fields; and by these schemas, written from the operators' API
references (strimzi.io/docs/operators/latest/configuring#type-KafkaTopic-reference,
cloudnative-pg.io/documentation/current/cloudnative-pg.v1/#postgresql-cnpg-io-v1-Cluster), which
allow only the fields the chart uses, so a misspelt one (which the API server would silently prune)
fails here.
"""

from __future__ import annotations

from typing import Any

_METADATA: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

KAFKA_TOPIC: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"enum": ["kafka.strimzi.io/v1beta2", "kafka.strimzi.io/v1"]},
        "kind": {"const": "KafkaTopic"},
        "metadata": {
            **_METADATA,
            "properties": {
                **_METADATA["properties"],
                "labels": {
                    "type": "object",
                    "required": ["strimzi.io/cluster"],
                    "additionalProperties": {"type": "string"},
                },
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "topicName": {"type": "string", "pattern": r"^[a-zA-Z0-9._-]{1,249}$"},
                "partitions": {"type": "integer", "minimum": 1},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
                "config": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "integer", "boolean"]},
                },
            },
        },
    },
}

CNPG_CLUSTER: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "postgresql.cnpg.io/v1"},
        "kind": {"const": "Cluster"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["instances", "storage"],
            "additionalProperties": False,
            "properties": {
                "instances": {"type": "integer", "minimum": 1},
                "imageName": {"type": "string"},
                "enableSuperuserAccess": {"type": "boolean"},
                "storage": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"size": {"type": "string"}, "storageClass": {"type": "string"}},
                },
                "postgresql": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "parameters": {"type": "object", "additionalProperties": {"type": "string"}}
                    },
                },
                "monitoring": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"enablePodMonitor": {"type": "boolean"}},
                },
            },
        },
    },
}
