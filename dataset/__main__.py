"""Entry point of `python -m dataset` (behind `make dataset`); its settings, `./.env` included, come from
core/settings.py like the services' do."""

from dataset.cli import main

raise SystemExit(main())
