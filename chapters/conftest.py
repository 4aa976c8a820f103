"""nbval runs the chapter notebooks in fast mode (tiny data), with a private cache."""

import os
import tempfile

os.environ.setdefault("GENAI_FAST", "1")
os.environ.setdefault("GENAI_CACHE_DIR", tempfile.mkdtemp(prefix="genai_nbval_cache_"))
