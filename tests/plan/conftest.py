import sys
from pathlib import Path

# Lets the plan tests import their small builders (importlib mode adds no paths).
sys.path.insert(0, str(Path(__file__).parent))
