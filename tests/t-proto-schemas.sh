#!/usr/bin/env bash
# The wire protocol's JSON Schemas checked with a real validator (Debian's python3-jsonschema,
# draft 2020-12): every schema is a valid schema, every proto/examples/<name>[-variant].json
# is valid against proto/schema/<name>.schema.json, every schema has an example and every
# example a schema, and hand-made invalid messages (and, generically, every example with a
# required key removed, an unknown key added, or a key of the wrong type) are rejected.
# The rules a schema cannot say (t_end > t_start, ...) are tests/test-proto.c's.
# Exit 0 pass, 77 skip (no jsonschema module), anything else fail.
set -u
cd "$(dirname "$0")/.."
py=/usr/bin/python3
if ! "$py" -c 'import jsonschema' 2>/dev/null; then
    echo "skip: $py has no jsonschema module (apt-get install python3-jsonschema)"
    exit 77
fi
exec "$py" - <<'EOF'
import copy, glob, json, os, sys
import jsonschema
from jsonschema import Draft202012Validator

SCHEMA_DIR, EXAMPLE_DIR = "proto/schema", "proto/examples"
failures = []

def fail(msg):
    failures.append(msg)
    print("FAIL", msg)

schemas = {}
for path in sorted(glob.glob(f"{SCHEMA_DIR}/*.schema.json")):
    name = os.path.basename(path)[: -len(".schema.json")]
    with open(path) as f:
        schemas[name] = json.load(f)
    try:
        Draft202012Validator.check_schema(schemas[name])
    except jsonschema.SchemaError as e:
        fail(f"{path}: not a valid draft 2020-12 schema: {e.message}")
if len(schemas) != 10:
    fail(f"{len(schemas)} schemas, want 10")

# $refs between schemas ("stream_info.schema.json") resolve against each $id, from disk
store = {s["$id"]: s for s in schemas.values()}
def validator(name):
    resolver = jsonschema.RefResolver.from_schema(schemas[name], store=store)
    return Draft202012Validator(schemas[name], resolver=resolver)

def valid(name, inst):
    return validator(name).is_valid(inst)

examples = {}
for path in sorted(glob.glob(f"{EXAMPLE_DIR}/*.json")):
    base = os.path.basename(path)[: -len(".json")]
    name = base.split("-", 1)[0]
    with open(path, encoding="utf-8") as f:
        inst = json.load(f)
    examples.setdefault(name, []).append((base, inst))
    if name not in schemas:
        fail(f"{path}: no schema {SCHEMA_DIR}/{name}.schema.json")
        continue
    errs = sorted(validator(name).iter_errors(inst), key=lambda e: list(e.path))
    for e in errs:
        fail(f"{path}: {'/'.join(map(str, e.path)) or '(root)'}: {e.message}")
    if not errs:
        print(f"ok   {path}")
for name in schemas:
    if name not in examples:
        fail(f"{SCHEMA_DIR}/{name}.schema.json: no example in {EXAMPLE_DIR}")

# generic: each required key removed, an unknown key added, each key given a boolean
for name, exs in examples.items():
    if name not in schemas:
        continue
    s = schemas[name]
    for base, inst in exs:
        for key in inst:
            bad = copy.deepcopy(inst)
            del bad[key]
            if (key in s["required"]) == valid(name, bad):
                fail(f"{base} without '{key}': {'accepted' if key in s['required'] else 'rejected'}")
            bad = copy.deepcopy(inst)
            bad[key] = True
            if valid(name, bad):
                fail(f"{base} with '{key}': true accepted")
        bad = copy.deepcopy(inst)
        bad["bogus"] = 1
        if valid(name, bad):
            fail(f"{base} with an unknown key accepted")

def ex(name, **change):
    """The example <name>.json with keys changed (None: removed)."""
    inst = copy.deepcopy(dict(examples[name])[name])
    for k, v in change.items():
        if v is None:
            inst.pop(k, None)
        else:
            inst[k] = v
    return inst

W = "2026-12-02T05:48:00.123Z"
invalid = [
    ("commentary", ex("commentary", seq=0), "seq 0"),
    ("commentary", ex("commentary", seq=1.5), "seq 1.5"),
    ("commentary", ex("commentary", seq="1"), "seq as a string"),
    ("commentary", ex("commentary", stream="cam 1"), "id with a space"),
    ("commentary", ex("commentary", stream=""), "empty id"),
    ("commentary", ex("commentary", stream="a" * 65), "65-character id"),
    ("commentary", ex("commentary", stream="caméra"), "non-ASCII id"),
    ("commentary", ex("commentary", type="gap"), "wrong type"),
    ("commentary", ex("commentary", t_start=-1.0), "negative t_start"),
    ("commentary", ex("commentary", latency_ms=-0.1), "negative latency"),
    ("commentary", ex("commentary", text=None), "no text"),
    ("commentary", ex("commentary", wall_time="2026-12-02T05:48:00Z"), "wall time without ms"),
    ("commentary", ex("commentary", wall_time="2026-12-02T05:48:00.123+00:00"), "offset, not Z"),
    ("commentary", ex("commentary", wall_time="2026-13-02T05:48:00.123Z"), "month 13"),
    ("commentary", ex("commentary", wall_time="2026-12-02T24:00:00.000Z"), "hour 24"),
    ("commentary", ex("commentary", wall_time=1796190480.123), "wall time as a number"),
    ("status", ex("status", state="paused"), "unknown state"),
    ("status", ex("status", retry_in_s=2.0), "retry_in_s while live"),
    ("status", ex("status", detail=7), "detail as a number"),
    ("gap", ex("gap", reason=""), "empty reason"),
    ("dropped", ex("dropped", count=0), "count 0"),
    ("dropped", ex("dropped", seq=5), "dropped with a seq"),
    ("hello", ex("hello", last_seq=-1), "negative last_seq"),
    ("hello", ex("hello", resumed_from="40"), "resumed_from as a string"),
    ("stream_create", ex("stream_create", id="a/b"), "id with a slash"),
    ("stream_create", ex("stream_create", source=""), "empty source"),
    ("stream_create", ex("stream_create", query=None, source=None), "no source"),
    ("stream_create", ex("stream_create", query=None), None),  # valid: query is optional
    ("stream_info", ex("stream_info", latency_ms_p50=None), "no latency_ms_p50"),
    ("stream_info", ex("stream_info", latency_ms_p50="fast"), "latency as a string"),
    ("stream_info", ex("stream_info", chunks=-1), "negative chunks"),
    ("stream_info", ex("stream_info", state="LIVE"), "state in capitals"),
    ("stream_list", {"streams": [ex("stream_info", state="paused")]}, "bad element"),
    ("stream_list", {"streams": [ex("stream_info", extra=1)]}, "element with an unknown key"),
    ("stream_list", {"streams": {}}, "streams as an object"),
    ("query_update", {"query": None}, "null query"),
    ("query_update", {}, "no query"),
    ("error", {"error": {"code": 99, "message": "x"}}, "code 99"),
    ("error", {"error": {"code": 600, "message": "x"}}, "code 600"),
    ("error", {"error": {"code": 404, "message": ""}}, "empty message"),
    ("error", {"error": {"code": 404, "message": "x", "at": 1}}, "unknown nested key"),
    ("error", {"error": {"code": 404}}, "no message"),
    ("error", {"code": 404, "message": "x"}, "not nested"),
]
for name, inst, what in invalid:
    ok = valid(name, inst)
    if what is None and not ok:
        fail(f"{name}: valid instance rejected: {json.dumps(inst)}")
    elif what is not None and ok:
        fail(f"{name}: {what} accepted: {json.dumps(inst)}")
print(f"{len(invalid)} hand-made cases checked")

if failures:
    print(f"{len(failures)} failures")
    sys.exit(1)
print("all schemas and examples agree")
EOF
