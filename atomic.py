"""Files replaced whole or not at all, whatever interrupts the write."""

import os


def write_atomically(path, write):
    """Call write(temporary), then move the temporary file onto `path` in one step.

    An existing file at `path` is either replaced by the complete new one or left as it was;
    a failed or interrupted write leaves no temporary file behind.
    """
    temporary = f"{path}.tmp{os.getpid()}"
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.remove(temporary)
        raise
