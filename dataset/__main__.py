"""Entry point of `python -m dataset` (behind `make dataset`); reads `./.env` first, like the services do."""

from pathlib import Path

from dotenv import load_dotenv

from dataset.cli import main

load_dotenv(Path.cwd() / ".env", override=False)  # PIXABAY_API_KEY, IMAGES_DIR...; the environment wins
raise SystemExit(main())
