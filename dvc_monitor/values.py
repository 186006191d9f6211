"""What every result shares: one JSON shape, used by the API and the CLI alike.

Result types are small dataclasses. ``JsonValue.to_json()`` gives their JSON form (a
class overrides it when its shape is not its fields); ``to_jsonable`` turns any result,
nested dataclasses, enums and dates included, into plain JSON values.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any


class JsonValue:
    """Mixin for result dataclasses: ``to_json()`` is the one JSON shape of the result."""

    def to_json(self) -> dict:
        return to_jsonable(asdict(self))  # type: ignore[arg-type]


def to_jsonable(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if hasattr(obj, "value") and type(obj).__class__.__name__ == "EnumType":
        return obj.value
    return obj
