"""Command-line arguments for every script: tyro's parser, its errors as one `error: ...` line."""

import contextlib
import io
import sys

import tyro


def parse_args(args_type):
    """tyro.cli(args_type). A bad option (unknown, without its value, of the wrong type, not one of
    the choices) ends the script with one `error: ...` line and exit status 1, like every other bad
    input, instead of tyro's framed message; --help is tyro's own."""
    framed = io.StringIO()
    try:
        with contextlib.redirect_stderr(framed):
            return tyro.cli(args_type)
    except SystemExit as stop:
        if not stop.code:  # --help, printed on stdout
            raise
        sys.exit(f"error: {framed_message(framed.getvalue())}")


def framed_message(text):
    """The message of one of tyro's framed errors: the lines under its title, down to the first rule."""
    lines = [line.strip().strip("│╭╮╰╯").strip() for line in text.splitlines()]
    message = []
    for line in lines[1:]:
        if not line or line.startswith("─"):
            break
        message.append(line)
    message = " ".join(message) or "invalid command-line arguments (see --help)"
    return message.replace("Error parsing ", "cannot parse ", 1)
