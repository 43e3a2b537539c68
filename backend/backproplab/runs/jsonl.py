"""Reading a run record that is either one JSON document or JSON lines (a head
`{schema, config, environment, theory}`, one step per line, optionally a last line
`{"first_nonfinite": ...}`) — the file `backproplab.watch(out=...)` writes as it
goes. A file cut short by a killed script reads as the steps it holds: a last line
that is not whole JSON is dropped; a bad line before the end is an error."""

from __future__ import annotations

from typing import Any

from .codec import TooDeep, decode


class RecordFormatError(ValueError):
    """The text is neither a run record nor a run record's JSON lines."""


def parse_record(data: bytes | str) -> Any:
    """The run record in `data` (a whole JSON document, or JSON lines), with
    "NaN"/"Infinity"/"-Infinity" restored to floats."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        return decode(raw)
    except TooDeep as exc:
        raise RecordFormatError(str(exc)) from None
    except ValueError:
        pass
    lines = [line for line in raw.splitlines() if line.strip()]
    if len(lines) < 1:
        raise RecordFormatError("empty file: no run record")
    objects = []
    for number, line in enumerate(lines, 1):
        try:
            objects.append(decode(line))
        except TooDeep as exc:
            raise RecordFormatError(f"line {number}: {exc}") from None
        except ValueError:
            if number == len(lines) and number > 1:
                break  # the line being written when the script was killed
            raise RecordFormatError(f"line {number} is not JSON: neither a run record "
                                    f"nor a run's JSON lines") from None
    head = objects[0]
    if not isinstance(head, dict) or "schema" not in head:
        raise RecordFormatError('line 1 is not a run record\'s head (no "schema")')
    record = {k: v for k, v in head.items() if k != "steps"}
    record["steps"] = list(head.get("steps") or [])
    for number, obj in enumerate(objects[1:], 2):
        if isinstance(obj, dict) and "step" in obj:
            record["steps"].append(obj)
        elif isinstance(obj, dict) and "first_nonfinite" in obj:
            record["first_nonfinite"] = obj["first_nonfinite"]
        else:
            raise RecordFormatError(f"line {number} is neither a step nor the end line")
    if "first_nonfinite" not in record and (record.get("config") or {}).get("source") == "watched":
        record["first_nonfinite"] = next((s["first_nonfinite"] for s in record["steps"]
                                          if s.get("first_nonfinite")), None)
    return record
