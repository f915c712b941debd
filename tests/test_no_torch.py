"""The planner, the design schema, the corpus tools and the statistics run without torch."""

import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    class NoGpuStack(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"torch", "lightning", "litgpt", "engine"}:
                raise ImportError(f"{name} is blocked: planning hosts have no torch")
            return None
    sys.meta_path.insert(0, NoGpuStack())
    """
)


def _run(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_planning_layers_import_without_torch(tmp_path):
    result = _run(
        """
        import designkit.planning, designkit.design, designkit.data, designkit.analysis, designkit.kinds
        import designkit.runfile, designkit.analysis.report, designkit.probes, designkit.provenance
        import designkit.planning.interference, designkit.planning.subplan, designkit.interference_cli
        import designkit.analysis.interference, designkit.analysis.interference_report
        assert "torch" not in sys.modules
        print("ok")
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_a_plan_is_made_without_torch(tmp_path, design_file):
    result = _run(
        f"""
        from designkit.cli import main
        code = main(["plan", {str(design_file)!r}, "--out", {str(tmp_path / 'plan')!r}, "--quiet"])
        assert "torch" not in sys.modules
        sys.exit(code)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "plan" / "plan.json").is_file()
