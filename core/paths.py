"""Where the project and its shipped models are, wherever the program was started from."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODELS_DIR = PROJECT_ROOT / "models"  # committed, read-only for the app
