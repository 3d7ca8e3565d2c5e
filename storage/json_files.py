"""Reading a JSON file the user gave or a run wrote, refused in one sentence that names the file and the line."""
import json

from registry import MissingFileError, UserError


JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


class JsonFileError(UserError, ValueError):
    """A JSON file that does not parse, or whose top level is not an object; names the file, line and column."""


def read_json_object(path, what):
    """The dict stored in the JSON file `path`; `what` ('recipe file', ...) starts the refusals.

    Refuses a missing file (`MissingFileError`), text that is not JSON (file, line, column and
    the parser's reason) and a top level that is not an object (`JsonFileError`).
    """
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        raise MissingFileError(f"{what} {path!r} does not exist.") from None
    except UnicodeDecodeError as error:
        raise JsonFileError(f"{what} {path!r} is not a text file (byte {error.start} is not UTF-8).") from None
    try:
        content = json.loads(text)
    except json.JSONDecodeError as error:
        raise JsonFileError(f"{what} {path!r} is not valid JSON: line {error.lineno}, column {error.colno}: "
                            f"{error.msg}.") from None
    if not isinstance(content, dict):
        kind = JSON_KINDS.get(type(content), type(content).__name__)
        raise JsonFileError(f"{what} {path!r} holds a JSON {kind} at its top level; it must be one object "
                            "{\"name\": value, ...}.")
    return content
