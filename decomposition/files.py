"""Files replaced whole or not at all, whatever interrupts the write (a failing write, a full
disk, Ctrl-C, SIGTERM): a single file, or a set of files that belong together."""

import errno
import json
import os
import signal
import tempfile

KIT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kit_path(path):
    """`path` relative to the kit's folder where it lies inside it, else absolute: records name the
    kit's own files as results/... wherever the kit was unzipped and the script started."""
    path = os.path.abspath(path)
    return os.path.relpath(path, KIT) if os.path.commonpath([path, KIT]) == KIT else path


def unwritable(folder):
    """Why `folder` cannot receive output (it is a file, or nothing can be created where it would
    be), or None. Nothing is left behind: callers check before long work starts."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        return "it exists and is not a folder"
    if not folder:
        return "the name is empty"
    existing = os.path.abspath(folder)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"{existing} is a broken symbolic link or not a folder"
    if not os.access(existing, os.W_OK):
        return f"no write permission in {existing}"
    try:  # os.access says yes to root, also on read-only file systems and in /proc: try it
        os.rmdir(tempfile.mkdtemp(dir=existing))
    except OSError as error:
        return f"cannot create anything in {existing} ({error.strerror})"
    return None


def folders_fault(sets_dir, save_dir):
    """Why --sets-dir (network sets to read) or --save-dir (where output goes) cannot be used, or None."""
    if sets_dir is not None and os.path.exists(sets_dir) and not os.path.isdir(sets_dir):
        return f"--sets-dir {sets_dir} exists and is not a folder"
    if save_dir is not None and unwritable(save_dir):
        return f"cannot write to --save-dir {save_dir}: {unwritable(save_dir)}"
    return None


def _temporary(path):
    # the same stem as the file: torch.save names its archive after it, so the bytes do not
    # depend on the temporary name
    return f"{path}.tmp{os.getpid()}"


def failure(error):
    """What an OSError of a write says, with the path it names."""
    return f"{error.strerror}: {error.filename}" if error.filename else str(error.strerror or error)


def write_atomically(path, write):
    """Call write(temporary), then move the temporary file onto `path` in one step."""
    write_file_set(os.path.dirname(path) or ".", {os.path.basename(path): write})


def read_json(path):
    """The JSON in the regular file `path`. Raises OSError (a FIFO, a device or a folder would block
    or never end: not read) or ValueError (not JSON, or nested too deep)."""
    if not os.path.isfile(path):
        raise OSError(errno.EINVAL, "not a regular file" if os.path.exists(path) else "no such file", path)
    if os.path.getsize(path) > 2**30:
        raise ValueError(f"{path} is larger than 1 GiB")
    try:
        with open(path) as file:
            return json.load(file)
    except RecursionError:
        raise ValueError(f"{path} is nested too deep") from None


def json_writer(data, indent=None):
    """A writer for write_file_set and write_atomically: `data` as JSON at the path it is given."""
    def write(path):
        with open(path, "w") as file:
            json.dump(data, file, indent=indent)
    return write


def text_writer(text):
    """A writer for write_file_set and write_atomically: `text` at the path it is given."""
    def write(path):
        with open(path, "w") as file:
            file.write(text)
    return write


def write_file_set(folder, writers, stale=()):
    """Write the files {name: write(temporary path)} into `folder` as one set (write_files)."""
    write_files({os.path.join(folder, name): write for name, write in writers.items()},
                [os.path.join(folder, name) for name in stale])


def write_files(writers, stale=()):
    """Write the files {path: write(temporary path)} as one set, in one folder or several.

    Every file is first written to a temporary file beside its path; only when all are complete,
    and no path is taken by a folder, are they moved into place, with Ctrl-C and SIGTERM held back
    for those few renames, and the paths in `stale` that the new set does not include are removed
    (so that no file of an older run is left beside the new ones). If anything fails or is
    interrupted before that, the temporary files are removed and every old file stays untouched.
    """
    temporaries = {path: _temporary(path) for path in writers}
    try:
        for path, write in writers.items():
            write(temporaries[path])
        taken = [path for path in (*writers, *stale) if os.path.isdir(path) and not os.path.islink(path)]
        if taken:  # a rename onto a folder would fail half-way through the set
            raise IsADirectoryError(errno.EISDIR, "a folder is in the way", taken[0])
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
        try:
            for path, temporary in temporaries.items():
                os.replace(temporary, path)
            for path in set(stale) - set(writers):
                if os.path.lexists(path):
                    os.remove(path)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    finally:
        for temporary in temporaries.values():
            if os.path.lexists(temporary):
                os.remove(temporary)
