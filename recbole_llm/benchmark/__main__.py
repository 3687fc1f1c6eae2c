"""``python -m recbole_llm.benchmark <suite.yaml>``."""

import sys

from recbole_llm.benchmark import main

sys.exit(main())
