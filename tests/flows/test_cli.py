import subprocess
import sys
import time

from flows.cli import main


def test_help_is_fast_and_light() -> None:
    t0 = time.perf_counter()
    code = (
        "import sys, flows.cli as c; c.build_parser(); "
        "print(sorted(m for m in ('torch', 'ray', 'prefect', 'deepspeed') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # heavy frameworks are imported only by the subcommand that needs them
    assert time.perf_counter() - t0 < 30  # generous: the real bound is ~1 s, this only catches a hang


def test_params_errors_exit_2(capsys) -> None:
    assert main(["--set", "pipeline.bogus=1", "params"]) == 2
    assert "unknown key(s) ['bogus']" in capsys.readouterr().err


def test_models_lists_shipped_configs(capsys) -> None:
    assert main(["models"]) == 0
    assert "ViT-B-32" in capsys.readouterr().out
