import sys
from pathlib import Path

# importlib mode adds no paths: make the harness importable from the tests.
sys.path.insert(0, str(Path(__file__).parent))

from harness import make_project, project  # noqa: F401  (fixtures)
