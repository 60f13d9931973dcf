import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

PROBLEMS = ("TL-BR", "TR-BL", "BR-TL", "BL-TR")
MODELS = tuple(os.path.join(ROOT, "models", f"{p}.pt") for p in PROBLEMS)
"""The shipped checkpoints, in the default game's order of problems."""


@pytest.fixture(scope="session")
def agents():
    """The four shipped networks, loaded once for the whole run (tests read them, never change them)."""
    from combogrid import ComboGym
    from ppo_agent import load_agent
    return [load_agent(path, ComboGym(problem=p)) for path, p in zip(MODELS, PROBLEMS)]


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: over a second or a subprocess; the fast tier (-m 'not slow') leaves it out")


def quoted(document, anchor, *numbers, window=400):
    """Whether each of `numbers` (as the document formats them) stands within `window` characters
    after the first `anchor` in `document` (a path under the kit, or text): the docs' numbers
    checked against the records, whatever the sentence around them says."""
    if os.path.exists(os.path.join(ROOT, document)):
        with open(os.path.join(ROOT, document)) as file:
            document = file.read()
    text = " ".join(document.split())
    start = text.find(anchor)
    assert start >= 0, f"{anchor!r} is not in the document"
    near = text[start:start + len(anchor) + window]
    missing = [number for number in numbers if str(number) not in near]
    assert not missing, f"{missing} not within {window} characters after {anchor!r}: {near!r}"
    return True
