"""``python -m genai_lib``: prepare a class and manage the cache of trained weights (see genai_lib.course)."""

import sys

from genai_lib.course import main

sys.exit(main())
