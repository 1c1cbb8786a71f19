"""The front door: settings, logging, the CLI, and assembly of bot, dispatcher and scheduler."""
