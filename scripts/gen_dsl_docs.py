"""Regenerate the reference part of docs/dsl.md from the layer registry."""

from pathlib import Path

from normscope.report.reference import BEGIN, END, markdown

path = Path(__file__).resolve().parents[1] / "docs" / "dsl.md"
text = path.read_text()
head, _, rest = text.partition(BEGIN)
_, _, tail = rest.partition(END)
path.write_text(f"{head}{BEGIN}\n{markdown()}{END}{tail}")
print(f"wrote {path}")
