"""A small kustomize in Python: the subset deploy/k8s uses, for machines without the binary.

Supported kustomization fields: ``resources`` (files, and directories holding a
kustomization), ``namespace``, ``labels`` (metadata labels; ``includeSelectors`` and
``includeTemplates`` false), ``patches`` (JSON 6902 ops, inline or from a file, with a
``target`` of kind / name regex / group / version / namespace), ``replicas``, ``images`` and
``replacements`` (inline; a source's dotted ``fieldPath``; targets selected by kind and name,
``fieldPaths`` with ``*`` for every item, ``options`` ``delimiter`` and ``index``). Resources
annotated ``config.kubernetes.io/local-config: "true"`` are dropped from the final output, as
kustomize does. Anything else raises, so the renderer never silently ignores a feature the
manifests start to use. Transformers run in kustomize's order (patches, namespace, labels,
replicas, images, replacements), each kustomization's on its own resources and those of its
bases. test_k8s.py compares the output
with ``kubectl kustomize`` wherever that binary exists.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "labels", "patches", "replicas",
             "images", "replacements"}
LOCAL_CONFIG = "config.kubernetes.io/local-config"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass",
                  "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"}
SCALABLE = {"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"}


class Unsupported(Exception):
    """The kustomization uses something this renderer does not implement."""


def build(directory: Path) -> list[Resource]:
    """The resources ``directory``'s kustomization renders, in the order they were loaded."""
    return [r for r in _build(directory)
            if (r["metadata"].get("annotations") or {}).get(LOCAL_CONFIG) != "true"]


def _build(directory: Path) -> list[Resource]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise Unsupported(f"{directory}: kustomization fields {sorted(unknown)}")
    resources = [r for entry in kustomization.get("resources", [])
                 for r in _load((directory / entry).resolve())]
    for patch in kustomization.get("patches", []):
        _patch(resources, patch, directory)
    _set_namespace(resources, kustomization.get("namespace"))
    for entry in kustomization.get("labels", []):
        _add_labels(resources, entry)
    for entry in kustomization.get("replicas", []):
        _set_replicas(resources, entry)
    for entry in kustomization.get("images", []):
        for resource in resources:
            _set_image(resource, entry)
    for entry in kustomization.get("replacements", []):
        _replace(resources, entry)
    return resources


def _load(path: Path) -> list[Resource]:
    if path.is_dir():
        return _build(path)
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _set_namespace(resources: list[Resource], namespace: str | None) -> None:
    if not namespace:
        return
    for resource in resources:
        if resource["kind"] not in CLUSTER_SCOPED:
            resource["metadata"]["namespace"] = namespace


def _add_labels(resources: list[Resource], entry: dict[str, Any]) -> None:
    if entry.get("includeSelectors") or entry.get("includeTemplates"):
        raise Unsupported("labels with includeSelectors or includeTemplates")
    for resource in resources:
        resource["metadata"].setdefault("labels", {}).update(entry["pairs"])


def _set_replicas(resources: list[Resource], entry: dict[str, Any]) -> None:
    for resource in resources:
        if resource["kind"] in SCALABLE and resource["metadata"]["name"] == entry["name"]:
            resource["spec"]["replicas"] = entry["count"]


def _matches(resource: Resource, target: dict[str, str]) -> bool:
    unknown = set(target) - {"group", "version", "kind", "name", "namespace"}
    if unknown:
        raise Unsupported(f"patch target fields {sorted(unknown)}")
    group, _, version = resource["apiVersion"].rpartition("/")
    actual = {"group": group, "version": version, "kind": resource["kind"],
              "name": resource["metadata"]["name"],
              "namespace": resource["metadata"].get("namespace", "")}
    return all(re.fullmatch(pattern, actual[field]) for field, pattern in target.items())


def _patch(resources: list[Resource], patch: dict[str, Any], directory: Path) -> None:
    text = patch["patch"] if "patch" in patch else (directory / patch["path"]).read_text()
    ops = yaml.safe_load(text)
    if not isinstance(ops, list):
        raise Unsupported("strategic-merge patches (only JSON 6902 lists are implemented)")
    hits = [r for r in resources if _matches(r, patch["target"])]
    if not hits:
        raise ValueError(f"patch target {patch['target']} matches no resource")
    for resource in hits:
        for op in ops:
            _apply(resource, op)


def _pointer(path: str) -> list[str]:
    return [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]


def _apply(document: Resource, op: dict[str, Any]) -> None:
    *parents, last = _pointer(op["path"])
    node: Any = document
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    kind = op["op"]
    if kind not in ("add", "replace", "remove"):
        raise Unsupported(f"JSON patch op {kind}")
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if kind == "add":
            node.insert(index, copy.deepcopy(op["value"]))
        elif kind == "replace":
            node[index] = copy.deepcopy(op["value"])
        else:
            del node[index]
        return
    if kind in ("replace", "remove") and last not in node:
        raise KeyError(f"{op['path']}: nothing to {kind}")
    if kind == "remove":
        del node[last]
    else:
        node[last] = copy.deepcopy(op["value"])


def _selected(resources: list[Resource], select: dict[str, str]) -> list[Resource]:
    if set(select) - {"kind", "name"}:
        raise Unsupported(f"replacement selector fields {sorted(select)}")
    return [r for r in resources if r["kind"] == select.get("kind", r["kind"])
            and r["metadata"]["name"] == select.get("name", r["metadata"]["name"])]


def _replace(resources: list[Resource], entry: dict[str, Any]) -> None:
    if set(entry) != {"source", "targets"}:
        raise Unsupported(f"replacement fields {sorted(entry)}")
    source = entry["source"]
    (origin,) = _selected(resources, {k: v for k, v in source.items() if k != "fieldPath"})
    value: Any = origin
    for part in source["fieldPath"].split("."):
        value = value[part]
    for target in entry["targets"]:
        if set(target) - {"select", "fieldPaths", "options"}:
            raise Unsupported(f"replacement target fields {sorted(target)}")
        options = target.get("options", {})
        if set(options) - {"delimiter", "index"}:
            raise Unsupported(f"replacement options {sorted(options)}")
        for resource in _selected(resources, target["select"]):
            for path in target["fieldPaths"]:
                _put(resource, path.split("."), value, options)


def _put(node: Any, parts: list[str], value: Any, options: dict[str, Any]) -> None:
    """Set the field at ``parts`` (``*``: every item) to ``value``, or, with a delimiter, the
    ``index``-th piece of the string there."""
    head, *rest = parts
    children: list[Any] = (list(range(len(node))) if isinstance(node, list) else list(node)) \
        if head == "*" else [int(head) if isinstance(node, list) else head]
    for key in children:
        if not rest:
            if "delimiter" in options:
                pieces = str(node[key]).split(options["delimiter"])
                pieces[options.get("index", 0)] = str(value)
                node[key] = options["delimiter"].join(pieces)
            else:
                node[key] = value
        elif isinstance(node, list) or key in node:
            _put(node[key], rest, value, options)
        else:
            raise KeyError(f"replacement target {'.'.join(parts)}: no {key}")


def _containers(resource: Resource) -> list[dict[str, Any]]:
    spec = resource.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or spec
    return [*pod.get("containers", []), *pod.get("initContainers", [])]


def _set_image(resource: Resource, entry: dict[str, str]) -> None:
    for container in _containers(resource):
        image = container.get("image", "")
        parts = re.match(r"^(.*?)(?::([^:/@]+))?(?:@.*)?$", image)
        assert parts is not None  # every part is optional: any text matches
        name, tag = parts.groups()
        if name != entry["name"]:
            continue
        name = entry.get("newName", name)
        tag = entry.get("newTag", tag)
        container["image"] = f"{name}@{entry['digest']}" if "digest" in entry else (
            f"{name}:{tag}" if tag else name)
