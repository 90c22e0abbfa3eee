"""The workflow as a user runs it: config validation, lint, a full demo run and a rerun."""

from __future__ import annotations

import subprocess
import sys

import yaml
from conftest import REPO, run_snakemake


def _write_config(workdir, change):
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    change(config)
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))


def test_schema_rejects_a_misspelled_key(tmp_path):
    _write_config(tmp_path, lambda c: c["datasets"]["demo_field"].update(mdoe="field"))
    proc = run_snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    assert "'mdoe' was unexpected" in proc.stdout + proc.stderr


def test_schema_rejects_a_wrong_type(tmp_path):
    _write_config(tmp_path, lambda c: c["demo"].update(seed="soon"))
    proc = run_snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "'soon' is not of type 'integer'" in out and "['seed']" in out


def test_glob_matching_nothing_names_the_key(tmp_path):
    _write_config(tmp_path, lambda c: c["datasets"]["demo_field"].update(files="nowhere/*.fits"))
    proc = run_snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    assert (
        "datasets.demo_field.files: 'nowhere/*.fits' matches no file" in proc.stdout + proc.stderr
    )


def test_lint_is_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_demo_run_writes_inventory_and_reruns_nothing(demo_run):
    inventory = demo_run / "results" / "inventory.ecsv"
    assert inventory.exists(), (demo_run / "snakemake.stderr").read_text()[-3000:]
    stderr = (demo_run / "snakemake.stderr").read_text()
    assert "Exiting because a job execution failed" not in stderr, stderr[-4000:]
    proc = run_snakemake(demo_run, "-n", "--cores", "2")
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]


def test_readme_starts_with_the_two_commands_and_its_examples_validate():
    import re

    from snakemake.utils import validate

    readme = (REPO / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1).strip().splitlines()
    assert first_block == [
        "pip install -e . && snakemake --cores 2",
        'pip install -e ".[test]" && pytest',
    ]
    assert first_block[1] in (REPO / ".ci" / "run").read_text()
    section = readme[readme.index("## One example per mode") : readme.index("## On a cluster")]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(blocks) == 4
    for block in blocks:
        validate(
            yaml.safe_load(block),
            str(REPO / "workflow/schemas/config.schema.yaml"),
            set_default=False,
        )
