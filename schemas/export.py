"""JSON Schema export of the event models.

`python -m schemas.export [OUT_DIR]` (default: schemas/jsonschema next to this
file) rewrites `event.json` (the discriminated union) and one file per type.
Output is deterministic: sorted keys, indent 2, trailing newline, UTF-8.
"""
import json
import sys
from pathlib import Path
from typing import Any

from .events import EVENT_MODELS, EventAdapter

__all__ = ["DEFAULT_DIR", "export_json_schemas", "render_json_schemas"]

DEFAULT_DIR = Path(__file__).resolve().parent / "jsonschema"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _dump(schema: dict[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def render_json_schemas() -> dict[str, str]:
    """File name -> file content, for the union and every event type."""
    union = EventAdapter.json_schema(mode="validation")
    union = {"$schema": SCHEMA_DIALECT, "title": "Event", **union}
    files = {"event.json": _dump(union)}
    for name, model in EVENT_MODELS.items():
        schema = {"$schema": SCHEMA_DIALECT, **model.model_json_schema(mode="validation")}
        files[f"{name}.json"] = _dump(schema)
    return files


def export_json_schemas(out_dir: Path) -> list[Path]:
    """Write the schemas into out_dir (created if needed); return the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_json_schemas().items():
        path = out_dir / name
        path.write_bytes(text.encode("utf-8"))
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else DEFAULT_DIR
    for path in export_json_schemas(out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
