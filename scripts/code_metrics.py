"""Size facts of a source tree: the longest functions and files, functions over 80 lines,
files over 450, and imports inside functions (the redesign's limits).

    python scripts/code_metrics.py [src/normscope]
"""

import ast
import sys
from pathlib import Path


def main(root: Path) -> None:
    functions, files, inner_imports = [], [], 0
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        files.append((len(text.splitlines()), str(path.relative_to(root))))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.end_lineno - node.lineno + 1, f"{path.relative_to(root)}:{node.name}"))
                inner_imports += sum(isinstance(sub, (ast.Import, ast.ImportFrom)) for sub in ast.walk(node))
    functions.sort(reverse=True)
    files.sort(reverse=True)
    print("longest functions:", ", ".join(f"{name} ({n})" for n, name in functions[:3]))
    print("longest files:", ", ".join(f"{name} ({n})" for n, name in files[:3]))
    print(
        "functions over 80 lines:",
        sum(n > 80 for n, _ in functions),
        " files over 450 lines:",
        sum(n > 450 for n, _ in files),
    )
    print("imports inside functions:", inner_imports)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "src/normscope"))
