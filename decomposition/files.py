"""Files replaced whole or not at all, whatever interrupts the write (a failing write, a full
disk, Ctrl-C, SIGTERM): a single file, or a set of files that belong together."""

import json
import os
import signal
import tempfile


def unwritable(folder):
    """Why `folder` cannot receive output (it is a file, or nothing can be created where it would
    be), or None. Nothing is left behind: callers check before long work starts."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        return "it exists and is not a folder"
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK):
        return f"no write permission in {existing}"
    try:  # os.access says yes to root, also on read-only file systems and in /proc: try it
        os.rmdir(tempfile.mkdtemp(dir=existing))
    except OSError as error:
        return f"cannot create anything in {existing} ({error.strerror})"
    return None


def _temporary(path):
    # the same stem as the file: torch.save names its archive after it, so the bytes do not
    # depend on the temporary name
    return f"{path}.tmp{os.getpid()}"


def write_atomically(path, write):
    """Call write(temporary), then move the temporary file onto `path` in one step."""
    write_file_set(os.path.dirname(path) or ".", {os.path.basename(path): write})


def json_writer(data, indent=None):
    """A writer for write_file_set and write_atomically: `data` as JSON at the path it is given."""
    def write(path):
        with open(path, "w") as file:
            json.dump(data, file, indent=indent)
    return write


def write_file_set(folder, writers, stale=()):
    """Write the files {name: write(temporary path)} into `folder` as one set.

    Every file is first written to a temporary file; only when all are complete are they moved
    into place, with Ctrl-C and SIGTERM held back for those few renames, and the files named in `stale` that
    the new set does not include are removed (so that no file of an older run is left beside the
    new ones). If anything fails or is interrupted before that, the temporary files are removed
    and the folder keeps its old files untouched.
    """
    temporaries = {name: _temporary(os.path.join(folder, name)) for name in writers}
    try:
        for name, write in writers.items():
            write(temporaries[name])
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            for name, temporary in temporaries.items():
                os.replace(temporary, os.path.join(folder, name))
            for name in set(stale) - set(writers):
                if os.path.lexists(os.path.join(folder, name)):
                    os.remove(os.path.join(folder, name))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    finally:
        for temporary in temporaries.values():
            if os.path.lexists(temporary):
                os.remove(temporary)
