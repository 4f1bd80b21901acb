"""docs/api.md runs as written: its Python blocks, in order, in one fresh interpreter (a
plugin it loads stays out of this test process), from a directory holding examples/."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def test_api_doc_blocks_run(tmp_path):
    blocks = BLOCK.findall((ROOT / "docs" / "api.md").read_text())
    assert len(blocks) == 7
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    script = tmp_path / "session.py"
    script.write_text("\n".join(f"# --- block {i}\n{b}" for i, b in enumerate(blocks, 1)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src"), "PYTHONWARNINGS": "ignore"}
    env.pop("NORMSCOPE_PLUGINS", None)
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "figures" / "tiny_in_v2.svg").is_file() and (tmp_path / "rms.onnx").is_file()


def test_descriptions_from_text_and_mappings_name_their_source():
    import normscope

    text = "name: t\ninput: [3, 8, 8]\nclasses: 2\nnorm: rms\nlayers:\n  - conv: 2\n"
    try:
        normscope.describe(text)
    except normscope.SpecError as error:
        want = r"<yaml [0-9a-f]{8}>:4: `norm`: unknown norm 'rms': is its plugin loaded\? \(--plugin FILE\)"
        assert re.fullmatch(want, str(error)), str(error)
    else:
        raise AssertionError("norm: rms loaded without its plugin")
    spec = normscope.describe({"input": [3, 8, 8], "classes": 2, "layers": [{"conv": 2}, "flatten", "dense"]})
    assert spec.name == "model" and str(spec.file).startswith("<dict ")
    again = normscope.describe(spec, "bn_v2")  # a ModelSpec from a mapping loads again in another variant
    assert (again.name, again.norm, again.reuse) == ("model_bn_v2", "bn", True)
    for bad in (3, b"name: x"):
        try:
            normscope.describe(bad)
        except normscope.SpecError as error:
            assert "a model description is a path, YAML text, a mapping or a ModelSpec" in str(error)
