"""Rewrite the README's action reference from the input models: `python -m scripts.readme_actions`."""

from __future__ import annotations

import re
from pathlib import Path

from actions import ACTIONS
from actions.fields import reference_markdown

README = Path(__file__).parent.parent / "README.md"
BLOCK = re.compile(r"(<!-- actions:start[^>]*-->\n).*?(<!-- actions:end -->)", re.S)


def render(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + reference_markdown(ACTIONS) + "\n" + m.group(2), text)


if __name__ == "__main__":
    README.write_text(render(README.read_text()))
