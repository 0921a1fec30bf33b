"""Checks an answer of st2bridge-api against its OpenAPI document: the
operation must document the status, and the body must match its schema
(JSON Schema 2020-12, the dialect of OpenAPI 3.1)."""

import re

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from st2bridge.api.openapi import document

DOC = document()
_REGISTRY = Registry().with_resource("urn:st2bridge-api", Resource(DOC, DRAFT202012))
_TEMPLATES = [
    (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path) for path in DOC["paths"]
]


def operation(method, path):
    for pattern, template in sorted(_TEMPLATES, key=lambda t: "{" in t[1]):
        if pattern.match(path):
            return template, DOC["paths"][template].get(method.lower())
    raise AssertionError("%s is not in the OpenAPI document" % path)


def check(method, path, status, body, content_type="application/json"):
    """Raise AssertionError unless the answer is one the document describes."""
    template, op = operation(method, path.split("?")[0])
    assert op is not None, "%s %s is not documented" % (method, template)
    response = op["responses"].get(str(status))
    assert response is not None, "%s %s: status %d is not documented" % (method, template, status)
    content = response.get("content", {})
    assert content_type in content, "%s %s %d: %s is not documented" % (
        method,
        template,
        status,
        content_type,
    )
    if content_type != "application/json":
        return
    schema = dict(content[content_type]["schema"])
    schema = {"$ref": "urn:st2bridge-api#" + schema["$ref"][1:]} if "$ref" in schema else schema
    jsonschema.Draft202012Validator(schema, registry=_REGISTRY).validate(body)
