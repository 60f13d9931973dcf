"""glibc's malloc asked to keep freed memory for reuse (both batched engines allocate big tensors)."""

import ctypes


def keep_freed_memory():
    """Ask glibc's malloc to keep freed memory for reuse rather than hand it back to the system.

    A mask-training step or a PPO update allocates and frees tensors of a megabyte or more; by
    default glibc returns such blocks to the system, and every fresh page then costs a page fault:
    about 7% of a main.py --mask-inputs run here, and 40,000 faults in six iterations of 40 PPO
    learners. Elsewhere than glibc this does nothing.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    mallopt(m_mmap_threshold, 32 * 2**20)  # serve blocks up to 32 MiB from the heap (the maximum)
    mallopt(m_trim_threshold, 2**30)       # and keep up to 1 GiB of freed heap for reuse
