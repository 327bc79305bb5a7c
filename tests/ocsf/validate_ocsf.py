#!/usr/bin/env python3
"""Validates OCSF 1.5.0 events, one JSON object per line (NDJSON), with a third-party validator.

Usage: validate_ocsf.py [FILE ...]   (no FILE, or "-": standard input)

Each line is checked by ocsf-emitter (PyPI, HackerOne's OCSF 1.5.0 models and invariants,
pinned below): the class's Pydantic model of the schema in strict JSON mode (required
fields, types, enum values such as activity_id, status_id, severity_id, os.type_id), then
`ocsf_emitter.validate` (class and category identity, type_uid = class_uid * 100 +
activity_id, class_name and category_name, metadata.version 1.5.0). Its models accept
attributes the schema does not define, so this script also refuses any such attribute
outside `unmapped` (the schema's place for them): a misspelt or misplaced field fails too.

Exit status: 0 when every line is valid (a summary on stdout), 1 naming the first invalid
line of each file and its problems, 2 when the validator is missing or not the pinned one.
"""

import json
import sys

PINNED = "0.3.0"

try:
    import ocsf_emitter
    from ocsf_emitter import defaults, models
    from pydantic import BaseModel, ValidationError
except ImportError as e:  # fail loudly: a test that needs the validator must not pass without it
    sys.exit(f"validate_ocsf: ocsf-emitter is not installed ({e}); "
             f"run: python3 -m pip install ocsf-emitter=={PINNED}")

if ocsf_emitter.__version__ != PINNED:
    print(f"validate_ocsf: ocsf-emitter {ocsf_emitter.__version__} is installed, "
          f"{PINNED} is pinned; run: python3 -m pip install ocsf-emitter=={PINNED}",
          file=sys.stderr)
    sys.exit(2)


def undefined_attributes(model, path):
    """Attributes of `model` (and the models inside it) that the schema does not define."""
    found = []
    for key in (model.model_extra or {}):
        found.append(f"{path}{key}: not an attribute of {type(model).__name__} in OCSF 1.5.0")
    for name, field in type(model).model_fields.items():
        if name == "unmapped":
            continue
        key = field.alias or name
        value = getattr(model, name, None)
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if isinstance(item, BaseModel):
                at = f"{path}{key}[{i}]." if isinstance(value, list) else f"{path}{key}."
                found.extend(undefined_attributes(item, at))
    return found


def problems(line):
    """What is wrong with one line, or [] when it is a valid OCSF 1.5.0 event."""
    try:
        doc = json.loads(line)
    except ValueError as e:
        return [f"not JSON: {e}"]
    if not isinstance(doc, dict):
        return ["not a JSON object"]
    uid = doc.get("class_uid")
    spec = defaults.class_spec_by_uid(uid) if isinstance(uid, int) else None
    if spec is None:
        return [f"class_uid: {uid!r} is not an OCSF 1.5.0 class"]
    model_cls = getattr(models, spec.model_name)
    try:
        event = model_cls.model_validate_json(line, strict=True)
    except ValidationError as e:
        return [f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
                for err in e.errors()]
    try:
        ocsf_emitter.validate(event)
    except ocsf_emitter.InvalidFindingError as e:
        return e.field_errors or [str(e)]
    return undefined_attributes(event, "")


def check(name, stream):
    """Validates every line of `stream`; the number of events, or None after a failure."""
    n = 0
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        found = problems(line)
        if found:
            print(f"{name}:{number}: invalid OCSF 1.5.0 event:", file=sys.stderr)
            for p in found:
                print(f"  - {p}", file=sys.stderr)
            print(f"  line: {line.strip()[:400]}", file=sys.stderr)
            return None
        n += 1
    return n


def main(args):
    total, failed = 0, False
    for name in args or ["-"]:
        if name == "-":
            n = check("<stdin>", sys.stdin)
        else:
            with open(name, encoding="utf-8") as f:
                n = check(name, f)
        if n is None:
            failed = True
        else:
            total += n
    if failed:
        return 1
    print(f"validate_ocsf: {total} events valid (ocsf-emitter {PINNED}, OCSF "
          f"{defaults.OCSF_SCHEMA_VERSION})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
