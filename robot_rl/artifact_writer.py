"""Write a policy artifact so that it never appears unless verified (every policy kind's export).

`write_verified(out_dir, write_files, spec, verify)`:

1. a temporary directory is made beside `out_dir`; `write_files(tmp)` writes the kind's files
   (ONNX, `robot.xml`);
2. `spec` gets the sha256 of every file and its own checksum, and is written as `spec.json`;
3. `verify(PolicyArtifact.load(tmp))` runs the artifact exactly as a robot loads it and returns the
   parity report (or raises to refuse); it is written as `parity.json`, checksummed too;
4. only then the directory replaces `out_dir` (`os.replace`); on any error nothing is left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from robot_rl.artifact import PolicyArtifact, sha256_file, spec_checksum


def _write_spec(tmp: Path, spec: dict) -> None:
    spec["files"] = {f.name: sha256_file(f) for f in sorted(tmp.iterdir()) if f.name != "spec.json"}
    spec["checksum"] = spec_checksum(spec)
    (tmp / "spec.json").write_text(json.dumps(spec, indent=2))


def write_verified(out_dir: str | Path, write_files: Callable[[Path], None], spec: dict,
                   verify: Callable[[PolicyArtifact], dict]) -> dict:
    """Write, verify and move the artifact into place; returns its final spec."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        write_files(tmp)
        _write_spec(tmp, spec)
        parity = verify(PolicyArtifact.load(tmp))
        (tmp / "parity.json").write_text(json.dumps(parity, indent=2))
        _write_spec(tmp, spec)
        os.chmod(tmp, 0o755)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return spec
