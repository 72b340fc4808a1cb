"""validate on N brains with N mistyped references: did-you-mean must stay near-linear.

    python benchmarks/validate_typos.py

Prints wall time per N (each character references `brian-NNNN` where the brain
is `brain-NNNN`). Before the Suggestions index: 5.5 s at 500, 201 s at 4,000.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from avatarsync import api
from avatarsync.errors import ManifestError


def main() -> None:
    for n in (500, 1000, 2000, 4000):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "avatarsync.yaml").write_text(
                'manifests: ["*.yaml"]\nenvironments: {local: {emulator: true}}\n'
            )
            docs = [
                f"kind: Brain\nname: brain-{i:04d}\nspec: {{instructions: x{i}, greetingMessage: y}}\n"
                f"---\nkind: Character\nname: c{i}\nspec: {{displayName: C{i}, "
                f"livekitIdentity: c{i}, brain: brian-{i:04d}}}\n"
                for i in range(n)
            ]
            (root / "m.yaml").write_text("---\n".join(docs))
            project = api.load_project(root)
            started = time.perf_counter()
            try:
                api.validate(project)
            except ManifestError as exc:
                errors = sum(1 for d in exc.diagnostics if d.severity == "error")
            seconds = time.perf_counter() - started
            print(
                f"N={n:5d}  {errors} errors  {seconds:6.2f} s  {seconds / n * 1000:.2f} ms per typo"
            )


if __name__ == "__main__":
    main()
