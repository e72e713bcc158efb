import json
from pathlib import Path

import pandas as pd

from flows.cli import main


def test_data_synth_ingest_validate_from_the_cli(tmp_path, capsys) -> None:
    overrides = [
        f"pipeline.out_root={tmp_path}", f"data.raw_root={tmp_path}/raw",
        "data.synth.n_train=120", "data.synth.samples_per_shard=50",
        "data.synth.n_eval_per_class=2", "data.synth.n_retrieval=4", "data.synth.n_planted_duplicates=3",
        "data.synth.n_compositional_per_pair=1", "data.synth.num_workers=1",
        "data.ingest.num_workers=0", "data.ingest.progress=false",
    ]  # fmt: skip
    sets = [a for o in overrides for a in ("--set", o)]
    assert main([*sets, "data", "synth"]) == 0
    assert len(list((tmp_path / "raw/train").glob("*.tar"))) == 3
    assert main([*sets, "data", "ingest"]) == 0  # source defaults to <data.raw_root>/train
    summary = json.loads((tmp_path / "ingest/summary.json").read_text())
    assert summary["n_ingested"] == 120 and summary["upstream_img2dataset_stats"]["successes"] == 120
    assert len(pd.read_parquet(tmp_path / "ingest/metadata.parquet")) == 120
    assert main([*sets, "data", "validate"]) == 0
    assert "data validation passed" in capsys.readouterr().out
    assert main([*sets, "--set", "data.validate.min_rows=1000", "data", "validate"]) == 1
    assert "row_count" in capsys.readouterr().err
    assert main([*sets, "data", "ingest", "--source", str(Path(tmp_path) / "nope")]) == 2
