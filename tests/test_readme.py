"""The README's test command is the one CI runs, and its example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"^(python -m pytest[^\n#]*?)\s*#", readme, re.MULTILINE)
    assert command is not None, "README must show the test command"
    assert command.group(1).strip() in ci


def test_readme_example_runs():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Example\s+```python\n(.*?)```", readme, re.DOTALL)
    assert block is not None
    namespace: dict = {}
    exec(
        compile(block.group(1).replace("10_000", "500").replace("1000", "200"), "README", "exec"),
        namespace,
    )
    samples = namespace["samples"]
    assert samples.shape == (500, 2)
    # The samples follow the data law: mean within 5 standard errors.
    from gpm_sde.verify import mean_z_scores

    assert abs(mean_z_scores(samples, namespace["data"].mean())).max() < 5.0
