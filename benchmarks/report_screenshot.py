"""The report's first screen in a real browser: a demo-like run, a second run against its champion, a Chromium shot.

Usage: python benchmarks/report_screenshot.py [--out benchmarks/results/report_first_screen.png] [--keep DIR]
Runs `clip-pipeline demo` on a shrunk copy of the project (tests/flows/tiny_project.py: the embedded dataset,
fewer pairs and steps), then `clip-pipeline run` of train..report with more steps, so the first screen compares a
challenger with champion v1; prints both runs' console line counts. Needs `chromium` (apt-get install -y chromium).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.flows.tiny_project import env, make_tiny_project  # noqa: E402

SECOND = ["train", "evaluate", "audit", "bias", "register", "report"]


def run(cmd: list[str], cwd: Path, e: dict) -> str:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=e, capture_output=True, text=True, timeout=1200)
    out = p.stdout + p.stderr
    if p.returncode != 0:
        raise SystemExit(f"{cmd} failed ({p.returncode}):\n{out[-4000:]}")
    print(f"$ {' '.join(cmd)}: {len(out.splitlines())} console lines, {time.perf_counter() - t0:.0f} s")
    return out


def screenshot(html: Path, png: Path, width: int = 1440, height: int = 900) -> None:
    """Chromium headless at desktop size, then a palette PNG (small enough to commit)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise SystemExit("no chromium on PATH: apt-get install -y chromium")
    raw = png.with_suffix(".raw.png")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={raw}",
                    f"--window-size={width},{height}", html.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    from PIL import Image

    Image.open(raw).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)
    raw.unlink()
    print(f"{png}: {png.stat().st_size // 1024} KiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "report_first_screen.png")
    ap.add_argument("--keep", type=Path, help="run in this directory and keep it (default: a temp dir, removed)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="report-shot-"))
    ray_tmp = f"/tmp/rs-{uuid.uuid4().hex[:8]}"  # short: Ray's socket paths must stay under 107 characters
    e = {**env(), "PREFECT_HOME": str(work / "prefect"), "CLIP_RAY_TMPDIR": ray_tmp, "RAY_memory_monitor_refresh_ms": "0"}
    e.pop("PREFECT_API_URL", None)
    try:
        proj = make_tiny_project(work / "proj", **{"train.steps": 32, "train.log_every": 2})
        demo = run(["clip-pipeline", "demo"], proj, e)
        print(demo)
        run(["clip-pipeline", "--set", "train.steps=64", "run", "--stages", *SECOND], proj, e)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        screenshot(proj / "out" / "report" / "report.html", args.out)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
