"""docs/dsl.md: every python code block runs, in order, as one program."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "dsl.md"


def test_dsl_doc_examples_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 5
    ns: dict = {}
    for code in blocks:
        exec(compile(code, str(DOC), "exec"), ns)  # noqa: S102 - our own documentation
    out = capsys.readouterr().out
    assert "func risky(" in out and out.count("\ntotal") == 2  # the IR and two explanations
    print(out)
