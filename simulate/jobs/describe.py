"""OGC API - Processes process summaries and descriptions, derived from a process's
pydantic inputs model and its declared outputs. Every schema is self-contained:
`$ref`s into pydantic's `$defs` are inlined, so a client needs no other document.
"""

from __future__ import annotations

import copy

from simulate.jobs.model import COG, GEOJSON, REL_EXECUTE
from simulate.process import OutputSpec, Process

JOB_CONTROL = ["sync-execute", "async-execute", "dismiss"]
_MAX_DEPTH = 32


def inline_refs(schema: dict) -> dict:
    """A copy of a JSON schema with every local `$ref` (`#/$defs/...`) replaced by its target."""
    defs = schema.get("$defs", {})

    def walk(node, depth: int):
        if isinstance(node, list):
            return [walk(n, depth) for n in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            if depth > _MAX_DEPTH:      # a recursive model: stop with a plain object
                return {"type": "object"}
            target = walk(copy.deepcopy(defs[ref.split("/")[-1]]), depth + 1)
            rest = {k: walk(v, depth) for k, v in node.items() if k != "$ref"}
            return {**target, **rest}
        return {k: walk(v, depth) for k, v in node.items() if k != "$defs"}

    return walk(schema, 0)


def _output_schema(spec: OutputSpec) -> dict:
    if spec.kind == "summary":
        schema = {"type": "object", "contentMediaType": "application/json"}
    elif spec.kind == "layer":
        schema = {"type": "object", "contentMediaType": GEOJSON}
    elif spec.kind == "raster":
        schema = {"type": "string", "contentEncoding": "binary", "contentMediaType": COG}
    else:
        schema = {"type": "string", "contentEncoding": "binary", "contentMediaType": spec.media_type}
    if spec.units:
        schema["x-units"] = spec.units
    return schema


def process_summary(process: Process, root: str) -> dict:
    href = f"{root}/processes/{process.id}"
    return {"id": process.id, "title": process.title, "description": process.description,
            "version": process.version, "jobControlOptions": JOB_CONTROL, "outputTransmission": ["reference"],
            "links": [{"href": href, "rel": "self", "type": "application/json", "title": "process description"},
                      {"href": f"{href}/execution", "rel": REL_EXECUTE, "type": "application/json",
                       "title": "execute (POST)"}]}


def process_description(process: Process, root: str) -> dict:
    schema = inline_refs(process.inputs.model_json_schema(mode="validation"))
    required = set(schema.get("required", []))
    inputs = {}
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        title = prop.pop("title", name)
        description = prop.pop("description", "")
        inputs[name] = {"title": title, "description": description, "schema": prop,
                        "minOccurs": 1 if name in required else 0, "maxOccurs": 1}
    outputs = {name: {"title": spec.title, "description": f"{spec.kind} output"
                      + (f" in {spec.units}" if spec.units else ""), "schema": _output_schema(spec)}
               for name, spec in process.outputs.items()}
    return {**process_summary(process, root), "inputs": inputs, "outputs": outputs,
            "x-sync-limit-s": process.sync_limit_s}
